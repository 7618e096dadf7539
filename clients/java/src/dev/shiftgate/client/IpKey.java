package dev.shiftgate.client;

/**
 * The ip key source: an address as Go's net/netip parses and prints it, with an
 * IPv4-mapped IPv6 address unmapped, because that is the string the gateway hashes.
 * {@code InetAddress} is not used: it resolves names and prints "2001:db8:0:0:0:0:0:1".
 */
final class IpKey {
    private IpKey() {}

    /** Returns the canonical key for {@code s}, or "" when it is not an address. */
    static String of(String s) {
        if (s == null) {
            return "";
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '.') {
                int[] f = parseV4(s, 0, s.length());
                return f == null ? "" : f[0] + "." + f[1] + "." + f[2] + "." + f[3];
            }
            if (c == ':') {
                return v6(s);
            }
            if (c == '%') {
                return "";
            }
        }
        return "";
    }

    private static int[] parseV4(String s, int off, int end) {
        int[] fields = new int[4];
        int pos = 0;
        int val = 0;
        int digits = 0;
        for (int i = off; i < end; i++) {
            char c = s.charAt(i);
            if (c >= '0' && c <= '9') {
                if (digits == 1 && val == 0) {
                    return null; // leading zero
                }
                val = val * 10 + (c - '0');
                digits++;
                if (val > 255) {
                    return null;
                }
            } else if (c == '.') {
                if (i == off || i == end - 1 || s.charAt(i - 1) == '.' || pos == 3) {
                    return null;
                }
                fields[pos++] = val;
                val = 0;
                digits = 0;
            } else {
                return null;
            }
        }
        if (pos < 3) {
            return null;
        }
        fields[3] = val;
        return fields;
    }

    /** The value of hex digit c, -1 for another character. */
    static int hex(char c) {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    }

    /** Follows net/netip's parseIPv6 step by step. */
    private static String v6(String in) {
        String s = in;
        String zone = "";
        int pct = s.indexOf('%');
        if (pct >= 0) {
            zone = s.substring(pct + 1);
            s = s.substring(0, pct);
            if (zone.isEmpty()) {
                return "";
            }
        }
        int[] ip = new int[16];
        int ellipsis = -1;
        int p = 0;
        if (s.length() >= 2 && s.charAt(0) == ':' && s.charAt(1) == ':') {
            ellipsis = 0;
            p = 2;
            if (p == s.length()) {
                return format(ip, zone);
            }
        }
        int i = 0;
        while (i < 16) {
            int off = 0;
            int acc = 0;
            for (; p + off < s.length(); off++) {
                int d = hex(s.charAt(p + off));
                if (d < 0) {
                    break;
                }
                acc = acc * 16 + d;
                if (off > 3 || acc > 0xFFFF) {
                    return ""; // more than four digits
                }
            }
            if (off == 0) {
                return "";
            }
            if (p + off < s.length() && s.charAt(p + off) == '.') {
                // An embedded IPv4 address must end the address, in the last 32 bits.
                if ((ellipsis < 0 && i != 12) || i + 4 > 16) {
                    return "";
                }
                int[] f = parseV4(s, p, s.length());
                if (f == null) {
                    return "";
                }
                System.arraycopy(f, 0, ip, i, 4);
                p = s.length();
                i += 4;
                break;
            }
            ip[i] = acc >> 8;
            ip[i + 1] = acc & 0xFF;
            i += 2;
            p += off;
            if (p == s.length()) {
                break;
            }
            if (s.charAt(p) != ':' || p + 1 == s.length()) {
                return "";
            }
            p++;
            if (s.charAt(p) == ':') {
                if (ellipsis >= 0) {
                    return ""; // a second "::"
                }
                ellipsis = i;
                p++;
                if (p == s.length()) {
                    break;
                }
            }
        }
        if (p != s.length()) {
            return "";
        }
        if (i < 16) {
            if (ellipsis < 0) {
                return "";
            }
            int n = 16 - i;
            for (int j = i - 1; j >= ellipsis; j--) {
                ip[j + n] = ip[j];
            }
            for (int j = ellipsis; j < ellipsis + n; j++) {
                ip[j] = 0;
            }
        } else if (ellipsis >= 0) {
            return ""; // "::" must stand for at least one group
        }
        return format(ip, zone);
    }

    /**
     * Prints as net/netip does after Unmap: a mapped address as IPv4 without its zone;
     * otherwise lower-case hex, the longest run of two or more zero groups (the
     * leftmost of equals) as "::", and the zone.
     */
    private static String format(int[] ip, String zone) {
        boolean mapped = ip[10] == 0xFF && ip[11] == 0xFF;
        for (int k = 0; k < 10 && mapped; k++) {
            mapped = ip[k] == 0;
        }
        if (mapped) {
            return ip[12] + "." + ip[13] + "." + ip[14] + "." + ip[15];
        }
        int zs = -1;
        int ze = -1;
        for (int i = 0; i < 8; i++) {
            int j = i;
            while (j < 8 && group(ip, j) == 0) {
                j++;
            }
            if (j - i >= 2 && j - i > ze - zs) {
                zs = i;
                ze = j;
            }
        }
        StringBuilder b = new StringBuilder(46);
        for (int i = 0; i < 8; i++) {
            if (i == zs) {
                b.append("::");
                i = ze;
                if (i >= 8) {
                    break;
                }
            } else if (i > 0) {
                b.append(':');
            }
            b.append(Integer.toHexString(group(ip, i)));
        }
        if (!zone.isEmpty()) {
            b.append('%').append(zone);
        }
        return b.toString();
    }

    private static int group(int[] ip, int g) {
        return ip[2 * g] << 8 | ip[2 * g + 1];
    }
}
