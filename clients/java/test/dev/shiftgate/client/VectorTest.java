package dev.shiftgate.client;

import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The Java client's tests, without a test framework: every vector of vectors.json
 * (the first argument, default ../vectors.json), then unit tests. Prints
 * "N passed, M failed" and exits 1 on any failure.
 */
public final class VectorTest {
    private static int passed;
    private static int failed;

    public static void main(String[] args) throws Exception {
        String path = args.length > 0 ? args[0] : "../vectors.json";
        Map<String, Object> doc = map(Json.parse(new String(Files.readAllBytes(Paths.get(path)), StandardCharsets.UTF_8)));
        vectors(doc);
        units();
        fetcher();
        httpTransport();
        System.out.println(passed + " passed, " + failed + " failed");
        if (failed > 0 || passed == 0) {
            System.exit(1);
        }
    }

    static void check(boolean ok, String what) {
        if (ok) {
            passed++;
        } else {
            failed++;
            System.out.println("FAIL: " + what);
        }
    }

    static void eq(Object got, Object want, String what) {
        check(want == null ? got == null : want.equals(got), what + ": got " + got + ", want " + want);
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Object o) {
        return (Map<String, Object>) o;
    }

    @SuppressWarnings("unchecked")
    static List<Object> list(Object o) {
        return (List<Object>) o;
    }

    static String hex(long h) {
        String s = Long.toHexString(h);
        while (s.length() < 16) {
            s = "0" + s;
        }
        return s;
    }

    static int num(Object o) {
        return ((Double) o).intValue();
    }

    static void vectors(Map<String, Object> doc) throws Exception {
        eq(doc.get("format"), "shiftgate-client-vectors", "format");
        eq(doc.get("version"), "1", "vectors version");
        eq(doc.get("algorithm"), ClientConfig.ALGORITHM, "algorithm");
        for (Object o : list(doc.get("xxh64"))) {
            Map<String, Object> v = map(o);
            long seed = Long.parseUnsignedLong((String) v.get("seed"));
            eq(hex(XXHash64.hash(Utf8.encode((String) v.get("input")), seed)), v.get("hash"), "xxh64 " + v.get("input") + " seed " + v.get("seed"));
        }
        int contract = 0;
        for (Object o : list(doc.get("buckets"))) {
            Map<String, Object> v = map(o);
            String salt = (String) v.get("salt");
            String key = (String) v.get("key");
            String name = v.get("group") + " " + Json.quote(salt) + "/" + Json.quote(key.length() > 40 ? key.substring(0, 40) : key);
            eq(hex(Shiftgate.hash64(salt, key)), v.get("hash"), "hash " + name);
            eq(Shiftgate.bucket(salt, key), num(v.get("bucket")), "bucket " + name);
            if ("contract".equals(v.get("group"))) {
                contract++;
            }
        }
        eq(contract, 6, "contract vectors");
        for (Object o : list(doc.get("edges"))) {
            Map<String, Object> v = map(o);
            int b = Shiftgate.bucket((String) v.get("salt"), (String) v.get("key"));
            int t = Shiftgate.threshold((Double) v.get("percent"));
            eq(b, num(v.get("bucket")), "edge bucket " + v.get("key"));
            eq(t, num(v.get("threshold")), "edge threshold " + v.get("percent"));
            eq(b < t, v.get("to"), "edge side " + v.get("key") + " at " + v.get("percent"));
        }
        for (Object o : list(doc.get("ips"))) {
            Map<String, Object> v = map(o);
            eq(Shiftgate.ipKey((String) v.get("input")), v.get("key"), "ip " + Json.quote((String) v.get("input")));
        }
        for (Object o : list(doc.get("configs"))) {
            Map<String, Object> cv = map(o);
            ClientConfig c = ClientConfig.fromTree(cv.get("config"));
            for (Object co : list(cv.get("cases"))) {
                Map<String, Object> tc = map(co);
                Decision want = decision(map(tc.get("expect")));
                Request r = request(map(tc.get("request")));
                String name = cv.get("name") + " / " + tc.get("name");
                eq(Shiftgate.explain(c, r), want, name);
                eq(Shiftgate.decide(c, r), want.region, name + " (decide)");
            }
        }
        List<Object> invalid = list(doc.get("invalid_configs"));
        check(invalid.size() > 10, "invalid config vectors present");
        for (Object o : invalid) {
            Map<String, Object> v = map(o);
            try {
                ClientConfig.fromTree(v.get("config"));
                check(false, "invalid config accepted: " + v.get("name"));
            } catch (ConfigException e) {
                check(true, "");
            }
        }
    }

