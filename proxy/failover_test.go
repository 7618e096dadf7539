package proxy

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/stats"
	"github.com/shiftgate/shiftgate/routing"
)

// failingBackend answers every request with status and counts them by method.
type failingBackend struct {
	addr         string
	gets, others atomic.Int64
}

func startFailing(t *testing.T, status int) *failingBackend {
	t.Helper()
	fb := &failingBackend{}
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	fb.addr = ln.Addr().String()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if ctx.IsGet() || ctx.IsHead() {
			fb.gets.Add(1)
		} else {
			fb.others.Add(1)
		}
		ctx.SetStatusCode(status)
		ctx.SetBodyString("backend error")
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return fb
}

const failoverConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
timeouts: { connect: 500ms, response_header: 2s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 100
    failover: {{FAILOVER}}
    breaker: { min_requests: 1000 }
`

func TestFailoverRules(t *testing.T) {
	for _, tc := range []struct {
		name, failover, method string
		body                   string
		wantStatus             int
		wantServed             string
		wantCloudGets          int64
		wantCloudOthers        int64
	}{
		{"GET fails over", "idempotent", "GET", "", 200, "idc", 1, 0},
		{"HEAD fails over", "idempotent", "HEAD", "", 200, "idc", 1, 0},
		{"POST is never replayed", "idempotent", "POST", "data", 503, "", 0, 1},
		{"PUT is never replayed", "idempotent", "PUT", "", 503, "", 0, 1},
		{"GET with a body is never replayed", "idempotent", "GET", "data", 503, "", 1, 0},
		{"no failover configured", "none", "GET", "", 503, "", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cloud := startFailing(t, 503)
			idc := startRegion(t, "idc")
			gw := startGateway(t, failoverConfig, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.addr, "FAILOVER": tc.failover})
			c := &fasthttp.HostClient{Addr: gw.addr}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.Header.SetMethod(tc.method)
			req.SetRequestURI("http://gw/api/feed")
			req.Header.Set("X-User-Id", "u-1")
			if tc.body != "" {
				req.SetBodyString(tc.body)
			}
			if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode() != tc.wantStatus || string(resp.Header.Peek("X-Served-By")) != tc.wantServed {
				t.Errorf("status %d served by %q, want %d %q", resp.StatusCode(), resp.Header.Peek("X-Served-By"), tc.wantStatus, tc.wantServed)
			}
			if g, o := cloud.gets.Load(), cloud.others.Load(); g != tc.wantCloudGets || o != tc.wantCloudOthers {
				t.Errorf("cloud saw %d GET/HEAD and %d others, want %d and %d", g, o, tc.wantCloudGets, tc.wantCloudOthers)
			}
			idcN := idc.Requests()
			replayed := tc.wantServed == "idc"
			if replayed != (idcN == 1) || idcN > 1 {
				t.Errorf("idc saw %d requests (replay expected: %v)", idcN, replayed)
			}
		})
	}
}

// TestNoRetryMultipliesTimeout checks that a hanging upstream costs one response
// timeout, not one per fasthttp retry.
func TestUpstreamTimeoutIs504(t *testing.T) {
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	defer ln.Close()
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			defer c.Close() // hang: read nothing, answer nothing
		}
	}()
	idc := startRegion(t, "idc")
	cfg := `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: s }
timeouts: { connect: 500ms, response_header: 300ms, body: 300ms }
routes:
  - name: all
    match: { path_prefix: / }
    percent: 100
