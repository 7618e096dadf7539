package proxy

import (
	"net"
	"strings"
	"testing"

	"github.com/shiftgate/shiftgate/proxy/wire"
)

// headFields returns the field lines of a raw head as name, value pairs, in order.
func headFields(head []byte) [][2]string {
	lines := strings.Split(strings.TrimSuffix(string(head), "\r\n\r\n"), "\r\n")
	var out [][2]string
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		out = append(out, [2]string{k, strings.TrimSpace(v)})
	}
	return out
}

// fieldsNamed returns the values of every field whose name folds (case, '_' for '-')
// to name.
func fieldsNamed(fields [][2]string, name string) []string {
	var out []string
	for _, f := range fields {
		if wire.FoldEqual([]byte(f[0]), strings.ToLower(name)) {
			out = append(out, f[1])
		}
	}
	return out
}

// lastRequest sends raw on a fresh connection, expects a 200 and returns the request
// the backend received.
func lastRequest(t *testing.T, gw *gateway, b *recBackend, raw string) *recRequest {
	t.Helper()
	n := len(b.requests())
	c := dialRaw(t, gw.addr)
	resp, body := c.roundTrip(strings.SplitN(raw, " ", 2)[0], raw)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d (%q), want 200", resp.StatusCode, body)
	}
	b.waitFor(t, ioWait, "the request", func() bool { return b.numRequests() > n })
	return b.requests()[n]
}

// TestHostileRequestHeaders checks what the backend gets of headers it must never see.
func TestHostileRequestHeaders(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, replyOK, "")
	cases := []struct {
		name   string
		extra  []string
		absent []string // no field folding to these names may arrive
		want   map[string][]string
	}{
		{"hop-by-hop", []string{"Keep-Alive: timeout=5", "Proxy-Connection: keep-alive", "TE: trailers", "Trailer: X-T",
			"Upgrade: h2c", "Proxy-Authorization: Basic eA==", "Proxy-Authenticate: Basic", "Proxy: http://evil.test:8080", "X-Kept: 1"},
			[]string{"Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade", "Proxy-Authorization", "Proxy-Authenticate", "Proxy", "Connection"},
			map[string][]string{"X-Kept": {"1"}}},
		{"hop-by-hop in odd case", []string{"kEEP-aLIVE: 1", "proxy-CONNECTION: 1", "te: trailers", "PROXY: http://evil.test"},
			[]string{"Keep-Alive", "Proxy-Connection", "TE", "Proxy"}, nil},
		{"hop-by-hop with underscores", []string{"Keep_Alive: 1", "Proxy_Connection: 1", "Proxy_Authorization: Basic eA=="},
			[]string{"Keep-Alive", "Proxy-Connection", "Proxy-Authorization"}, nil},
		{"named in Connection", []string{"Connection: keep-alive, X-Secret, x-other", "X-Secret: 1", "X-Other: 2", "X-Kept: 3"},
			[]string{"X-Secret", "X-Other", "Connection"}, map[string][]string{"X-Kept": {"3"}}},
		{"named in two Connection fields", []string{"Connection: X-A", "Connection: x-b", "X-A: 1", "x-B: 2", "X-Kept: 3"},
			[]string{"X-A", "X-B", "Connection"}, map[string][]string{"X-Kept": {"3"}}},
		{"Connection cannot remove Host", []string{"Connection: Host, X-Forwarded-For, X-Shift-Region"},
			[]string{"Connection"}, map[string][]string{"Host": {"gw.test"}, "X-Forwarded-For": {"127.0.0.1"}, "X-Shift-Region": {"idc"}}},
		{"X-Shift-Region", []string{"X-Shift-Region: cloud"}, nil, map[string][]string{"X-Shift-Region": {"idc"}}},
		{"X-Shift-Region lower case", []string{"x-shift-region: cloud"}, nil, map[string][]string{"X-Shift-Region": {"idc"}}},
		{"X_Shift_Region", []string{"X_Shift_Region: cloud"}, nil, map[string][]string{"X-Shift-Region": {"idc"}}},
		{"X-Shift_Region mixed", []string{"x-SHIFT_region: cloud", "X_SHIFT-REGION: cloud"}, nil, map[string][]string{"X-Shift-Region": {"idc"}}},
		{"X-Shift-Region duplicated", []string{"X-Shift-Region: cloud", "X-Shift-Region: idc", "X-Shift-Region: cloud, idc"}, nil,
			map[string][]string{"X-Shift-Region": {"idc"}}},
		{"X-Shift-Region every spelling at once", []string{"X-Shift-Region: cloud", "x_shift_region: cloud", "X_Shift-Region: cloud", "X-SHIFT-REGION: cloud"}, nil,
			map[string][]string{"X-Shift-Region": {"idc"}}},
		{"X-Shift-Mirror every spelling", []string{"X-Shift-Mirror: 1", "x_shift_mirror: 1", "X-SHIFT_MIRROR: 0"},
			[]string{"X-Shift-Mirror"}, nil},
		{"X-Forwarded-For absent", nil, nil, map[string][]string{"X-Forwarded-For": {"127.0.0.1"}}},
		{"X-Forwarded-For appended", []string{"X-Forwarded-For: 203.0.113.7"}, nil, map[string][]string{"X-Forwarded-For": {"203.0.113.7, 127.0.0.1"}}},
		{"X-Forwarded-For two fields", []string{"X-Forwarded-For: 203.0.113.7", "x-forwarded-for: 198.51.100.1, 10.0.0.1"}, nil,
			map[string][]string{"X-Forwarded-For": {"203.0.113.7, 198.51.100.1, 10.0.0.1, 127.0.0.1"}}},
		{"X_Forwarded_For dropped", []string{"X_Forwarded_For: 6.6.6.6"}, nil, map[string][]string{"X-Forwarded-For": {"127.0.0.1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := lastRequest(t, gw, b, get("/h", tc.extra...))
			fields := headFields(r.Head)
			for _, name := range tc.absent {
				if v := fieldsNamed(fields, name); len(v) > 0 {
					t.Errorf("%s reached the backend: %q\n%s", name, v, r.Head)
				}
			}
			for name, want := range tc.want {
				got := fieldsNamed(fields, name)
				if strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("%s: backend got %q, want %q\n%s", name, got, want, r.Head)
				}
			}
		})
	}
	b.mustBeClean(t)
}

