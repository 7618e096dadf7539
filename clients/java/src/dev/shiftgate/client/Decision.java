package dev.shiftgate.client;

/** A client-side decision, spelled out. Immutable. */
public final class Decision {
    /** The matched route's name, "" when none matched. */
    public final String route;
    /**
     * Where the request goes; "" when the client cannot tell (no config, unsupported
     * algorithm, no route): call the default address and let the gateway decide.
     */
    public final String region;
    /** The region's public_url, "" when the config has none. */
    public final String url;
    /** The key's bucket, -1 when no key was hashed. */
    public final int bucket;
    /** The basis points the bucket was compared with (write or read split). */
    public final int threshold;
    /** The key source used, as the config spells it, "" when none. */
    public final String keySource;
    /** no_config, unsupported, no_route, rollback, no_key or split: the gateway's names. */
    public final String reason;
    /** Do not call: serve the local cache (the site's or the route's cutoff). */
    public final boolean cutoff;
    /** The method is not GET, HEAD or OPTIONS. */
    public final boolean write;

    /** Makes a decision; for tests and tools. */
    public Decision(String route, String region, String url, int bucket, int threshold, String keySource,
            String reason, boolean cutoff, boolean write) {
        this.route = route;
        this.region = region;
        this.url = url;
        this.bucket = bucket;
        this.threshold = threshold;
        this.keySource = keySource;
        this.reason = reason;
        this.cutoff = cutoff;
        this.write = write;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Decision)) {
            return false;
        }
        Decision d = (Decision) o;
        return route.equals(d.route) && region.equals(d.region) && url.equals(d.url) && bucket == d.bucket
                && threshold == d.threshold && keySource.equals(d.keySource) && reason.equals(d.reason)
                && cutoff == d.cutoff && write == d.write;
    }

    @Override
    public int hashCode() {
        return ((route.hashCode() * 31 + region.hashCode()) * 31 + bucket) * 31 + reason.hashCode();
    }

    @Override
    public String toString() {
        return "{route=" + route + " region=" + region + " url=" + url + " bucket=" + bucket + " threshold=" + threshold
                + " keySource=" + keySource + " reason=" + reason + " cutoff=" + cutoff + " write=" + write + "}";
    }
}
