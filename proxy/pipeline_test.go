package proxy

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

const pipelineConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"], pipeline_conns: 2 }
  cloud: { upstreams: ["{{CLOUD}}"], pipeline_conns: 2 }
split: { from: idc, to: cloud, salt: cutover-2026 }
timeouts: { connect: 500ms, response_header: 2s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 100
    pipeline: true
    failover: idempotent
    breaker: { min_requests: 1000 }
`

// echoBackend answers each request with its own path, so a response that reaches the
// wrong request shows.
func echoBackend(t *testing.T, region string) (string, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	var reqs, conns atomic.Int64
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			reqs.Add(1)
			ctx.Response.Header.Set("X-Served-By", region)
			ctx.SetBody(ctx.RequestURI())
		},
		ConnState: func(c net.Conn, s fasthttp.ConnState) {
			if s == fasthttp.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String(), &reqs, &conns
}

func TestPipelinedRoute(t *testing.T) {
	cloud, cloudReqs, cloudConns := echoBackend(t, "cloud")
	idc := startRegion(t, "idc")
	gw := startGateway(t, pipelineConfig, map[string]string{"IDC": idc.Addr, "CLOUD": cloud})
	var wg sync.WaitGroup
	var bad atomic.Int64
	const clients, each = 50, 40
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := &fasthttp.HostClient{Addr: gw.addr, MaxConns: 1}
			for n := 0; n < each; n++ {
				path := fmt.Sprintf("/api/feed/%d/%d", i, n)
				method := "GET"
				if i < 3 && n%5 == 4 {
					method = "POST" // not pipelined: the ordinary pool
				}
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				req.Header.SetMethod(method)
				req.SetRequestURI("http://gw" + path)
				req.Header.Set("X-User-Id", fmt.Sprintf("u-%d", i))
				if err := c.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 || string(resp.Body()) != path {
					bad.Add(1)
				}
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(resp)
			}
		}(i)
	}
	wg.Wait()
	if b := bad.Load(); b != 0 {
		t.Fatalf("%d of %d responses wrong or failed", b, clients*each)
	}
	if n := cloudReqs.Load(); n != clients*each {
		t.Errorf("cloud answered %d requests, want %d", n, clients*each)
	}
	// 50 concurrent clients shared 2 pipelined connections (reconnects under load aside)
	// and the ordinary pool for the few POSTs.
	if n := cloudConns.Load(); n >= clients {
		t.Errorf("cloud saw %d connections: requests were not pipelined", n)
	}
	t.Logf("%d requests over %d upstream connections", cloudReqs.Load(), cloudConns.Load())
}

// TestPipelinedFailureIsNotReplayed: when a pipelined connection breaks, the requests
// on it fail (or fall back) and are never sent to the other region.
func TestPipelinedFailureIsNotReplayed(t *testing.T) {
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	defer ln.Close()
	var got atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				buf := make([]byte, 4096)
				n, _ := c.Read(buf) // the request reached the backend...
				if n > 0 {
					got.Add(int64(strings.Count(string(buf[:n]), "GET ")))
				}
				c.Close() // ...which dies before answering
			}(c)
		}
	}()
	idc := startRegion(t, "idc")
	gw := startGateway(t, pipelineConfig, map[string]string{"IDC": idc.Addr, "CLOUD": ln.Addr().String()})
	c := &fasthttp.HostClient{Addr: gw.addr}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://gw/api/feed")
	req.Header.Set("X-User-Id", "u-1")
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 502 {
		t.Errorf("status %d, want 502", resp.StatusCode())
	}
	if got.Load() == 0 {
		t.Fatal("the request never reached the dying backend")
	}
	if n := idc.Requests(); n != 0 {
		t.Errorf("a request that may have been processed was replayed to idc (%d)", n)
	}
}

// TestPipelinedUpstreamCloses: a backend that closes its connection every few answers
// (Connection: close) costs at most the requests queued behind that answer; every
// request gets an answer (its own, or a 502), none hangs, and the client reconnects.
func TestPipelinedUpstreamCloses(t *testing.T) {
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	var served atomic.Int64
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if served.Add(1)%25 == 0 {
			ctx.SetConnectionClose()
		}
		ctx.SetBody(ctx.RequestURI())
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	idc := startRegion(t, "idc")
	gw := startGateway(t, pipelineConfig, map[string]string{"IDC": idc.Addr, "CLOUD": ln.Addr().String()})
	var wg sync.WaitGroup
	var ok, failed, wrong, movedOver atomic.Int64
	const clients, each = 20, 50
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := &fasthttp.HostClient{Addr: gw.addr, MaxConns: 1}
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			for n := 0; n < each; n++ {
				path := fmt.Sprintf("/api/feed/%d/%d", i, n)
				req.SetRequestURI("http://gw" + path)
				req.Header.Set("X-User-Id", fmt.Sprintf("u-%d", i))
				if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
					t.Logf("%s: %v", path, err)
					wrong.Add(1)
					continue
				}
				switch {
				case resp.StatusCode() == 200 && string(resp.Body()) == path:
					ok.Add(1)
				case resp.StatusCode() == 502:
					failed.Add(1)
				case resp.StatusCode() == 200 && string(resp.Header.Peek("X-Served-By")) == "idc" &&
					strings.Contains(string(resp.Body()), `"path":"`+path+`"`):
					// Still queued when its connection broke, so never written:
					// failed over to the other region, as a refused connection would.
					ok.Add(1)
					movedOver.Add(1)
				default:
					t.Logf("%s: %d %q", path, resp.StatusCode(), resp.Body())
					wrong.Add(1)
				}
			}
		}(i)
	}
	wg.Wait()
	if w := wrong.Load(); w != 0 {
		t.Fatalf("%d requests got another request's answer, an odd status or no answer", w)
	}
	if ok.Load()+failed.Load() != clients*each {
		t.Fatalf("%d ok + %d failed != %d", ok.Load(), failed.Load(), clients*each)
	}
	if failed.Load() > clients*each/2 {
		t.Errorf("%d of %d failed: the client did not recover from closes", failed.Load(), clients*each)
	}
	t.Logf("%d ok (%d of them failed over before being sent), %d failed (502) with a close every 25 answers",
		ok.Load(), movedOver.Load(), failed.Load())
}
