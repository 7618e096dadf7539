package proxy

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// writesConfig has both regions down; feed has a static body and a script with the
// default fallback methods, optin lists POST too, luaonly has only a script.
const writesConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{DOWN}}"] }
  cloud: { upstreams: ["{{DOWN}}"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
timeouts: { connect: 300ms }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 50
    fallback:
      cache: { ttl: 1m }
      static: { status: 200, body: '{"items":[]}' }
  - name: optin
    match: { path_prefix: /api/optin }
    fallback:
      static: { status: 202, body: 'queued' }
      methods: [GET, HEAD, POST]
  - name: luaonly
    match: { path_prefix: /api/lua }
    breaker: { disabled: true }
    fallback:
      lua: { source: 'return function(req) return {status = 200, body = "lua"} end' }
`

// TestWriteNeverFallsBack: with both regions down, a write gets a clear 5xx, never a
// fallback's 200 that would make a lost write look saved, unless its route lists the
// method in fallback.methods; reads still get the fallback.
func TestWriteNeverFallsBack(t *testing.T) {
	down := must(net.Listen("tcp", "127.0.0.1:0"))
	addr := down.Addr().String()
	down.Close() // connections to it are refused
	gw := startGateway(t, writesConfig, map[string]string{"DOWN": addr})
	c := &fasthttp.HostClient{Addr: gw.addr}
	for _, tc := range []struct {
		method, path string
		status       int
		fb           string
	}{
		{"GET", "/api/feed", 200, "static"},
		{"HEAD", "/api/feed", 200, "static"},
		{"POST", "/api/feed", 502, ""},
		{"PUT", "/api/feed", 502, ""},
		{"DELETE", "/api/feed", 502, ""},
		{"PATCH", "/api/feed", 502, ""},
		{"OPTIONS", "/api/feed", 502, ""},
		{"POST", "/api/optin", 202, "static"},
		{"GET", "/api/optin", 202, "static"},
		{"PUT", "/api/optin", 502, ""},
		{"GET", "/api/lua", 200, "lua"},
		{"POST", "/api/lua", 502, ""},
	} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.Header.SetMethod(tc.method)
		req.SetRequestURI("http://gw" + tc.path)
		req.Header.Set("X-User-Id", "u-1001")
		if tc.method != "GET" && tc.method != "HEAD" {
			req.SetBodyString(`{"text":"hello"}`)
		}
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if fb := string(resp.Header.Peek("X-Shift-Fallback")); resp.StatusCode() != tc.status || fb != tc.fb {
			t.Errorf("%s %s with both regions down: %d fallback %q; want %d fallback %q (%s)",
				tc.method, tc.path, resp.StatusCode(), fb, tc.status, tc.fb, resp.Body())
		}
		if tc.fb == "" && len(resp.Header.Peek("X-Shift-Region")) == 0 {
			t.Errorf("%s %s: the error lacks X-Shift-Region", tc.method, tc.path)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}