    static Decision decision(Map<String, Object> e) {
        return new Decision((String) e.get("route"), (String) e.get("region"), (String) e.get("url"), num(e.get("bucket")),
                num(e.get("threshold")), (String) e.get("key_source"), (String) e.get("reason"), (Boolean) e.get("cutoff"),
                (Boolean) e.get("write"));
    }

    static Request request(Map<String, Object> m) {
        Request r = new Request();
        if (m.get("method") != null) {
            r.method((String) m.get("method"));
        }
        r.host((String) m.get("host")).path((String) m.get("path")).ip((String) m.get("ip"));
        r.headers(strings(m.get("headers"))).cookies(strings(m.get("cookies"))).queries(strings(m.get("query")));
        return r;
    }

    @SuppressWarnings("unchecked")
    static Map<String, String> strings(Object o) {
        return (Map<String, String>) o;
    }

    static final String CONFIG = "{\"version\":\"9\",\"algorithm\":\"xxh64-salt0-mod10000\",\"ttl\":30,"
            + "\"regions\":{\"idc\":{\"public_url\":\"https://idc.example.com\"},\"cloud\":{\"public_url\":\"https://cloud.example.com\"}},"
            + "\"routes\":[{\"name\":\"feed\",\"match\":{\"path_prefix\":\"/api/feed\"},\"from\":\"idc\",\"to\":\"cloud\","
            + "\"salt\":\"cutover-2026\",\"keys\":[\"header:X-User-Id\",\"cookie:uid\",\"query:u\",\"ip\"],\"percent\":28,\"write_percent\":9.01}]}";

