package dev.shiftgate.client;

import java.io.ByteArrayOutputStream;
import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.DoubleSupplier;
import java.util.function.LongSupplier;

/**
 * Keeps a client config fresh: conditional GETs with the ETag, the last known good
 * config kept through any failure, a refetch every ttl with ±10 % jitter.
 * Thread-safe: {@link #config()} and {@link #explain} may be called from any thread.
 *
 * <pre>
 * ConfigFetcher f = ConfigFetcher.builder("https://gw.example.com/.well-known/shiftgate/client-config").build();
 * f.start();
 * Decision d = f.explain(Request.get("/api/feed").header("X-User-Id", uid));
 * </pre>
 */
public final class ConfigFetcher implements Closeable {
    /** The shortest time between refetches that {@link #noteVersion} may cause. */
    public static final long VERSION_REFETCH_GAP_MILLIS = 5000;
    /** The retry delay, before jitter, while no config was ever fetched. */
    public static final long FIRST_RETRY_MILLIS = 5000;
    /** Bodies larger than this are refused. */
    public static final int MAX_BODY_BYTES = 8 << 20;

    /** The outcome of one {@link #refresh()}. */
    public enum Result { UPDATED, NOT_MODIFIED, ERROR }

    /** One conditional GET; the default uses HttpURLConnection. */
    public interface Transport {
        /** GETs url with If-None-Match: etag when etag is not empty. */
        Response get(String url, String etag) throws IOException;
    }

    /** What a Transport got back; body only for 200. */
    public static final class Response {
        final int status;
        final String etag;
        final String body;
        final String retryAfter;

        /** A response; etag and retryAfter may be null. */
        public Response(int status, String etag, String body, String retryAfter) {
            this.status = status;
            this.etag = etag == null ? "" : etag;
            this.body = body == null ? "" : body;
            this.retryAfter = retryAfter;
        }
    }

    /** Runs tasks later; the default is one daemon thread. */
    public interface Scheduler {
        /** Runs task after delayMillis; the returned Runnable cancels it. */
        Runnable schedule(Runnable task, long delayMillis);
    }

    /** Told of each new config (e.g. to store it for the next start) and each failure. */
    public interface Listener {
        default void onUpdate(ClientConfig config, String etag) {}

        default void onError(Exception e) {}
    }

    private final String url;
    private final Transport transport;
    private final Scheduler scheduler;
    private final LongSupplier clock;
    private final DoubleSupplier random;
    private final Listener listener;
    private final Object refreshLock = new Object();

    private volatile ClientConfig config;
    private volatile String etag = "";
    private volatile Exception lastError;
    private volatile long fetchedAt;
    private volatile long attemptAt = Long.MIN_VALUE / 2;
    private volatile long retryAfterMillis;

    // Guarded by this.
    private boolean running;
    private boolean closed;
    private Runnable cancelNext;

    private ConfigFetcher(Builder b) {
        this.url = b.url;
        this.transport = b.transport != null ? b.transport : new HttpTransport();
        this.scheduler = b.scheduler != null ? b.scheduler : new DaemonScheduler();
        this.clock = b.clock != null ? b.clock : System::currentTimeMillis;
        this.random = b.random != null ? b.random : () -> ThreadLocalRandom.current().nextDouble();
        this.listener = b.listener != null ? b.listener : new Listener() {};
        this.config = b.initial;
    }

    /** Starts building a fetcher for the gateway's /.well-known/shiftgate/client-config URL. */
    public static Builder builder(String url) {
        return new Builder(url);
    }

    /** Options of a ConfigFetcher; every one has a default. */
    public static final class Builder {
        private final String url;
        private Transport transport;
        private Scheduler scheduler;
        private LongSupplier clock;
        private DoubleSupplier random;
        private Listener listener;
        private ClientConfig initial;

        private Builder(String url) {
            if (url == null) {
                throw new NullPointerException("url");
            }
            this.url = url;
        }

        public Builder transport(Transport t) { this.transport = t; return this; }

        public Builder scheduler(Scheduler s) { this.scheduler = s; return this; }

        /** The clock in milliseconds. */
        public Builder clock(LongSupplier c) { this.clock = c; return this; }

        /** Uniform in [0, 1), for jitter. */
        public Builder random(DoubleSupplier r) { this.random = r; return this; }

        public Builder listener(Listener l) { this.listener = l; return this; }

        /** A last known good config (e.g. from storage) used until the first fetch succeeds. */
        public Builder initial(ClientConfig c) { this.initial = c; return this; }

        public ConfigFetcher build() { return new ConfigFetcher(this); }
    }

    /** The config in force (the last known good one), or null before any. */
    public ClientConfig config() {
        return config;
    }

    /** The ETag of the config in force, "" when unknown. */
    public String etag() {
        return etag;
    }

    /** The failure of the last refresh, null when it succeeded. */
    public Exception lastError() {
        return lastError;
    }

    /** When (by the clock) the gateway last confirmed the config; 0 never. */
    public long fetchedAt() {
        return fetchedAt;
    }

    /** {@link Shiftgate#explain} on the config in force. */
    public Decision explain(Request r) {
        return Shiftgate.explain(config, r);
    }

    /** {@link Shiftgate#decide} on the config in force: a region, or "". */
    public String decide(Request r) {
        return Shiftgate.decide(config, r);
    }

