package proxy

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const luaConfig = `listen: 127.0.0.1:0
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
      lua:
        timeout: 50ms
        source: |
          return function(req)
            if req.path == "/api/feed/boom" then error("no feed today") end
            if req.path == "/api/feed/spin" then while true do end end
            if req.path == "/api/feed/bomb" then return {status = 200, body = string.rep("x", 1e9)} end
            return {status = 200, headers = {["content-type"] = "application/json"},
                    body = '{"user":"' .. req.key .. '","region":"' .. req.region .. '"}'}
          end
  - name: withstatic
    match: { path_prefix: /api/static }
    fallback:
      static: { status: 200, body: 'static list' }
      lua: { source: 'return function(req) return {status = 200, body = "lua"} end' }
`

func TestLuaFallback(t *testing.T) {
	down := must(net.Listen("tcp", "127.0.0.1:0"))
	addr := down.Addr().String()
	down.Close() // connections to it are refused
	gw := startGateway(t, luaConfig, map[string]string{"DOWN": addr})
	c := &fasthttp.HostClient{Addr: gw.addr}
	for _, tc := range []struct {
		path       string
		status     int
		fb, body   string
		maxLatency time.Duration
	}{
		{"/api/feed/list", 200, "lua", `{"user":"u-42","region":"`, time.Second},
		{"/api/feed/boom", 502, "", "cannot connect", time.Second},
		{"/api/feed/spin", 502, "", "cannot connect", time.Second},
		{"/api/feed/bomb", 502, "", "cannot connect", time.Second},
		// The chain's order: static comes before the script.
		{"/api/static/x", 200, "static", "static list", time.Second},
	} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://gw" + tc.path)
		req.Header.Set("X-User-Id", "u-42")
		start := time.Now()
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		took := time.Since(start)
		if resp.StatusCode() != tc.status || string(resp.Header.Peek("X-Shift-Fallback")) != tc.fb || !strings.Contains(string(resp.Body()), tc.body) {
			t.Errorf("%s: %d fallback %q body %q; want %d %q containing %q", tc.path, resp.StatusCode(), resp.Header.Peek("X-Shift-Fallback"), resp.Body(), tc.status, tc.fb, tc.body)
		}
		if took > tc.maxLatency {
			t.Errorf("%s took %v", tc.path, took)
		}
	}
	if n := counterValue(gw.srv, `shiftgate_lua_errors_total{route="feed"}`); n != 3 {
		t.Errorf("lua errors = %d, want 3", n)
	}
	// The gateway keeps serving after runaway scripts.
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://gw/api/feed/list")
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("after runaway scripts: %v %d", err, resp.StatusCode())
	}
}