    static void units() throws Exception {
        eq(hex(XXHash64.hash(new byte[0], 0)), "ef46db3751d8e999", "xxh64 of nothing");
        byte[] lone = Utf8.encode("\ud800");
        check(lone.length == 3 && (lone[0] & 0xFF) == 0xEF && (lone[1] & 0xFF) == 0xBF && (lone[2] & 0xFF) == 0xBD, "lone surrogate is U+FFFD");
        eq(Shiftgate.bucket("s", "a\udc00"), Shiftgate.bucket("s", "a\ufffd"), "lone low surrogate");
        check(java.util.Arrays.equals(Utf8.encode("café 日本 😀"), "café 日本 😀".getBytes(StandardCharsets.UTF_8)), "utf8 of valid text");

        ClientConfig c = ClientConfig.parse(CONFIG);
        Decision d = Shiftgate.explain(c, Request.get("/api/feed").header("x-user-id", "42"));
        eq(d, new Decision("feed", "cloud", "https://cloud.example.com", 2799, 2800, "header:X-User-Id", "split", false, false), "header any case");
        eq(Shiftgate.clientHeader(c, d), "cloud;v=9", "clientHeader");
        eq(Shiftgate.explain(c, Request.get("/api/feed").method("post").header("X-User-Id", "u-qa-1")),
                new Decision("feed", "cloud", "https://cloud.example.com", 900, 901, "header:X-User-Id", "split", false, true), "write");
        eq(Shiftgate.explain(c, Request.get("/api/feed").cookie("uid", "").query("u", "d-7f3a")).keySource, "query:u", "empty cookie skipped");
        eq(Shiftgate.explain(c, Request.get("/api/feed").ip("::FFFF:203.0.113.7")).bucket, 3466, "mapped ip");
        for (String v : new String[] {" 42", "42 ", "\t42\t", " \t 42 \t "}) {
            eq(Shiftgate.explain(c, Request.get("/api/feed").header("X-User-Id", v)).bucket, 2799, "header OWS " + Json.quote(v));
            eq(Shiftgate.explain(c, Request.get("/api/feed").header("x-user-id", v)).bucket, 2799, "header OWS, any case " + Json.quote(v));
            eq(Shiftgate.explain(c, Request.get("/api/feed").cookie("uid", v)).bucket, 2799, "cookie OWS " + Json.quote(v));
        }
        eq(Shiftgate.explain(c, Request.get("/api/feed").header("X-User-Id", " a b\t")).bucket, Shiftgate.bucket("cutover-2026", "a b"), "inner whitespace kept");
        Decision blank = Shiftgate.explain(c, Request.get("/api/feed").header("X-User-Id", " \t ").header("x-user-id", "u-qa-1"));
        eq(blank.keySource + " " + blank.bucket, "header:X-User-Id 900", "a blank header is empty");
        Decision next = Shiftgate.explain(c, Request.get("/api/feed").header("X-User-Id", "\t").cookie("uid", "  ").query("u", "42"));
        eq(next.keySource + " " + next.bucket, "query:u 2799", "blank header and cookie fall through");
        eq(Shiftgate.explain(c, Request.get("/api/feed").query("u", " 42 ")).bucket, Shiftgate.bucket("cutover-2026", " 42 "), "query not trimmed");
        eq(Shiftgate.explain(c, Request.get("/api/feed").header("X-User-Id", "\u00a042")).bucket, Shiftgate.bucket("cutover-2026", "\u00a042"), "NBSP kept");
        eq(Shiftgate.explain(c, Request.get("/api/feed").header("X-User-Id", "42\n")).bucket, Shiftgate.bucket("cutover-2026", "42\n"), "LF kept (not String.trim)");
        eq(Shiftgate.explain(c, Request.get("/api/feed").header("X-User-Id", null).cookie("uid", "42")).keySource, "cookie:uid", "null header");
        eq(Shiftgate.explain(null, Request.get("/")).reason, "no_config", "null config");
        eq(Shiftgate.explain(c, null).reason, "no_route", "null request is GET /");
        eq(Shiftgate.clientHeader(c, Shiftgate.explain(c, Request.get("/x"))), "", "clientHeader without region");

        eq(ClientConfig.parse("{\"algorithm\":\"xxh64-salt0-mod10000\",\"routes\":[{\"name\":\"r\",\"from\":\"a\",\"to\":\"b\",\"percent\":12.5}]}")
                .routes.get(0).writePercent, 12.5, "write_percent defaults to percent");
        configError("{\"algorithm\":\"fnv\"}", "unsupported algorithm", true);
        configError("{\"algorithm\":\"xxh64-salt0-mod10000\",\"routes\":[{\"name\":\"r\",\"from\":\"a\",\"to\":\"b\",\"percent\":0.001}]}",
                "routes[0].percent: want 0..100 with at most two decimals", false);
        configError("{\"algorithm\":\"xxh64-salt0-mod10000\"} x", "trailing data", false);

        for (String bad : new String[] {"", "{", "[1,]", "{\"a\" 1}", "01", "1.", ".5", "-", "\"\\x\"", "\"\u0001\"", "nul", "\"\\u12g4\"", "{\"a\":1,}"}) {
            try {
                Json.parse(bad);
                check(false, "Json accepted " + Json.quote(bad));
            } catch (IllegalArgumentException e) {
                check(true, "");
            }
        }
        StringBuilder deep = new StringBuilder();
        for (int i = 0; i < 100000; i++) {
            deep.append('[');
        }
        try {
            Json.parse(deep.toString());
            check(false, "deep nesting accepted");
        } catch (IllegalArgumentException e) {
            check(e.getMessage().contains("nested too deeply"), "deep nesting refused: " + e.getMessage());
        }
        eq(Json.parse("\"\\ud83d\\ude00 \\u00e9\\n\""), "😀 é\n", "string escapes");
        eq(Json.parse(" -1.5e2 "), -150.0, "number");
        eq(Json.quote("a\"\\\n\u0001"), "\"a\\\"\\\\\\n\\u0001\"", "quote");
    }

    static void configError(String json, String want, boolean unsupported) {
        try {
            ClientConfig.parse(json);
            check(false, "config accepted: " + json);
        } catch (ConfigException e) {
            check(e.getMessage().contains(want) && e.unsupported() == unsupported, "config error " + e.getMessage() + ", want " + want);
        }
    }

    static String cfg(String version, int ttl) {
        return CONFIG.replace("\"version\":\"9\"", "\"version\":\"" + version + "\"").replace("\"ttl\":30", "\"ttl\":" + ttl);
    }