// TestHostileConnectionNamesFraming checks that Connection cannot make the gateway drop
// the fields that frame a body: the body still arrives whole and nothing follows it.
func TestHostileConnectionNamesFraming(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, replyOK, "")
	for _, raw := range []string{
		post + "Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
		post + "Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		r := lastRequest(t, gw, b, raw)
		if string(r.Body) != "hello" {
			t.Errorf("backend body %q, want hello\n%s", r.Body, r.Head)
		}
	}
	b.mustBeClean(t)
}

// TestBodyWithoutContentType: a body sent without Content-Type reaches the backend
// without one. Before, fasthttp added Content-Type: application/octet-stream to
// every forwarded request with a body and none: a proxy that makes up a media type
// changes what some backends do with the body.
func TestBodyWithoutContentType(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, replyOK, "")
	for _, raw := range []string{
		post + "Content-Length: 5\r\n\r\nhello",
		post + "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
	} {
		r := lastRequest(t, gw, b, raw)
		sent := strings.Contains(raw, "Content-Type")
		got := fieldsNamed(headFields(r.Head), "Content-Type")
		if string(r.Body) != "hello" || (sent && strings.Join(got, "") != "text/plain") || (!sent && len(got) != 0) {
			t.Errorf("sent Content-Type %v: backend got %q, body %q\n%s", sent, got, r.Body, r.Head)
		}
	}
	b.mustBeClean(t)
}

