package dev.shiftgate.client;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What a client knows of a call it is about to make, built fluently:
 * {@code Request.get("/api/feed").header("X-User-Id", uid)}. Not thread-safe while
 * being built; decide only reads it.
 */
public final class Request {
    String method = "GET";
    String host = "";
    String path = "/";
    String ip = "";
    final Map<String, String> headers = new LinkedHashMap<String, String>();
    final Map<String, String> cookies = new LinkedHashMap<String, String>();
    final Map<String, String> query = new LinkedHashMap<String, String>();

    /** A GET of {@code path}. */
    public static Request get(String path) {
        return new Request().path(path);
    }

    /** Compared ASCII case-insensitively; GET, HEAD and OPTIONS read, anything else writes. */
    public Request method(String m) {
        this.method = m == null ? "GET" : m;
        return this;
    }

    /** The host, with any port and in any case. */
    public Request host(String h) {
        this.host = h == null ? "" : h;
        return this;
    }

    /** The URL path without the query string; null or "" is "/". */
    public Request path(String p) {
        this.path = p == null || p.isEmpty() ? "/" : p;
        return this;
    }

    /**
     * A header; names are matched ASCII case-insensitively. Spaces and tabs around the
     * value are not part of it, as on the wire.
     */
    public Request header(String name, String value) {
        headers.put(name, value);
        return this;
    }

    /** A cookie; names are matched exactly, values trimmed of spaces and tabs as headers are. */
    public Request cookie(String name, String value) {
        cookies.put(name, value);
        return this;
    }

    /** A query parameter (decoded); names are matched exactly. */
    public Request query(String name, String value) {
        query.put(name, value);
        return this;
    }

    /** Adds all of {@code m} as headers. */
    public Request headers(Map<String, String> m) {
        headers.putAll(m == null ? Collections.<String, String>emptyMap() : m);
        return this;
    }

    /** Adds all of {@code m} as cookies. */
    public Request cookies(Map<String, String> m) {
        cookies.putAll(m == null ? Collections.<String, String>emptyMap() : m);
        return this;
    }

    /** Adds all of {@code m} as query parameters. */
    public Request queries(Map<String, String> m) {
        query.putAll(m == null ? Collections.<String, String>emptyMap() : m);
        return this;
    }

    /**
     * The client's address as the gateway sees it, in any form net/netip parses; leave
     * it unset when unknown: the ip key source is then skipped.
     */
    public Request ip(String address) {
        this.ip = address == null ? "" : address;
        return this;
    }
}
