package dev.shiftgate.client;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The client config as the gateway publishes it at /.well-known/shiftgate/client-config,
 * checked with the rules of the Go reference (routing/clientcfg). Immutable and
 * thread-safe. Unknown JSON fields are ignored, so a newer gateway may add fields.
 */
public final class ClientConfig {
    /** The only split algorithm this client implements. */
    public static final String ALGORITHM = "xxh64-salt0-mod10000";
    /** The refetch interval in seconds when {@link #ttl} is 0. */
    public static final int DEFAULT_TTL = 60;

    /** Identifies the config: a string, compared for equality only. */
    public final String version;
    public final String algorithm;
    /** Refetch interval in seconds; 0 means {@link #DEFAULT_TTL}. */
    public final int ttl;
    /** Every route sends everything to its from region. */
    public final boolean rollback;
    /** Site-wide: do not call; serve the local cache. */
    public final boolean cutoff;
    /** Region name to region; unmodifiable. */
    public final Map<String, Region> regions;
    /** Routes in config order; unmodifiable. */
    public final List<Route> routes;

    /** How clients reach one region. */
    public static final class Region {
        /** The base URL, e.g. "https://cloud.example.com"; "" when not published. */
        public final String publicUrl;

        Region(String publicUrl) {
            this.publicUrl = publicUrl;
        }
    }

    /** One route's split as clients see it (forced keys are not published). */
    public static final class Route {
        public final String name;
        /** Matched ASCII case-insensitively, port ignored; "" matches any host. */
        public final String host;
        /** Compared byte for byte with the start of the path; the longest wins. */
        public final String pathPrefix;
        public final String from;
        public final String to;
        public final String salt;
        /** "header:NAME", "cookie:NAME", "query:NAME" or "ip", in order; unmodifiable. */
        public final List<String> keys;
        /** Share sent to {@link #to}, 0..100 with at most two decimals. */
        public final double percent;
        /** The same for writes (methods but GET, HEAD, OPTIONS); at most percent. */
        public final double writePercent;
        /** Do not call this route; serve the local cache. */
        public final boolean cutoff;

        Route(String name, String host, String pathPrefix, String from, String to, String salt, List<String> keys,
                double percent, double writePercent, boolean cutoff) {
            this.name = name;
            this.host = host;
            this.pathPrefix = pathPrefix;
            this.from = from;
            this.to = to;
            this.salt = salt;
            this.keys = keys;
            this.percent = percent;
            this.writePercent = writePercent;
            this.cutoff = cutoff;
        }
    }

    private ClientConfig(String version, String algorithm, int ttl, boolean rollback, boolean cutoff,
            Map<String, Region> regions, List<Route> routes) {
        this.version = version;
        this.algorithm = algorithm;
        this.ttl = ttl;
        this.rollback = rollback;
        this.cutoff = cutoff;
        this.regions = regions;
        this.routes = routes;
    }

    /**
     * Parses and checks a config. write_percent defaults to percent; an empty
     * path_prefix becomes "/".
     *
     * @throws ConfigException when the text is not a usable config
     */
    public static ClientConfig parse(String json) throws ConfigException {
        Object tree;
        try {
            tree = Json.parse(json);
        } catch (IllegalArgumentException e) {
            throw new ConfigException(e.getMessage(), false);
        }
        return fromTree(tree);
    }

    /** Builds a config from a tree of {@link Json#parse}. */
    static ClientConfig fromTree(Object tree) throws ConfigException {
        Map<String, Object> doc = obj(tree, "config");
        String version = str(doc.get("version"), "version");
        String algorithm = str(doc.get("algorithm"), "algorithm");
        double ttl = num(doc.get("ttl"), "ttl");
        if (ttl != Math.rint(ttl) || Math.abs(ttl) > Integer.MAX_VALUE) {
            throw new ConfigException("ttl: want an integer", false);
        }
        boolean rollback = bool(doc.get("rollback"), "rollback");
        boolean cutoff = bool(doc.get("cutoff"), "cutoff");
        Map<String, Region> regions = new LinkedHashMap<String, Region>();
        for (Map.Entry<String, Object> e : obj(doc.get("regions"), "regions").entrySet()) {
            String p = "regions." + e.getKey();
            regions.put(e.getKey(), new Region(str(obj(e.getValue(), p).get("public_url"), p + ".public_url")));
        }
        List<Route> routes = new ArrayList<Route>();
        List<Object> list = list(doc.get("routes"), "routes");
        for (int i = 0; i < list.size(); i++) {
            String p = "routes[" + i + "]";
            Map<String, Object> o = obj(list.get(i), p);
            Map<String, Object> m = obj(o.get("match"), p + ".match");
            List<String> keys = new ArrayList<String>();
            List<Object> rawKeys = list(o.get("keys"), p + ".keys");
            for (int j = 0; j < rawKeys.size(); j++) {
                keys.add(str(rawKeys.get(j), p + ".keys[" + j + "]"));
            }
            double percent = num(o.get("percent"), p + ".percent");
            Object wp = o.get("write_percent");
            String prefix = str(m.get("path_prefix"), p + ".match.path_prefix");
            routes.add(new Route(str(o.get("name"), p + ".name"), str(m.get("host"), p + ".match.host"),
                    prefix.isEmpty() ? "/" : prefix, str(o.get("from"), p + ".from"), str(o.get("to"), p + ".to"),
                    str(o.get("salt"), p + ".salt"), Collections.unmodifiableList(keys), percent,
                    wp == null ? percent : num(wp, p + ".write_percent"), bool(o.get("cutoff"), p + ".cutoff")));
        }
        ClientConfig c = new ClientConfig(version, algorithm, (int) ttl, rollback, cutoff,
                Collections.unmodifiableMap(regions), Collections.unmodifiableList(routes));
        c.validate();
        return c;
    }