// TestHostileResponseHeaders checks what the client gets of a backend's hop-by-hop and
// internal headers.
func TestHostileResponseHeaders(t *testing.T) {
	t.Parallel()
	const resp = "HTTP/1.1 200 OK\r\n" +
		"Content-Length: 2\r\n" +
		"Connection: keep-alive, X-Internal, x-debug\r\n" +
		"X-Internal: secret\r\n" +
		"x-debug: secret\r\n" +
		"keep-alive: timeout=5\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"proxy-authenticate: Basic\r\n" +
		"Upgrade: h2c\r\n" +
		"TE: trailers\r\n" +
		"X-Shift-Region: cloud\r\n" +
		"x_shift_region: cloud\r\n" +
		"X-Kept: 1\r\n" +
		"\r\nok"
	gw, b := startHostile(t, replyRaw(resp, true), "")
	c := dialRaw(t, gw.addr)
	r, body := c.roundTrip("GET", get("/r"))
	if r.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("got %d %q", r.StatusCode, body)
	}
	for _, name := range []string{"X-Internal", "X-Debug", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Upgrade", "TE", "X_Shift_Region", "Connection"} {
		if v, ok := r.Header[name]; ok {
			t.Errorf("client got %s: %q", name, v)
		}
	}
	for name := range r.Header {
		if wire.FoldEqual([]byte(name), "x-shift-region") && name != "X-Shift-Region" {
			t.Errorf("client got %s", name)
		}
	}
	if v := r.Header.Values("X-Shift-Region"); len(v) != 1 || v[0] != "idc" {
		t.Errorf("X-Shift-Region %q, want exactly [idc]", v)
	}
	if r.Header.Get("X-Kept") != "1" {
		t.Errorf("X-Kept lost")
	}
	// The connection stays usable.
	if r, _ := c.roundTrip("GET", get("/r2")); r.StatusCode != 200 {
		t.Errorf("second request: %d", r.StatusCode)
	}
	b.mustBeClean(t)
}

// TestHostileConnectionClose checks that a client's Connection: close (or an HTTP/1.0
// request without keep-alive) ends the connection after the response, and that
// keep-alive is kept otherwise.
func TestHostileConnectionClose(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, replyOK, "")
	cases := []struct {
		name  string
		raw   string
		close bool
	}{
		{"HTTP/1.1 default", get("/c"), false},
		{"Connection: close", get("/c", "Connection: close"), true},
		{"Connection: CLOSE", get("/c", "Connection: CLOSE"), true},
		{"close among tokens", get("/c", "Connection: x-a, close"), true},
		{"HTTP/1.0 default", "GET /c HTTP/1.0\r\nHost: gw.test\r\n\r\n", true},
		{"HTTP/1.0 keep-alive", "GET /c HTTP/1.0\r\nHost: gw.test\r\nConnection: keep-alive\r\n\r\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, gw.addr)
			r, _ := c.roundTrip("GET", tc.raw)
			if r.StatusCode != 200 {
				t.Fatalf("status %d", r.StatusCode)
			}
			if tc.close {
				if !r.Close {
					t.Errorf("response does not say Connection: close")
				}
				c.mustClose()
				return
			}
			if r.Close {
				t.Errorf("response closes a keep-alive connection")
			}
			if r, _ := c.roundTrip("GET", tc.raw); r.StatusCode != 200 {
				t.Errorf("second request: %d", r.StatusCode)
			}
		})
	}
	// Whatever the client said, upstream requests are HTTP/1.1 and keep-alive.
	for _, r := range b.requests() {
		if r.Req.Proto != "HTTP/1.1" || r.Req.Close {
			t.Errorf("upstream request %s close=%v:\n%s", r.Req.Proto, r.Req.Close, r.Head)
		}
	}
	b.mustBeClean(t)
}

// TestHostileHost checks the one-Host rule.
func TestHostileHost(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, replyOK, "")
	for _, tc := range []struct{ name, raw string }{
		{"two Host fields", "GET / HTTP/1.1\r\nHost: gw.test\r\nHost: evil.test\r\n\r\n"},
		{"two Host fields, same value", "GET / HTTP/1.1\r\nHost: gw.test\r\nhost: gw.test\r\n\r\n"},
		{"no Host in HTTP/1.1", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n"},
		{"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n"},
		{"no Host in HTTP/1.0", "GET / HTTP/1.0\r\n\r\n"},
		{"Host list", "GET / HTTP/1.1\r\nHost: gw.test, evil.test\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, gw.addr)
			r, body := c.roundTrip("GET", tc.raw)
			if r.StatusCode != 400 {
				t.Fatalf("status %d (%q), want 400", r.StatusCode, body)
			}
			c.mustClose()
		})
	}
	if n := b.totalBytes(); n != 0 {
		t.Errorf("%d bytes reached the backend", n)
	}
}

