package proxy

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// leversBenchConfig is the bench config with every lever on and none reached: a site
// cap, a cap on the feed route, and a byte budget on the link the feed request crosses
// (self_region is cloud; u-1001 is served by idc).
func leversBenchConfig() string {
	c := "self_region: cloud\nlimits: { site_rps: 1000000000 }\nbudgets: [{ from: cloud, to: idc, rate: 100Tbit }]\n" + benchConfig
	return strings.Replace(c, "    percent: 25\n", "    percent: 25\n    limit_rps: 1000000000\n    priority: critical\n", 1)
}

// TestHandlerAllocsWithLevers: caps and a byte budget that are not reached keep the
// request path allocation-free (Admit, AdmitCross and Bytes included).
func TestHandlerAllocsWithLevers(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; run without -race (go test ./proxy/ -run Allocs)")
	}
	m := newInMemoryConfig(t, leversBenchConfig())
	if g := m.srv.state.Load().gate; g == nil {
		t.Fatal("levers configured but no gate on the request path")
	}
	handlerAllocs(t, m)
	st := m.srv.Limits()
	if len(st.CrossRegion) != 1 || st.CrossRegion[0].Bytes == 0 {
		t.Fatalf("the budget's pair counted nothing: %+v", st.CrossRegion)
	}
}

// TestShedResponseAllocs: a refusal is written without allocating.
func TestShedResponseAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	m := newInMemoryConfig(t, strings.Replace(benchConfig, "    percent: 25\n", "    percent: 25\n    limit_rps: 0.001\n", 1))
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	for i := 0; i < 20; i++ {
		m.handleOnce(&ctx) // spend the burst
	}
	run := func() {
		m.handleOnce(&ctx)
		if ctx.Response.StatusCode() != 503 || string(ctx.Response.Header.Peek("X-Shift-Shed")) != "route" {
			t.Fatalf("status %d shed %q", ctx.Response.StatusCode(), ctx.Response.Header.Peek("X-Shift-Shed"))
		}
	}
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Errorf("%.1f allocations per refused request, want 0", n)
	}
}

// BenchmarkHandlerLevers is BenchmarkHandler with caps and a budget not reached.
func BenchmarkHandlerLevers(b *testing.B) {
	m := newInMemoryConfig(b, leversBenchConfig())
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	b.ReportAllocs()
	for b.Loop() {
		m.handleOnce(&ctx)
	}
}

// BenchmarkLeverChecks measures what the levers add to a request whose caps and
// budget are not reached: Admit, AdmitCross, counting the bytes and Bytes.
func BenchmarkLeverChecks(b *testing.B) {
	m := newInMemoryConfig(b, leversBenchConfig())
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	m.handleOnce(&ctx)
	st := m.srv.state.Load()
	self := int(st.cfg.SelfRegionID)
	other := 1 - self
	// The handler reads the request's start time, which fasthttp has read already;
	// here time moves a microsecond a request.
	now := m.srv.reqTime(&ctx)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		if !st.gate.Admit(0, now).OK() {
			b.Fatal("refused")
		}
		if v := st.gate.AdmitCross(0, self, other, true, true, now); v.Action != 0 {
			b.Fatalf("not forwarded: %+v", v)
		}
		st.gate.Bytes(self, other, crossBytes(&ctx, true), now)
	}
}

// BenchmarkProxyLevers is BenchmarkProxy with a site cap, a route cap and a byte
// budget that are not reached (the feed request crosses the budget's link).
func BenchmarkProxyLevers(b *testing.B) {
	m := newInMemoryConfig(b, leversBenchConfig())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://gw/api/feed?page=1")
		req.Header.Set("X-User-Id", "u-1001")
		for pb.Next() {
			m.do(b, req, resp)
		}
	})
}
