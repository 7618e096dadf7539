package dev.shiftgate.client;

/** A client config that cannot be used; {@link #unsupported()} for another algorithm. */
public final class ConfigException extends Exception {
    private static final long serialVersionUID = 1L;
    private final boolean unsupported;

    ConfigException(String message, boolean unsupported) {
        super(message);
        this.unsupported = unsupported;
    }

    /**
     * Reports whether the config names an algorithm this client does not implement: keep
     * calling the gateway's default address and let the gateway decide.
     */
    public boolean unsupported() {
        return unsupported;
    }
}