    /** A scripted gateway and a manual scheduler: no test waits for real time. */
    static final class Script implements ConfigFetcher.Transport, ConfigFetcher.Scheduler {
        final Deque<Object> answers = new ArrayDeque<Object>();
        final List<String> sentEtags = new ArrayList<String>();
        final List<Long> delays = new ArrayList<Long>();
        final List<Runnable> tasks = new ArrayList<Runnable>();
        final List<boolean[]> cancelled = new ArrayList<boolean[]>();

        @Override
        public ConfigFetcher.Response get(String url, String etag) throws IOException {
            sentEtags.add(etag);
            Object a = answers.poll();
            if (a instanceof IOException) {
                throw (IOException) a;
            }
            if (a == null) {
                throw new IOException("no scripted answer");
            }
            return (ConfigFetcher.Response) a;
        }

        @Override
        public Runnable schedule(Runnable task, long delayMillis) {
            final boolean[] c = new boolean[1];
            delays.add(delayMillis);
            tasks.add(task);
            cancelled.add(c);
            return () -> c[0] = true;
        }

        /** Runs the last scheduled task unless it was cancelled. */
        void runLast() {
            int i = tasks.size() - 1;
            check(!cancelled.get(i)[0], "the last task is live");
            tasks.get(i).run();
        }
    }

    static void fetcher() throws Exception {
        Script s = new Script();
        AtomicLong clock = new AtomicLong(1000000);
        final List<String> updates = new ArrayList<String>();
        ConfigFetcher f = ConfigFetcher.builder("http://gw/.well-known/shiftgate/client-config").transport(s).scheduler(s)
                .clock(clock::get).random(() -> 0.5).listener(new ConfigFetcher.Listener() {
                    @Override
                    public void onUpdate(ClientConfig c, String etag) {
                        updates.add(c.version + " " + etag);
                    }
                }).build();
        s.answers.add(new ConfigFetcher.Response(200, "\"e1\"", cfg("1", 30), null));
        s.answers.add(new ConfigFetcher.Response(304, null, null, null));
        s.answers.add(new ConfigFetcher.Response(500, null, "boom", null));
        s.answers.add(new IOException("network down"));
        s.answers.add(new ConfigFetcher.Response(200, "\"bad\"", "{\"algorithm\":\"xxh64-salt0-mod10000\",\"routes\":[{\"name\":\"r\"}]}", null));
        s.answers.add(new ConfigFetcher.Response(200, "\"e2\"", cfg("2", 10), null));

        eq(f.refresh(), ConfigFetcher.Result.UPDATED, "first fetch");
        eq(s.sentEtags.get(0), "", "no If-None-Match at first");
        eq(f.config().version, "1", "config 1");
        eq(f.etag(), "\"e1\"", "etag 1");
        clock.addAndGet(30000);
        eq(f.refresh(), ConfigFetcher.Result.NOT_MODIFIED, "304");
        eq(s.sentEtags.get(1), "\"e1\"", "If-None-Match sent");
        eq(f.fetchedAt(), 1030000L, "fetchedAt after 304");
        for (String want : new String[] {"HTTP 500", "network down", "routes[0].from"}) {
            eq(f.refresh(), ConfigFetcher.Result.ERROR, "error " + want);
            check(f.lastError() != null && f.lastError().getMessage().contains(want), "lastError " + f.lastError());
            eq(f.config().version, "1", "last known good kept after " + want);
            eq(f.decide(Request.get("/api/feed").header("X-User-Id", "42")), "cloud", "decides on the last known good");
        }
        eq(f.refresh(), ConfigFetcher.Result.UPDATED, "recovers");
        eq(f.config().version, "2", "config 2");
        check(f.lastError() == null, "error cleared");
        eq(updates.toString(), "[1 \"e1\", 2 \"e2\"]", "listener updates");

        // Scheduling: ttl with ±10 % jitter, a Retry-After, 5 s before any config.
        for (double[] tc : new double[][] {{0, 27000}, {0.5, 30000}, {0.999999, 33000}}) {
            final double r = tc[0];
            Script s2 = new Script();
            ConfigFetcher f2 = ConfigFetcher.builder("u").transport(s2).scheduler(s2).clock(clock::get).random(() -> r).build();
            s2.answers.add(new ConfigFetcher.Response(200, "\"e\"", cfg("1", 30), null));
            s2.answers.add(new ConfigFetcher.Response(304, null, null, null));
            f2.start();
            f2.start();
            eq(s2.delays.toString(), "[0]", "start schedules one fetch now");
            s2.runLast();
            eq(s2.delays.get(1), (long) tc[1], "jittered delay at random " + r);
            s2.runLast();
            eq(s2.sentEtags.size(), 2, "refetched");
            f2.close();
            check(s2.cancelled.get(2)[0], "close cancels the next refresh");
        }
        Script s3 = new Script();
        ConfigFetcher f3 = ConfigFetcher.builder("u").transport(s3).scheduler(s3).clock(clock::get).random(() -> 0.5).build();
        s3.answers.add(new IOException("offline"));
        s3.answers.add(new ConfigFetcher.Response(503, null, null, "120"));
        s3.answers.add(new ConfigFetcher.Response(200, "\"e\"", cfg("1", 0), null));
        f3.start();
        s3.runLast();
        eq(s3.delays.get(1), 5000L, "retry soon before any config");
        s3.runLast();
        eq(s3.delays.get(2), 120000L, "Retry-After honoured");
        s3.runLast();
        eq(s3.delays.get(3), 60000L, "ttl 0 is 60 s");

        // noteVersion: a new version refetches now, at most every 5 s.
        f3.noteVersion("1");
        eq(s3.delays.size(), 4, "same version: nothing");
        clock.addAndGet(4999);
        f3.noteVersion("2");
        eq(s3.delays.size(), 4, "too soon: nothing");
        clock.addAndGet(1);
        f3.noteVersion("2");
        eq(s3.delays.size(), 5, "new version: one refetch");
        eq(s3.delays.get(4), 0L, "now");
        check(s3.cancelled.get(3)[0], "the scheduled refresh was replaced");
        f3.noteVersion("2");
        eq(s3.delays.size(), 5, "a burst causes one refetch");
        f3.close();
        try {
            f3.start();
            check(false, "start after close");
        } catch (IllegalStateException e) {
            check(true, "");
        }

        eq(ConfigFetcher.retryAfter("7", 0), 7000L, "Retry-After seconds");
        eq(ConfigFetcher.retryAfter("Thu, 01 Jan 1970 00:00:10 GMT", 4000), 6000L, "Retry-After date");
        eq(ConfigFetcher.retryAfter("soon", 0), 0L, "Retry-After garbage");
    }