// TestHostileUpgradeSmuggling checks that a request claiming an upgrade the backend
// does not grant cannot turn the client connection into a raw pipe to the backend
// (the "fake WebSocket" smuggle): what the client sends next is not delivered unread.
func TestHostileUpgradeSmuggling(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, func(c net.Conn, r *recRequest) bool {
		c.Write([]byte("HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\nnope"))
		return true
	}, "")
	c := dialRaw(t, gw.addr)
	r, body := c.roundTrip("GET", get("/ws", "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="))
	if r.StatusCode != 426 || string(body) != "nope" {
		t.Fatalf("got %d %q, want the backend's 426", r.StatusCode, body)
	}
	c.send(hidden)
	// Either the gateway closes the connection, or what comes back is an answer
	// the backend wrote after reading the hidden request: by then it is recorded.
	c.closed(ioWait)
	for _, rr := range b.requests() {
		if rr.Req.URL.Path == "/hidden" && len(fieldsNamed(headFields(rr.Head), "X-Shift-Region")) == 0 {
			t.Errorf("the hidden request reached the backend through the tunnel, unread by the gateway:\n%s", rr.Head)
		}
	}
	b.mustBeClean(t)
}

// TestHostileRequestTrailers checks that the trailer of a chunked request body does not
// reach the backend: a trailer field is a field, and X-Shift-Region there would be as
// spoofed as in the head.
func TestHostileRequestTrailers(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, replyOK, "")
	r := lastRequest(t, gw, b, post+"Trailer: X-Shift-Region, X-T\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"5\r\nhello\r\n0\r\nX-Shift-Region: cloud\r\nX_Shift_Region: cloud\r\nX-T: 1\r\n\r\n")
	if string(r.Body) != "hello" {
		t.Errorf("body %q", r.Body)
	}
	if len(r.Trailer) != 0 {
		t.Errorf("trailer fields reached the backend: %v", r.Trailer)
	}
	if v := fieldsNamed(headFields(r.Head), "Trailer"); len(v) != 0 {
		t.Errorf("Trailer field reached the backend: %q", v)
	}
	b.mustBeClean(t)
}

// TestHostileUpgradeWithBody checks that an upgrade request with a body is refused: a
// tunnel would have to buffer it whole.
func TestHostileUpgradeWithBody(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, replyOK, "")
	for _, raw := range []string{
		post + "Connection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello",
		post + "Connection: Upgrade\r\nUpgrade: h2c\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		c := dialRaw(t, gw.addr)
		r, body := c.roundTrip("POST", raw)
		if r.StatusCode != 400 {
			t.Errorf("status %d %q, want 400", r.StatusCode, body)
		}
		c.mustClose()
	}
	if n := b.totalBytes(); n != 0 {
		t.Errorf("%d bytes reached the backend", n)
	}
}

// TestHostileTrustedCallerRegion checks the other side of the X-Shift-Region rule: from
// a trusted caller the header picks the region (affinity), and still the backend gets
// exactly one X-Shift-Region, the gateway's, whatever spellings the caller sent.
func TestHostileTrustedCallerRegion(t *testing.T) {
	t.Parallel()
	idc := startBackend(t, replyOK)
	cloud := startBackend(t, replyOK)
	conf := strings.Replace(hostileConf, `trusted_callers: ["10.1.0.0/16"]`, `trusted_callers: ["127.0.0.1/32"]`, 1)
	gw := startGateway(t, conf, map[string]string{"IDC": idc.addr, "CLOUD": cloud.addr, "LIMITS": ""})
	c := dialRaw(t, gw.addr)
	r, _ := c.roundTrip("GET", get("/affinity", "X-Shift-Region: cloud", "x_shift_region: idc", "X-SHIFT-REGION: idc"))
	if r.StatusCode != 200 || r.Header.Get("X-Shift-Region") != "cloud" {
		t.Fatalf("got %d, region %q; want 200 from cloud", r.StatusCode, r.Header.Get("X-Shift-Region"))
	}
	if n := len(idc.requests()); n != 0 {
		t.Errorf("idc got %d requests", n)
	}
	reqs := cloud.requests()
	if len(reqs) != 1 {
		t.Fatalf("cloud got %d requests", len(reqs))
	}
	if got := fieldsNamed(headFields(reqs[0].Head), "X-Shift-Region"); len(got) != 1 || got[0] != "cloud" {
		t.Errorf("backend got X-Shift-Region %q, want exactly [cloud]\n%s", got, reqs[0].Head)
	}
	cloud.mustBeClean(t)
}
