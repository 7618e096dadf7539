package dev.shiftgate.client;

/**
 * UTF-8 as the gateway hashes it. Unlike {@code String.getBytes(UTF_8)}, which writes
 * '?' for a lone surrogate, a lone surrogate becomes U+FFFD (EF BF BD), as in Go and
 * in JavaScript's TextEncoder, so every client hashes the same bytes.
 */
public final class Utf8 {
    private Utf8() {}

    /** Returns the UTF-8 bytes of {@code s}. */
    public static byte[] encode(String s) {
        byte[] out = new byte[s.length() * 3];
        int n = 0;
        for (int i = 0; i < s.length(); i++) {
            int c = s.charAt(i);
            if (Character.isSurrogate((char) c)) {
                if (Character.isHighSurrogate((char) c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                    c = Character.toCodePoint((char) c, s.charAt(i + 1));
                    i++;
                } else {
                    c = 0xFFFD;
                }
            }
            if (c < 0x80) {
                out[n++] = (byte) c;
            } else if (c < 0x800) {
                out[n++] = (byte) (0xC0 | c >> 6);
                out[n++] = (byte) (0x80 | c & 63);
            } else if (c < 0x10000) {
                out[n++] = (byte) (0xE0 | c >> 12);
                out[n++] = (byte) (0x80 | c >> 6 & 63);
                out[n++] = (byte) (0x80 | c & 63);
            } else {
                out[n++] = (byte) (0xF0 | c >> 18);
                out[n++] = (byte) (0x80 | c >> 12 & 63);
                out[n++] = (byte) (0x80 | c >> 6 & 63);
                out[n++] = (byte) (0x80 | c & 63);
            }
        }
        byte[] r = new byte[n];
        System.arraycopy(out, 0, r, 0, n);
        return r;
    }
}
