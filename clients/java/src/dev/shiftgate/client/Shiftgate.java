package dev.shiftgate.client;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * The split contract on the client: {@link #bucket}, {@link #decide} and
 * {@link #explain} make the gateway's decision in the app. Stateless and thread-safe.
 */
public final class Shiftgate {
    /** The number of buckets: percents move in 0.01 % steps. */
    public static final int BUCKETS = 10000;

    private Shiftgate() {}

    /** Returns xxhash64(salt + "\0" + key) over UTF-8, the hash {@link #bucket} reduces. */
    public static long hash64(String salt, String key) {
        return XXHash64.hash(Utf8.encode(salt + '\0' + key), 0);
    }

    /** Returns key's bucket under salt: xxhash64(salt + "\0" + key) mod 10000, 0..9999. */
    public static int bucket(String salt, String key) {
        return (int) Long.remainderUnsigned(hash64(salt, key), BUCKETS);
    }

    /** Returns round(percent × 100) clamped to 0..10000: bucket &lt; threshold goes to the route's to region. */
    public static int threshold(double percent) {
        long t = Math.round(percent * 100);
        return (int) Math.max(0, Math.min(BUCKETS, t));
    }

    /**
     * Returns the key the gateway hashes for an address ("2001:DB8:0::1" gives
     * "2001:db8::1", "::ffff:1.2.3.4" gives "1.2.3.4"), or "" when it is not one.
     */
    public static String ipKey(String address) {
        return IpKey.of(address);
    }

    /**
     * Returns the region the gateway would choose for the request, or "" when the
     * client cannot tell (then call the default address). Use {@link #explain} for the
     * URL, the cutoff and the reason.
     */
    public static String decide(ClientConfig config, Request request) {
        return explain(config, request).region;
    }

    /**
     * Makes the gateway's decision and spells it out: the route by host and longest
     * path prefix; rollback sends to from; the key is the first present, non-empty
     * source (header and cookie values without surrounding spaces and tabs, cookie
     * values without one pair of enclosing quotes); no key
     * sends to from; writes compare with write_percent; bucket &lt;
     * round(percent × 100) goes to to. {@code config} may be null.
     */
    public static Decision explain(ClientConfig config, Request request) {
        Request req = request == null ? new Request() : request;
        if (config == null) {
            return new Decision("", "", "", -1, 0, "", "no_config", false, false);
        }
        if (!ClientConfig.ALGORITHM.equals(config.algorithm)) {
            return new Decision("", "", "", -1, 0, "", "unsupported", config.cutoff, false);
        }
        boolean write = isWrite(req.method);
        int idx = match(config.routes, req.host, req.path);
        if (idx < 0) {
            return new Decision("", "", "", -1, 0, "", "no_route", config.cutoff, write);
        }
        ClientConfig.Route r = config.routes.get(idx);
        boolean cutoff = config.cutoff || r.cutoff;
        int threshold = threshold(write ? r.writePercent : r.percent);
        if (config.rollback) {
            return new Decision(r.name, r.from, url(config, r.from), -1, threshold, "", "rollback", cutoff, write);
        }
        for (String k : r.keys) {
            String v = keyValue(k, req);
            if (!v.isEmpty()) {
                int b = bucket(r.salt, v);
                String region = b < threshold ? r.to : r.from;
                return new Decision(r.name, region, url(config, region), b, threshold, k, "split", cutoff, write);
            }
        }
        return new Decision(r.name, r.from, url(config, r.from), -1, threshold, "", "no_key", cutoff, write);
    }

    /** Returns the X-Shift-Client value "REGION;v=VERSION", or "" without a region. */
    public static String clientHeader(ClientConfig config, Decision d) {
        if (config == null || d == null || d.region.isEmpty()) {
            return "";
        }
        return d.region + ";v=" + config.version;
    }

    /** 1 header, 2 cookie, 3 query, 4 ip, 0 not a key source. */
    static int keyKind(String k) {
        if ("ip".equals(k)) {
            return 4;
        }
        int i = k.indexOf(':');
        if (i < 0 || i == k.length() - 1) {
            return 0;
        }
        String kind = k.substring(0, i);
        if (kind.equals("header")) {
            return 1;
        }
        if (kind.equals("cookie")) {
            return 2;
        }
        return kind.equals("query") ? 3 : 0;
    }

    private static String keyValue(String k, Request req) {
        String name = k.substring(k.indexOf(':') + 1);
        switch (keyKind(k)) {
            case 1: return header(req.headers, name);
            // Decoded query values the gateway takes as they are.
            case 2: return cookieValue(nonNull(req.cookies.get(name)));
            case 3: return nonNull(req.query.get(name));
            case 4: return IpKey.of(req.ip);
            default: return "";
        }
    }

    /** The named header's value without its optional whitespace; "" when absent or blank. */
    private static String header(Map<String, String> h, String name) {
        String v = trimOws(nonNull(h.get(name)));
        if (!v.isEmpty()) {
            return v;
        }
        for (Map.Entry<String, String> e : h.entrySet()) {
            v = trimOws(nonNull(e.getValue()));
            if (!v.isEmpty() && equalFoldAscii(e.getKey(), name)) {
                return v;
            }
        }
        return "";
    }

    /**
     * Drops the spaces and horizontal tabs around a header or cookie value. HTTP's
     * optional whitespace is not part of a field value and the gateway's parser trims
     * it, so " 1 " is the key "1", and a value of only whitespace is empty (the next key
     * source applies). Not {@link String#trim}: that also drops CR, LF and other control
     * characters, nor {@code strip}, which drops Unicode spaces; the gateway keeps them.
     */
    static String trimOws(String s) {
        int i = 0;
        int j = s.length();
        while (i < j && (s.charAt(i) == ' ' || s.charAt(i) == '\t')) {
            i++;
        }
        while (j > i && (s.charAt(j - 1) == ' ' || s.charAt(j - 1) == '\t')) {
            j--;
        }
        return s.substring(i, j);
    }

    /**
     * A cookie's value as the gateway's parser reads it from a Cookie header: without
     * the spaces and tabs around it, then without one pair of enclosing double quotes
     * (RFC 6265's quoted value, which some servers' parsers keep), so {@code "u-1"} and
     * {@code u-1} are one key. A value that still holds a double quote, a semicolon or a
     * backslash the gateway drops as if the cookie were absent: "" (the next key source
     * applies).
     */
    static String cookieValue(String s) {
        String v = trimOws(s);
        if (v.length() > 1 && v.charAt(0) == '"' && v.charAt(v.length() - 1) == '"') {
            v = v.substring(1, v.length() - 1);
        }
        for (int i = 0; i < v.length(); i++) {
            char c = v.charAt(i);
            if (c == '"' || c == ';' || c == '\\') {
                return "";
            }
        }
        return v;
    }

    private static String nonNull(String s) {
        return s == null ? "" : s;
    }

    private static String url(ClientConfig c, String region) {
        ClientConfig.Region r = c.regions.get(region);
        return r == null ? "" : r.publicUrl;
    }

    private static boolean isWrite(String m) {
        return !(m.isEmpty() || equalFoldAscii(m, "GET") || equalFoldAscii(m, "HEAD") || equalFoldAscii(m, "OPTIONS"));
    }

    /**
     * Host routes beat routes without a host; then the longest prefix (in bytes, as
     * the gateway compares them); on a tie, the first. The path is matched as the
     * gateway routes it ({@link #normalizePath}).
     */
    private static int match(List<ClientConfig.Route> routes, String host, String path) {
        String h = stripPort(host);
        byte[] p = normalizePath(path == null || path.isEmpty() ? "/" : path);
        int best = -1;
        int bestLen = -1;
        boolean bestHost = false;
        for (int i = 0; i < routes.size(); i++) {
            ClientConfig.Route r = routes.get(i);
            byte[] prefix = r.pathPrefix.getBytes(StandardCharsets.UTF_8);
            if (!startsWith(p, prefix)) {
                continue;
            }
            if (!r.host.isEmpty()) {
                if (!equalFoldAscii(r.host, h)) {
                    continue;
                }
                if (!bestHost || prefix.length > bestLen) {
                    best = i;
                    bestLen = prefix.length;
                    bestHost = true;
                }
            } else if (!bestHost && prefix.length > bestLen) {
                best = i;
                bestLen = prefix.length;
            }
        }
        return best;
    }

    private static boolean startsWith(byte[] b, byte[] prefix) {
        if (prefix.length > b.length) {
            return false;
        }
        for (int j = 0; j < prefix.length; j++) {
            if (b[j] != prefix[j]) {
                return false;
            }
        }
        return true;
    }

    /**
     * The path as the gateway routes it, as UTF-8 bytes: %XX decoded ('+' kept; a '%'
     * without two hex digits kept), then "//", "/./" and "/x/../" removed, the
     * gateway's parser's steps in its order, so that "//api/feed", "/api/x/../feed"
     * and "/api/%66eed" take the route of "/api/feed".
     */
    static byte[] normalizePath(String path) {
        byte[] src = path.getBytes(StandardCharsets.UTF_8);
        if (src.length == 1 && src[0] == '/') {
            return src;
        }
        byte[] b = new byte[src.length + 1];
        int n = 0;
        if (src.length == 0 || src[0] != '/') {
            b[n++] = '/';
        }
        for (int i = 0; i < src.length; i++) {
            byte c = src[i];
            if (c != '%') {
                b[n++] = c;
                continue;
            }
            if (i + 3 > src.length) {
                while (i < src.length) {
                    b[n++] = src[i++];
                }
                break;
            }
            int x1 = IpKey.hex((char) (src[i + 1] & 0xff));
            int x2 = IpKey.hex((char) (src[i + 2] & 0xff));
            if (x1 < 0 || x2 < 0) {
                b[n++] = '%';
                continue;
            }
            b[n++] = (byte) (x1 << 4 | x2);
            i += 2;
        }
        n = removeSegments(b, n, SLASH_SLASH, false);
        boolean dot = false;
        for (int i = 0; i < n && !dot; i++) {
            dot = b[i] == '.';
        }
        if (dot) {
            n = removeSegments(b, n, SLASH_DOT_SLASH, false);
            n = removeSegments(b, n, SLASH_DOT_DOT_SLASH, true);
            if (endsWithAt(b, n, SLASH_DOT_DOT)) {
                int k = n - 4;
                while (k >= 0 && b[k] != '/') {
                    k--;
                }
                if (k < 0) {
                    return new byte[] {'/'};
                }
                n = k + 1;
            }
            if (endsWithAt(b, n, SLASH_DOT)) {
                n--;
            }
        }
        return java.util.Arrays.copyOf(b, n);
    }

    private static final byte[] SLASH_SLASH = {'/', '/'};
    private static final byte[] SLASH_DOT_SLASH = {'/', '.', '/'};
    private static final byte[] SLASH_DOT_DOT_SLASH = {'/', '.', '.', '/'};
    private static final byte[] SLASH_DOT_DOT = {'/', '.', '.'};
    private static final byte[] SLASH_DOT = {'/', '.'};

    private static int indexOf(byte[] b, int n, byte[] p) {
        outer:
        for (int i = 0; i + p.length <= n; i++) {
            for (int j = 0; j < p.length; j++) {
                if (b[i + j] != p[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    private static boolean endsWithAt(byte[] b, int w, byte[] p) {
        if (w < p.length) {
            return false;
        }
        for (int j = 0; j < p.length; j++) {
            if (b[w - p.length + j] != p[j]) {
                return false;
            }
        }
        return true;
    }

    /**
     * Removes every p from b[:n] in one pass (each removal can make another); with
     * parent, the segment before each p goes too, a '/' left where it began ("/x/../"
     * removed). Returns the new length.
     */
    private static int removeSegments(byte[] b, int n, byte[] p, boolean parent) {
        int at = indexOf(b, n, p);
        if (at < 0) {
            return n;
        }
        int w = at;
        for (int r = at; r < n; r++) {
            b[w++] = b[r];
            while (endsWithAt(b, w, p)) {
                if (!parent) {
                    w -= p.length - 1;
                    continue;
                }
                int k = w - p.length - 1;
                while (k >= 0 && b[k] != '/') {
                    k--;
                }
                w = Math.max(k, 0);
                b[w++] = '/';
            }
        }
        return w;
    }

    /** Drops ":port" but not the colons of a bracketed IPv6 literal. */
    private static String stripPort(String host) {
        int i = host.lastIndexOf(':');
        return i >= 0 && host.lastIndexOf(']') < i ? host.substring(0, i) : host;
    }

    /** ASCII-only case folding, as the gateway compares. */
    private static boolean equalFoldAscii(String a, String b) {
        if (a.length() != b.length()) {
            return false;
        }
        for (int i = 0; i < a.length(); i++) {
            if (lower(a.charAt(i)) != lower(b.charAt(i))) {
                return false;
            }
        }
        return true;
    }

    private static char lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c + 32) : c;
    }
}