`
	gw := startGateway(t, cfg, map[string]string{"IDC": idc.Addr, "CLOUD": ln.Addr().String()})
	c := &fasthttp.HostClient{Addr: gw.addr}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://gw/x")
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 504 {
		t.Errorf("status %d, want 504: %s", resp.StatusCode(), resp.Body())
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("upstream saw %d connections for one request: the client retried", n)
	}
	_ = routing.Bucket
	_ = fmt.Sprint
}

// TestBreakerSurvivesReload: a reload that leaves a route's breaker settings alone
// keeps the breaker's state; one that changes them starts a fresh breaker.
func TestBreakerSurvivesReload(t *testing.T) {
	cloud := startFailing(t, 503)
	idc := startRegion(t, "idc")
	cfgText := strings.Replace(failoverConfig, "breaker: { min_requests: 1000 }", "breaker: { min_requests: 5, open_for: 1m }", 1)
	gw := startGateway(t, cfgText, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.addr, "FAILOVER": "idempotent"})
	c := &fasthttp.HostClient{Addr: gw.addr}
	for i := 0; i < 10 && breakerState(gw.srv, "feed", "cloud") != "open"; i++ {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://gw/api/feed")
		req.Header.Set("X-User-Id", fmt.Sprintf("u-%d", i))
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if s := breakerState(gw.srv, "feed", "cloud"); s != "open" {
		t.Fatalf("breaker %s, want open", s)
	}
	reload := func(text string) {
		t.Helper()
		text = strings.NewReplacer("{{STATE}}", filepath.Join(gw.dir, "state"), "{{IDC}}", idc.Addr,
			"{{CLOUD}}", cloud.addr, "{{FAILOVER}}", "idempotent").Replace(text)
		cfg, err := conf.Parse(filepath.Join(gw.dir, "shiftgate.yaml"), []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if err := gw.srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	// Same breaker settings, other changes: still open.
	reload(strings.Replace(cfgText, "percent: 100", "percent: 90", 1))
	if s := breakerState(gw.srv, "feed", "cloud"); s != "open" {
		t.Errorf("after a reload that kept the breaker settings: %s, want open", s)
	}
	// New breaker settings: a fresh, closed breaker.
	reload(strings.Replace(cfgText, "min_requests: 5", "min_requests: 6", 1))
	if s := breakerState(gw.srv, "feed", "cloud"); s != "closed" {
		t.Errorf("after a reload that changed the breaker settings: %s, want closed", s)
	}
}

// TestNamedUpstreams: an upstream given by host name works, and its client is set to
// follow DNS: names are resolved again after resolve_every and connections to named
// hosts are recycled as often, while address upstreams keep their connections.
func TestNamedUpstreams(t *testing.T) {
	cloud := startRegion(t, "cloud")
	_, port, _ := net.SplitHostPort(cloud.Addr)
	idc := startRegion(t, "idc")
	cfg := strings.Replace(failoverConfig, `cloud: { upstreams: ["{{CLOUD}}"] }`,
		`cloud: { upstreams: ["localhost:`+port+`"], resolve_every: 7s }`, 1)
	if cfg == failoverConfig {
		t.Fatal("test config not rewritten")
	}
	gw := startGateway(t, cfg, map[string]string{"IDC": idc.Addr, "FAILOVER": "none"})
	c := &fasthttp.HostClient{Addr: gw.addr}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://gw/api/feed")
	req.Header.Set("X-User-Id", "u-1")
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 200 || string(resp.Header.Peek("X-Served-By")) != "cloud" {
		t.Fatalf("named upstream: %d served by %q", resp.StatusCode(), resp.Header.Peek("X-Served-By"))
	}
	st := gw.srv.state.Load()
	for id, p := range st.pools {
		hc := p.clients[0]
		named := st.cfg.RegionList[id].Name == "cloud"
		if named && hc.MaxConnDuration != 7*time.Second {
			t.Errorf("named upstream %s: connections recycled after %v, want resolve_every 7s", hc.Addr, hc.MaxConnDuration)
		}
		if !named && hc.MaxConnDuration != 0 {
			t.Errorf("address upstream %s: connections recycled after %v, want never", hc.Addr, hc.MaxConnDuration)
		}
	}
}

// TestFailoverOfMovedIsAMovedError: a moved user's request that to failed and from
// answered after a failover is filed as a moved error in to, so the moved-vs-stayed
// comparison and a plan's gates see the new region's failures though the user was
// spared; a stayed user's request that from failed and to answered stays a failover.
// Before, both were failovers and the moved cohort looked clean while to failed every
// request (an audit saw a plan ramp to 100 % with to failing 40 %).
func TestFailoverOfMovedIsAMovedError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failing string // the region whose backend answers 503
	}{{"to fails", "cloud"}, {"from fails", "idc"}} {
		t.Run(tc.name, func(t *testing.T) {
			bad := startFailing(t, 503)
			good := startRegion(t, "good")
			addrs := map[string]string{"IDC": good.Addr, "CLOUD": bad.addr, "FAILOVER": "idempotent"}
			if tc.failing == "idc" {
				addrs["IDC"], addrs["CLOUD"] = bad.addr, good.Addr
			}
			cfg := strings.Replace(failoverConfig, "percent: 100", "percent: 50", 1)
			gw := startGateway(t, cfg, addrs)
			c := &fasthttp.HostClient{Addr: gw.addr}
			var moved, stayed uint64
			for u := 0; u < 200; u++ {
				user := fmt.Sprintf("u-%d", u)
				if routing.Bucket("cutover-2026", user) < 5000 {
					moved++
				} else {
					stayed++
				}
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				req.SetRequestURI("http://gw/api/feed")
				req.Header.Set("X-User-Id", user)
				if err := c.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
					t.Fatalf("%s: %v %d: every request should be answered after a failover", user, err, resp.StatusCode())
				}
			}
			snap, err := gw.srv.Stats("feed", stats.View{})
			if err != nil {
				t.Fatal(err)
			}
			co := snap.Routes[0].Cohorts
			want := map[string][2]uint64{ // requests, errors
				"moved": {moved, moved}, "stayed": {stayed, 0}, "failover": {0, 0}}
			if tc.failing == "idc" {
				want = map[string][2]uint64{"moved": {moved, 0}, "stayed": {0, 0}, "failover": {stayed, 0}}
			}
			for name, r := range map[string]stats.Reading{"moved": co.Moved, "stayed": co.Stayed, "failover": co.Failover} {
				if got := [2]uint64{r.Requests, r.Errors}; got != want[name] {
					t.Errorf("%s cohort: %d requests, %d errors; want %d, %d", name, got[0], got[1], want[name][0], want[name][1])
				}
			}
		})
	}
}