    /**
     * Fetches the config once, conditionally on the ETag. Never throws; on failure the
     * config in force stays. Concurrent calls run one after another.
     */
    public Result refresh() {
        synchronized (refreshLock) {
            attemptAt = clock.getAsLong();
            retryAfterMillis = 0;
            ClientConfig current = config;
            try {
                Response res = transport.get(url, current != null ? etag : "");
                if (res.status == 304 && current != null) {
                    ok();
                    return Result.NOT_MODIFIED;
                }
                if (res.status != 200) {
                    retryAfterMillis = retryAfter(res.retryAfter, clock.getAsLong());
                    throw new IOException("client config: HTTP " + res.status);
                }
                ClientConfig c = ClientConfig.parse(res.body);
                config = c;
                etag = res.etag;
                ok();
                listener.onUpdate(c, res.etag);
                return Result.UPDATED;
            } catch (Exception e) {
                lastError = e;
                listener.onError(e);
                return Result.ERROR;
            }
        }
    }

    private void ok() {
        lastError = null;
        fetchedAt = clock.getAsLong();
    }

    /**
     * The wait before the next refresh: the config's ttl (60 s when 0, at least 1 s)
     * ±10 % jitter; 5 s ±10 % while no config was ever fetched; never less than a
     * Retry-After.
     */
    public long nextDelayMillis() {
        ClientConfig c = config;
        long ttl = c != null && c.ttl > 0 ? c.ttl : ClientConfig.DEFAULT_TTL;
        long base = Math.max(1000, ttl * 1000);
        if (c == null) {
            base = Math.min(base, FIRST_RETRY_MILLIS);
        }
        long delay = Math.round(base * (0.9 + 0.2 * random.getAsDouble()));
        return Math.max(delay, retryAfterMillis);
    }

    /**
     * Fetches now, then every {@link #nextDelayMillis()} until {@link #close()}.
     * Idempotent; a closed fetcher does not start again.
     */
    public synchronized void start() {
        if (closed) {
            throw new IllegalStateException("ConfigFetcher is closed");
        }
        if (running) {
            return;
        }
        running = true;
        scheduleNext(0);
    }

    /** Cancels the next refresh; one under way completes but schedules nothing. */
    @Override
    public synchronized void close() {
        running = false;
        closed = true;
        if (cancelNext != null) {
            cancelNext.run();
            cancelNext = null;
        }
        if (scheduler instanceof DaemonScheduler) {
            ((DaemonScheduler) scheduler).shutdown();
        }
    }

    /**
     * Takes the gateway's X-Shift-Config-Version from any response: when it differs
     * from the config in force, refetches now, at most once per
     * {@link #VERSION_REFETCH_GAP_MILLIS}.
     */
    public synchronized void noteVersion(String version) {
        ClientConfig c = config;
        if (!running || version == null || version.isEmpty() || (c != null && version.equals(c.version))) {
            return;
        }
        if (clock.getAsLong() - attemptAt < VERSION_REFETCH_GAP_MILLIS) {
            return;
        }
        // Counts as an attempt at once, so a burst of responses causes one refetch.
        attemptAt = clock.getAsLong();
        scheduleNext(0);
    }

    private synchronized void scheduleNext(long delay) {
        if (cancelNext != null) {
            cancelNext.run();
        }
        cancelNext = scheduler.schedule(this::cycle, delay);
    }

    private void cycle() {
        refresh();
        synchronized (this) {
            if (running) {
                cancelNext = null;
                scheduleNext(nextDelayMillis());
            }
        }
    }

    /** Reads Retry-After (seconds or an HTTP date) into milliseconds from now; 0 if none. */
    static long retryAfter(String v, long now) {
        if (v == null || v.trim().isEmpty()) {
            return 0;
        }
        String s = v.trim();
        try {
            return Math.max(0, Long.parseLong(s) * 1000);
        } catch (NumberFormatException e) {
            try {
                return Math.max(0, ZonedDateTime.parse(s, DateTimeFormatter.RFC_1123_DATE_TIME).toInstant().toEpochMilli() - now);
            } catch (RuntimeException e2) {
                return 0;
            }
        }
    }

    /** HttpURLConnection with timeouts, no caches, and a body size cap. */
    static final class HttpTransport implements Transport {
        @Override
        public Response get(String url, String etag) throws IOException {
            HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
            c.setConnectTimeout(5000);
            c.setReadTimeout(10000);
            c.setUseCaches(false);
            c.setInstanceFollowRedirects(true);
            c.setRequestProperty("Accept", "application/json");
            if (!etag.isEmpty()) {
                c.setRequestProperty("If-None-Match", etag);
            }
            int status = c.getResponseCode();
            String body = "";
            InputStream in = status >= 400 ? c.getErrorStream() : c.getInputStream();
            if (in != null) {
                try {
                    byte[] b = readAll(in, status == 200 ? MAX_BODY_BYTES : 64 << 10);
                    if (status == 200) {
                        body = new String(b, StandardCharsets.UTF_8);
                    }
                } finally {
                    in.close();
                }
            }
            return new Response(status, c.getHeaderField("ETag"), body, c.getHeaderField("Retry-After"));
        }

        private static byte[] readAll(InputStream in, int max) throws IOException {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            for (int n; (n = in.read(buf)) > 0; ) {
                if (out.size() + n > max) {
                    throw new IOException("client config: body larger than " + max + " bytes");
                }
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        }
    }

    /** One daemon thread, so a fetcher never keeps the JVM alive. */
    static final class DaemonScheduler implements Scheduler {
        private final ScheduledExecutorService exec = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "shiftgate-config");
            t.setDaemon(true);
            return t;
        });

        @Override
        public Runnable schedule(Runnable task, long delayMillis) {
            final ScheduledFuture<?> f = exec.schedule(task, delayMillis, TimeUnit.MILLISECONDS);
            return () -> f.cancel(false);
        }

        void shutdown() {
            exec.shutdownNow();
        }
    }
}
