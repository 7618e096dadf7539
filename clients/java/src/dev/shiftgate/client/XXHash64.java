package dev.shiftgate.client;

/**
 * XXH64 over bytes, in long arithmetic (Java's long wraps like an unsigned 64-bit
 * integer for addition and multiplication; shifts use {@code >>>}). Stateless and
 * thread-safe.
 */
public final class XXHash64 {
    private static final long P1 = 0x9E3779B185EBCA87L;
    private static final long P2 = 0xC2B2AE3D27D4EB4FL;
    private static final long P3 = 0x165667B19E3779F9L;
    private static final long P4 = 0x85EBCA77C2B2AE63L;
    private static final long P5 = 0x27D4EB2F165667C5L;

    private XXHash64() {}

    /** Returns XXH64 of all of {@code b} with {@code seed}. */
    public static long hash(byte[] b, long seed) {
        return hash(b, 0, b.length, seed);
    }

    /** Returns XXH64 of {@code b[off, off+len)} with {@code seed}. */
    public static long hash(byte[] b, int off, int len, long seed) {
        int end = off + len;
        int i = off;
        long h;
        if (len >= 32) {
            long v1 = seed + P1 + P2;
            long v2 = seed + P2;
            long v3 = seed;
            long v4 = seed - P1;
            for (; i + 32 <= end; i += 32) {
                v1 = round(v1, getLong(b, i));
                v2 = round(v2, getLong(b, i + 8));
                v3 = round(v3, getLong(b, i + 16));
                v4 = round(v4, getLong(b, i + 24));
            }
            h = Long.rotateLeft(v1, 1) + Long.rotateLeft(v2, 7) + Long.rotateLeft(v3, 12) + Long.rotateLeft(v4, 18);
            h = merge(h, v1);
            h = merge(h, v2);
            h = merge(h, v3);
            h = merge(h, v4);
        } else {
            h = seed + P5;
        }
        h += len;
        for (; i + 8 <= end; i += 8) {
            h ^= round(0, getLong(b, i));
            h = Long.rotateLeft(h, 27) * P1 + P4;
        }
        if (i + 4 <= end) {
            h ^= (getInt(b, i) & 0xFFFFFFFFL) * P1;
            h = Long.rotateLeft(h, 23) * P2 + P3;
            i += 4;
        }
        for (; i < end; i++) {
            h ^= (b[i] & 0xFFL) * P5;
            h = Long.rotateLeft(h, 11) * P1;
        }
        h ^= h >>> 33;
        h *= P2;
        h ^= h >>> 29;
        h *= P3;
        h ^= h >>> 32;
        return h;
    }

    private static long round(long acc, long lane) {
        acc += lane * P2;
        return Long.rotateLeft(acc, 31) * P1;
    }

    private static long merge(long h, long v) {
        h ^= round(0, v);
        return h * P1 + P4;
    }

    private static int getInt(byte[] b, int i) {
        return (b[i] & 0xFF) | (b[i + 1] & 0xFF) << 8 | (b[i + 2] & 0xFF) << 16 | (b[i + 3] & 0xFF) << 24;
    }

    private static long getLong(byte[] b, int i) {
        return (getInt(b, i) & 0xFFFFFFFFL) | ((long) getInt(b, i + 4)) << 32;
    }
}