    /** Applies the Go reference's checks in its order. */
    private void validate() throws ConfigException {
        if (!ALGORITHM.equals(algorithm)) {
            throw new ConfigException("unsupported algorithm " + Json.quote(algorithm) + " (want " + Json.quote(ALGORITHM) + ")", true);
        }
        if (ttl < 0) {
            throw new ConfigException("ttl: want >= 0, got " + ttl, false);
        }
        for (int i = 0; i < routes.size(); i++) {
            Route r = routes.get(i);
            String p = "routes[" + i + "]";
            if (r.name.isEmpty()) {
                throw new ConfigException(p + ".name: must not be empty", false);
            }
            if (r.from.isEmpty()) {
                throw new ConfigException(p + ".from: must not be empty", false);
            }
            if (r.to.isEmpty()) {
                throw new ConfigException(p + ".to: must not be empty", false);
            }
            if (!r.pathPrefix.startsWith("/")) {
                throw new ConfigException(p + ".match.path_prefix: must start with /", false);
            }
            if (!validPercent(r.percent)) {
                throw new ConfigException(p + ".percent: want 0..100 with at most two decimals, got " + r.percent, false);
            }
            if (!validPercent(r.writePercent)) {
                throw new ConfigException(p + ".write_percent: want 0..100 with at most two decimals, got " + r.writePercent, false);
            }
            if (Shiftgate.threshold(r.writePercent) > Shiftgate.threshold(r.percent)) {
                throw new ConfigException(p + ".write_percent: " + r.writePercent + " is above percent " + r.percent, false);
            }
            for (int j = 0; j < r.keys.size(); j++) {
                if (Shiftgate.keyKind(r.keys.get(j)) == 0) {
                    throw new ConfigException(p + ".keys[" + j + "]: want header:NAME, cookie:NAME, query:NAME or ip, got "
                            + Json.quote(r.keys.get(j)), false);
                }
            }
        }
    }

    /** 0..100 with at most two decimals, judged on percent × 100 as a double, as in Go and JS. */
    private static boolean validPercent(double p) {
        if (!(p >= 0 && p <= 100)) {
            return false;
        }
        double x = p * 100;
        return Math.abs(x - Math.rint(x)) <= 1e-6;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> obj(Object v, String path) throws ConfigException {
        if (v == null) {
            return Collections.emptyMap();
        }
        if (!(v instanceof Map)) {
            throw new ConfigException(path + ": want an object", false);
        }
        return (Map<String, Object>) v;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Object v, String path) throws ConfigException {
        if (v == null) {
            return Collections.emptyList();
        }
        if (!(v instanceof List)) {
            throw new ConfigException(path + ": want a list", false);
        }
        return (List<Object>) v;
    }

    private static String str(Object v, String path) throws ConfigException {
        if (v == null) {
            return "";
        }
        if (!(v instanceof String)) {
            throw new ConfigException(path + ": want a string", false);
        }
        return (String) v;
    }

    private static double num(Object v, String path) throws ConfigException {
        if (v == null) {
            return 0;
        }
        if (!(v instanceof Double) || ((Double) v).isInfinite()) {
            throw new ConfigException(path + ": want a number", false);
        }
        return (Double) v;
    }

    private static boolean bool(Object v, String path) throws ConfigException {
        if (v == null) {
            return false;
        }
        if (!(v instanceof Boolean)) {
            throw new ConfigException(path + ": want true or false", false);
        }
        return (Boolean) v;
    }
}