    /** The HttpURLConnection transport against a real server on 127.0.0.1. */
    static void httpTransport() throws Exception {
        final String body = cfg("5", 30);
        final String[] mode = {"ok"};
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getByName("127.0.0.1"), 0), 0);
        server.createContext("/.well-known/shiftgate/client-config", ex -> {
            byte[] b = body.getBytes(StandardCharsets.UTF_8);
            String inm = ex.getRequestHeaders().getFirst("If-None-Match");
            if (mode[0].equals("fail")) {
                ex.getResponseHeaders().add("Retry-After", "9");
                ex.sendResponseHeaders(503, -1);
            } else if ("\"e5\"".equals(inm)) {
                ex.getResponseHeaders().add("ETag", "\"e5\"");
                ex.sendResponseHeaders(304, -1);
            } else {
                ex.getResponseHeaders().add("ETag", "\"e5\"");
                ex.getResponseHeaders().add("Content-Type", "application/json");
                ex.sendResponseHeaders(200, b.length);
                try (OutputStream out = ex.getResponseBody()) {
                    out.write(b);
                }
            }
            ex.close();
        });
        server.start();
        try {
            String url = "http://127.0.0.1:" + server.getAddress().getPort() + "/.well-known/shiftgate/client-config";
            ConfigFetcher f = ConfigFetcher.builder(url).scheduler((t, d) -> () -> {}).build();
            eq(f.refresh(), ConfigFetcher.Result.UPDATED, "http 200");
            eq(f.etag(), "\"e5\"", "http etag");
            eq(f.refresh(), ConfigFetcher.Result.NOT_MODIFIED, "http 304");
            mode[0] = "fail";
            eq(f.refresh(), ConfigFetcher.Result.ERROR, "http 503");
            eq(f.config().version, "5", "http last known good");
            check(f.nextDelayMillis() >= 9000, "http Retry-After read");
        } finally {
            server.stop(0);
        }
    }
}
