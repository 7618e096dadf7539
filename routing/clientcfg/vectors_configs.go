package clientcfg

import "encoding/json"

// configVectors are whole configs with requests; the expected decisions are Decide's,
// which the package's table tests check by hand.
func configVectors() []ConfigVector {
	out := []ConfigVector{cutoverVectors(), hostVectors(), rollbackVectors(), edgeConfigVectors()}
	for i := range out {
		for j := range out[i].Cases {
			c := &out[i].Cases[j]
			c.Expect = Decide(out[i].Config, c.Request)
		}
	}
	return out
}

func hdr(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// cutoverVectors is the example cutover: a quarter of users read from the cloud, 5 %
// write there; key order and methods.
func cutoverVectors() ConfigVector {
	keys := []string{"header:X-User-Id", "cookie:uid", "header:X-Device-Id", "ip"}
	cfg := &Config{
		Version: "7", Algorithm: Algorithm, TTL: 30,
		Regions: map[string]Region{
			"idc":   {PublicURL: "https://idc.example.com"},
			"cloud": {PublicURL: "https://cloud.example.com"},
		},
		Routes: []Route{
			{Name: "feed", Match: Match{PathPrefix: "/api/feed"}, From: "idc", To: "cloud", Salt: ContractSalt,
				Keys: keys, Percent: 25, WritePercent: 5},
			{Name: "default", Match: Match{PathPrefix: "/"}, From: "idc", To: "cloud", Salt: ContractSalt,
				Keys: keys, Percent: 0, WritePercent: 0},
		},
	}
	get := func(path string, h map[string]string) Request { return Request{Method: "GET", Path: path, Headers: h} }
	return ConfigVector{Name: "cutover", Config: cfg, Cases: []Case{
		{Name: "header key, bucket 2799 stays at 25 %", Request: get("/api/feed/home", hdr("X-User-Id", "42"))},
		{Name: "header key, bucket 900 moves at 25 %", Request: get("/api/feed/home", hdr("X-User-Id", "u-qa-1"))},
		{Name: "the same user's write stays at 5 %", Request: Request{Method: "POST", Path: "/api/feed/like", Headers: hdr("X-User-Id", "u-qa-1")}},
		{Name: "header name in another case", Request: get("/api/feed", hdr("x-user-id", "u-qa-1"))},
		{Name: "empty header falls through to the cookie", Request: Request{Method: "GET", Path: "/api/feed",
			Headers: hdr("X-User-Id", ""), Cookies: hdr("uid", "42")}},
		// HTTP's optional whitespace (SP, HTAB) around a header value is not part of it:
		// the gateway's parser trims it, so these hash as u-qa-1, bucket 900.
		{Name: "spaces around a header value are not part of the key", Request: get("/api/feed", hdr("X-User-Id", "  u-qa-1 "))},
		{Name: "tabs around a header value are not part of the key", Request: get("/api/feed", hdr("X-User-Id", "\t u-qa-1\t"))},
		{Name: "whitespace inside a header value is kept", Request: get("/api/feed", hdr("X-User-Id", " a b\t"))},
		{Name: "a header value of only spaces and tabs falls through to the cookie", Request: Request{Method: "GET",
			Path: "/api/feed", Headers: hdr("X-User-Id", " \t "), Cookies: hdr("uid", "42")}},
		{Name: "a blank header and a blank cookie fall through to the next header", Request: Request{Method: "GET",
			Path: "/api/feed", Headers: hdr("X-User-Id", "\t", "X-Device-Id", " d-7f3a "), Cookies: hdr("uid", "  ")}},
		{Name: "the gateway's cookie parser trims spaces and tabs too", Request: Request{Method: "GET", Path: "/api/feed",
			Cookies: hdr("uid", "\t42 ")}},
		// RFC 6265's quoted cookie value: one pair of enclosing double quotes is not
		// part of the key (document.cookie keeps them; the gateway's parser does not).
		{Name: "one pair of quotes around a cookie value is not part of the key", Request: Request{Method: "GET",
			Path: "/api/feed", Cookies: hdr("uid", `"u-qa-1"`)}},
		{Name: "quotes inside the spaces and tabs around a cookie value", Request: Request{Method: "GET",
			Path: "/api/feed", Cookies: hdr("uid", " \"u-qa-1\"\t")}},
		{Name: "spaces inside the quotes are part of the key", Request: Request{Method: "GET",
			Path: "/api/feed", Cookies: hdr("uid", `" 42 "`)}},
		{Name: "a cookie value with a stray quote is dropped: the next key applies", Request: Request{Method: "GET",
			Path: "/api/feed", Headers: hdr("X-Device-Id", "d-7f3a"), Cookies: hdr("uid", `"u-qa-1`)}},
		{Name: "a cookie value with a backslash is dropped: the next key applies", Request: Request{Method: "GET",
			Path: "/api/feed", Headers: hdr("X-Device-Id", "d-7f3a"), Cookies: hdr("uid", `u\qa`)}},
		{Name: "empty quotes are an empty cookie: the next key applies", Request: Request{Method: "GET",
			Path: "/api/feed", Headers: hdr("X-Device-Id", "d-7f3a"), Cookies: hdr("uid", `""`)}},
		// The path as the gateway routes it: decoded, "//", "." and ".." removed.
		{Name: "a doubled slash is one", Request: get("//api//feed/1", hdr("X-User-Id", "u-qa-1"))},
		{Name: "dot segments are resolved", Request: get("/api/x/../feed/./1", hdr("X-User-Id", "u-qa-1"))},
		{Name: "percent-encoded letters are decoded", Request: get("/api/%66eed", hdr("X-User-Id", "u-qa-1"))},
		{Name: "encoded dot segments climb out of the route", Request: get("/api/feed/%2e%2e/%2E%2E/other", hdr("X-User-Id", "u-qa-1"))},
		{Name: "a percent sign without two hex digits is kept", Request: get("/api/feed%zz", hdr("X-User-Id", "u-qa-1"))},
		// Only SP and HTAB are optional whitespace: a no-break space is part of the key.
		{Name: "a no-break space is not trimmed", Request: get("/api/feed", hdr("X-User-Id", "\u00a0u-qa-1"))},
		{Name: "cookie before the device header", Request: Request{Method: "GET", Path: "/api/feed",
			Headers: hdr("X-Device-Id", "d-7f3a"), Cookies: hdr("uid", "u-qa-1")}},
		{Name: "device header", Request: get("/api/feed", hdr("X-Device-Id", "d-7f3a"))},
		{Name: "ip when no other key", Request: Request{Method: "GET", Path: "/api/feed", IP: "203.0.113.7"}},
		{Name: "IPv4-mapped ip hashes as IPv4", Request: Request{Method: "GET", Path: "/api/feed", IP: "::ffff:203.0.113.7"}},
		{Name: "IPv6 ip in a long spelling", Request: Request{Method: "GET", Path: "/api/feed", IP: "2001:0DB8:0:0:0:0:0:1"}},
		{Name: "an ip that is not an address is skipped", Request: Request{Method: "GET", Path: "/api/feed", IP: "unknown"}},
		{Name: "no key goes to from", Request: get("/api/feed", nil)},
		{Name: "a query parameter not in the chain is no key", Request: Request{Method: "GET", Path: "/api/feed", Query: hdr("uid", "u-qa-1")}},
		{Name: "prefixes match bytes, not segments", Request: get("/api/feedback", hdr("X-User-Id", "u-qa-1"))},
		{Name: "other paths take the default route at 0 %", Request: get("/home", hdr("X-User-Id", "u-qa-1"))},
		{Name: "HEAD reads", Request: Request{Method: "HEAD", Path: "/api/feed", Headers: hdr("X-User-Id", "u-qa-1")}},
		{Name: "OPTIONS reads", Request: Request{Method: "OPTIONS", Path: "/api/feed", Headers: hdr("X-User-Id", "u-qa-1")}},
		{Name: "a lower-case get reads", Request: Request{Method: "get", Path: "/api/feed", Headers: hdr("X-User-Id", "u-qa-1")}},
		{Name: "no method is GET", Request: Request{Path: "/api/feed", Headers: hdr("X-User-Id", "u-qa-1")}},
		{Name: "DELETE writes", Request: Request{Method: "DELETE", Path: "/api/feed/1", Headers: hdr("X-User-Id", "u-qa-1")}},
		{Name: "no path is /", Request: Request{Method: "GET", Headers: hdr("X-User-Id", "u-qa-1")}},
	}}
}

// hostVectors: host matching (case, port, host routes before others) and key order.
func hostVectors() ConfigVector {
	order := []string{"query:u", "cookie:uid", "header:X-User-Id"}
	cfg := &Config{
		Version: "host-2", Algorithm: Algorithm, TTL: 300,
		Regions: map[string]Region{
			"a": {PublicURL: "https://a.example.com"},
			"b": {PublicURL: "https://b.example.com"},
		},
		// The route without a host comes first: a host route must win even so.
		Routes: []Route{
			{Name: "any-host-long", Match: Match{PathPrefix: "/v1/long"}, From: "a", To: "b", Salt: "s1",
				Keys: order, Percent: 0, WritePercent: 0},
			{Name: "api-host", Match: Match{Host: "api.example.com", PathPrefix: "/v1"}, From: "a", To: "b", Salt: "s1",
				Keys: order, Percent: 100, WritePercent: 100},
			{Name: "mobile", Match: Match{Host: "m.example.com", PathPrefix: "/"}, From: "a", To: "b", Salt: "",
				Keys: []string{"cookie:uid", "ip"}, Percent: 50, WritePercent: 12.5},
		},
	}
	return ConfigVector{Name: "hosts-and-key-order", Config: cfg, Cases: []Case{
		{Name: "host in another case with a port; a host route beats a longer prefix", Request: Request{Method: "GET",
			Host: "API.Example.COM:8443", Path: "/v1/long/x", Query: hdr("u", "u-1001")}},
		{Name: "another host takes the route without host", Request: Request{Method: "GET",
			Host: "www.example.com", Path: "/v1/long/x", Query: hdr("u", "u-1001")}},
		{Name: "no route matches", Request: Request{Method: "GET", Host: "www.example.com", Path: "/v1/short"}},
		{Name: "a known host with no matching prefix and no fallback route", Request: Request{Method: "GET",
			Host: "api.example.com", Path: "/v2/x", Query: hdr("u", "u-1001")}},
		{Name: "query before cookie before header", Request: Request{Method: "GET", Host: "api.example.com", Path: "/v1/x",
			Query: hdr("u", "u-1001"), Cookies: hdr("uid", "42"), Headers: hdr("X-User-Id", "d-7f3a")}},
		{Name: "empty query value falls through to the cookie", Request: Request{Method: "GET", Host: "api.example.com",
			Path: "/v1/x", Query: hdr("u", ""), Cookies: hdr("uid", "42"), Headers: hdr("X-User-Id", "d-7f3a")}},
		// A decoded query value is hashed as it is: the gateway trims headers and cookies only.
		{Name: "spaces around a query value are part of the key", Request: Request{Method: "GET", Host: "api.example.com",
			Path: "/v1/x", Query: hdr("u", " u-1001 ")}},
		{Name: "a query value of only spaces is a key", Request: Request{Method: "GET", Host: "api.example.com",
			Path: "/v1/x", Query: hdr("u", " "), Cookies: hdr("uid", "42")}},
		{Name: "cookie names are case-sensitive", Request: Request{Method: "GET", Host: "api.example.com",
			Path: "/v1/x", Cookies: hdr("UID", "42"), Headers: hdr("X-User-Id", "d-7f3a")}},
		{Name: "writes at 100 %", Request: Request{Method: "PUT", Host: "api.example.com", Path: "/v1/x", Query: hdr("u", "u-1001")}},
		{Name: "empty salt", Request: Request{Method: "GET", Host: "m.example.com", Path: "/feed", Cookies: hdr("uid", "42")}},
		{Name: "empty salt, write at 12.5 %", Request: Request{Method: "PATCH", Host: "m.example.com", Path: "/feed", Cookies: hdr("uid", "42")}},
		{Name: "IPv6 host literal with port", Request: Request{Method: "GET", Host: "[2001:db8::1]:8443", Path: "/v1/long",
			Query: hdr("u", "u-1001")}},
		{Name: "ip key on the mobile host", Request: Request{Method: "GET", Host: "m.example.com", Path: "/", IP: "2001:db8::1"}},
	}}
}

// rollbackVectors: rollback wins before any key is read; cutoff per route.
func rollbackVectors() ConfigVector {
	keys := []string{"header:X-User-Id"}
	cfg := &Config{
		Version: "rb-1", Algorithm: Algorithm, TTL: 5, Rollback: true,
		Regions: map[string]Region{
			"old": {PublicURL: "https://old.example.com"},
			"new": {PublicURL: "https://new.example.com"},
		},
		Routes: []Route{
			{Name: "feed", Match: Match{PathPrefix: "/api/feed"}, From: "old", To: "new", Salt: ContractSalt,
				Keys: keys, Percent: 100, WritePercent: 50, Cutoff: true},
			{Name: "api", Match: Match{PathPrefix: "/api"}, From: "old", To: "new", Salt: ContractSalt,
				Keys: keys, Percent: 100, WritePercent: 100},
		},
	}
	return ConfigVector{Name: "rollback", Config: cfg, Cases: []Case{
		{Name: "rollback sends a moved user to from; the route is cut off", Request: Request{Method: "GET",
			Path: "/api/feed", Headers: hdr("X-User-Id", "u-qa-1")}},
		{Name: "rollback for writes", Request: Request{Method: "POST", Path: "/api/feed", Headers: hdr("X-User-Id", "u-qa-1")}},
		{Name: "rollback on a route that is not cut off", Request: Request{Method: "GET", Path: "/api/x",
			Headers: hdr("X-User-Id", "u-qa-1")}},
		{Name: "rollback without a key", Request: Request{Method: "GET", Path: "/api/x"}},
		{Name: "no route under rollback", Request: Request{Method: "GET", Path: "/static/app.js"}},
	}}
}

// edgeConfigVectors: two-decimal percents decided at their thresholds, a site-wide
// cutoff, and a region without a public URL.
func edgeConfigVectors() ConfigVector {
	keys := []string{"header:X-User-Id"}
	cfg := &Config{
		Version: "2026-05-01T10:00:00Z#3", Algorithm: Algorithm, TTL: 0, Cutoff: true,
		Regions: map[string]Region{"old": {PublicURL: "https://old.example.com"}},
		Routes: []Route{
			{Name: "thirds", Match: Match{PathPrefix: "/"}, From: "old", To: "new", Salt: ContractSalt,
				Keys: keys, Percent: 33.33, WritePercent: 0.01},
			{Name: "nearly-all", Match: Match{PathPrefix: "/nearly"}, From: "old", To: "new", Salt: ContractSalt,
				Keys: keys, Percent: 99.99, WritePercent: 99.99},
			{Name: "all", Match: Match{PathPrefix: "/all"}, From: "old", To: "new", Salt: ContractSalt,
				Keys: keys, Percent: 100, WritePercent: 100},
		},
	}
	user := func(method, path string, bucket int) Request {
		return Request{Method: method, Path: path, Headers: hdr("X-User-Id", keyInBucket(ContractSalt, bucket))}
	}
	return ConfigVector{Name: "two-decimals-and-cutoff", Config: cfg, Cases: []Case{
		{Name: "bucket 3332 at 33.33 % moves", Request: user("GET", "/x", 3332)},
		{Name: "bucket 3333 at 33.33 % stays", Request: user("GET", "/x", 3333)},
		{Name: "bucket 0 writes at 0.01 % move", Request: user("POST", "/x", 0)},
		{Name: "bucket 1 writes at 0.01 % stay", Request: user("POST", "/x", 1)},
		{Name: "bucket 9998 at 99.99 % moves", Request: user("GET", "/nearly", 9998)},
		{Name: "bucket 9999 at 99.99 % stays", Request: user("GET", "/nearly", 9999)},
		{Name: "bucket 9999 at 100 % moves; the region has no public URL", Request: user("GET", "/all", 9999)},
	}}
}

// invalidConfigs are documents a parser must refuse, as JSON text, so that they can
// be wrong in ways a Config cannot express.
func invalidConfigs() []InvalidConfig {
	route := func(fields string) json.RawMessage {
		return json.RawMessage(`{"version":"1","algorithm":"` + Algorithm + `","ttl":30,"regions":{},"routes":[{` + fields + `}]}`)
	}
	const ok = `"name":"r","match":{"path_prefix":"/"},"from":"a","to":"b","salt":"s","keys":["ip"]`
	return []InvalidConfig{
		{Name: "unknown algorithm", Why: "a client must not guess", Config: json.RawMessage(`{"version":"1","algorithm":"murmur3-mod100","routes":[]}`)},
		{Name: "no algorithm", Why: "a client must not guess", Config: json.RawMessage(`{"version":"1","routes":[]}`)},
		{Name: "not an object", Why: "type", Config: json.RawMessage(`[]`)},
		{Name: "version is a number", Why: "version is a string", Config: json.RawMessage(`{"version":7,"algorithm":"` + Algorithm + `"}`)},
		{Name: "routes is not a list", Why: "type", Config: json.RawMessage(`{"version":"1","algorithm":"` + Algorithm + `","routes":{}}`)},
		{Name: "negative ttl", Why: "range", Config: json.RawMessage(`{"version":"1","algorithm":"` + Algorithm + `","ttl":-1}`)},
		{Name: "ttl not an integer", Why: "type", Config: json.RawMessage(`{"version":"1","algorithm":"` + Algorithm + `","ttl":1.5}`)},
		{Name: "rollback is a string", Why: "type", Config: json.RawMessage(`{"version":"1","algorithm":"` + Algorithm + `","rollback":"true"}`)},
		{Name: "percent above 100", Why: "range", Config: route(ok + `,"percent":100.01`)},
		{Name: "negative percent", Why: "range", Config: route(ok + `,"percent":-1`)},
		{Name: "three decimals", Why: "0.01 % steps", Config: route(ok + `,"percent":12.345`)},
		{Name: "percent is a string", Why: "type", Config: route(ok + `,"percent":"25"`)},
		{Name: "write_percent above percent", Why: "writes never move before reads", Config: route(ok + `,"percent":5,"write_percent":5.01`)},
		{Name: "write_percent above percent by default", Why: "writes never move before reads", Config: route(ok + `,"write_percent":1`)},
		{Name: "unknown key source", Why: "keys", Config: route(`"name":"r","from":"a","to":"b","keys":["body:uid"],"percent":1`)},
		{Name: "key source without a name", Why: "keys", Config: route(`"name":"r","from":"a","to":"b","keys":["header:"],"percent":1`)},
		{Name: "key source is not a string", Why: "keys", Config: route(`"name":"r","from":"a","to":"b","keys":[5],"percent":1`)},
		{Name: "no from", Why: "regions", Config: route(`"name":"r","to":"b","keys":["ip"],"percent":1`)},
		{Name: "no to", Why: "regions", Config: route(`"name":"r","from":"a","keys":["ip"],"percent":1`)},
		{Name: "no name", Why: "names", Config: route(`"from":"a","to":"b","keys":["ip"],"percent":1`)},
		{Name: "path prefix without a slash", Why: "match", Config: route(`"name":"r","match":{"path_prefix":"api"},"from":"a","to":"b","percent":1`)},
		{Name: "public_url is not a string", Why: "type", Config: json.RawMessage(`{"version":"1","algorithm":"` + Algorithm + `","regions":{"a":{"public_url":1}}}`)},
	}
}
