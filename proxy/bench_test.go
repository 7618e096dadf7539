package proxy

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/shiftgate/shiftgate/conf"
)

// inMemory is a gateway and two backends joined by in-memory listeners: the whole
// request path with no kernel in between, for benchmarks and the allocation test.
type inMemory struct {
	srv     *Server
	backend *fasthttp.Server
	ln      *fasthttputil.InmemoryListener
	client  *fasthttp.HostClient
}

// benchConfig is the reference config's routing, breakers and fallbacks.
const benchConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["idc-1:80", "idc-2:80"] }
  cloud: { upstreams: ["cloud-1:80"] }
client_ip: { trusted_proxies: ["10.0.0.0/8"] }
internal: { trusted_callers: ["10.1.0.0/16"] }
split:
  from: idc
  to: cloud
  salt: cutover-2026
  keys: ["header:X-User-Id", "cookie:uid", "header:X-Device-Id", "ip"]
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 25
    write_percent: 5
    force: { cloud: ["u-qa-1", "u-qa-2"] }
    breaker: { min_requests: 20, failure_ratio: 0.5, window: 10s, open_for: 5s }
    failover: idempotent
    fallback:
      cache: { ttl: 10m, max_bytes: 64MiB }
      static: { status: 200, content_type: application/json, body: '{"items":[]}' }
  - name: default
    match: { path_prefix: / }
    percent: 0
`

func newInMemory(tb testing.TB) *inMemory { return newInMemoryWith(tb, "") }

// newInMemoryWith adds top-level YAML (e.g. an access log) to the bench config.
func newInMemoryWith(tb testing.TB, extra string) *inMemory {
	tb.Helper()
	return newInMemoryConfig(tb, extra+benchConfig)
}

// newInMemoryConfig serves the config text ({{STATE}} and {{DIR}} replaced).
func newInMemoryConfig(tb testing.TB, config string) *inMemory {
	tb.Helper()
	body := []byte(strings.Repeat("x", 512))
	backendLn := fasthttputil.NewInmemoryListener()
	backend := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.SetContentType("application/json")
			ctx.Response.SetBodyRaw(body)
		},
		NoDefaultServerHeader: true, NoDefaultDate: true,
	}
	go backend.Serve(backendLn)
	dir := tb.TempDir()
	text := strings.ReplaceAll(config, "{{STATE}}", filepath.Join(dir, "state"))
	text = strings.ReplaceAll(text, "{{DIR}}", dir)
	path := filepath.Join(dir, "bench.yaml")
	os.WriteFile(path, []byte(text), 0o644)
	cfg, err := conf.LoadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := New(cfg, Options{Logger: quietLog(), Dial: func(string) (net.Conn, error) { return backendLn.Dial() }})
	if err != nil {
		tb.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	go srv.Serve(ln)
	m := &inMemory{srv: srv, backend: backend, ln: ln,
		client: &fasthttp.HostClient{Addr: "gw", Dial: func(string) (net.Conn, error) { return ln.Dial() }, MaxConns: 1024}}
	tb.Cleanup(func() {
		srv.Shutdown(time.Second)
		backend.Shutdown()
		backendLn.Close()
	})
	return m
}

// handleOnce runs the gateway's handler on ctx for one feed request, as the server
// would, and reads the (possibly streamed) body to its end.
func (m *inMemory) handleOnce(ctx *fasthttp.RequestCtx) {
	ctx.Request.Reset()
	ctx.Request.SetRequestURI("/api/feed?page=1")
	ctx.Request.Header.SetHost("gw")
	ctx.Request.Header.Set("X-User-Id", "u-1001")
	ctx.Response.Reset()
	m.srv.handle(ctx)
	ctx.Response.Body()
}

func (m *inMemory) do(tb testing.TB, req *fasthttp.Request, resp *fasthttp.Response) {
	if err := m.client.Do(req, resp); err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode() != 200 {
		tb.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
	}
}

// BenchmarkProxy measures the whole request path in process: client → gateway
// (decide, breaker, metrics, forward) → backend and back, over in-memory pipes.
func BenchmarkProxy(b *testing.B) {
	m := newInMemory(b)
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

// BenchmarkHandler measures the gateway's own work per request: the handler called
// directly on a RequestCtx, with the upstream over an in-memory pipe.
func BenchmarkHandler(b *testing.B) {
	m := newInMemory(b)
	var ctx fasthttp.RequestCtx
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	ctx.Init(&fasthttp.Request{}, remote, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.handleOnce(&ctx)
	}
}

// TestHandlerAllocs asserts the steady-state request path allocates nothing.
func TestHandlerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; run without -race (go test ./proxy/ -run TestHandlerAllocs)")
	}
	handlerAllocs(t, newInMemory(t))
}

// TestHandlerAllocsAccessLog: with the access log on, line buffers come back from the
// log's writer goroutine for reuse, so the steady state allocates nothing. How far the
// writer lags is the scheduler's choice (on a loaded machine it can fall hundreds of
// lines behind), and a lag deeper than any before takes new lines; so the free list is
// first filled as deep as one batch of requests, and each batch waits until the writer
// has given that many back. Then no request of a batch may find the free list empty,
// whatever the writer does meanwhile, and the process's allocations over the batches
// (the handler's and every background goroutine's) are counted.
func TestHandlerAllocsAccessLog(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	m := newInMemoryWith(t, "access_log: { path: {{DIR}}/access.log }\n")
	l := m.srv.alog.Load()
	if l == nil {
		t.Fatal("no access log")
	}
	const batch, batches = 500, 40
	held := make([]*logLine, batch)
	for i := range held {
		held[i] = l.getLine()
	}
	for _, line := range held {
		l.putLine(line)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	waitFree := func() {
		deadline := time.Now().Add(30 * time.Second)
		for len(l.free) < batch {
			if time.Now().After(deadline) {
				t.Fatalf("the writer gave back %d of %d lines in 30 s", len(l.free), batch)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range batch {
		m.handleOnce(&ctx) // warm the handler's pools and the fallback cache
	}
	var mallocs uint64
	var before, after runtime.MemStats
	for range batches {
		waitFree()
		runtime.ReadMemStats(&before)
		for range batch {
			m.handleOnce(&ctx)
		}
		runtime.ReadMemStats(&after)
		mallocs += after.Mallocs - before.Mallocs
	}
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("status %d", ctx.Response.StatusCode())
	}
	if n := l.dropped.Get(); n != 0 {
		t.Fatalf("%d lines dropped", n)
	}
	// A background goroutine may allocate during a batch (the writer checks once a
	// second whether the file was rotated): a few in all, not one per request.
	if per := float64(mallocs) / (batch * batches); per > 0.005 {
		t.Errorf("%.4f allocations per request with the access log on (%d in %d requests), want 0", per, mallocs, batch*batches)
	}
}

func handlerAllocs(t *testing.T, m *inMemory) {
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	run := func() {
		m.handleOnce(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("status %d", ctx.Response.StatusCode())
		}
	}
	for i := 0; i < 100; i++ {
		run() // warm pools and the fallback cache refresh
	}
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Errorf("%.1f allocations per proxied request, want 0", n)
	}
}

func BenchmarkHandlerAccessLog(b *testing.B) {
	m := newInMemoryWith(b, "access_log: { path: {{DIR}}/access.log }\n")
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m.handleOnce(&ctx)
	}
}
