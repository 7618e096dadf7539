package proxy

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// inMemoryTLS is inMemory with TLS on both hops: the client speaks TLS to the
// gateway's TLS listener, the gateway speaks TLS (verified) to the backend.
type inMemoryTLS struct {
	srv        *Server
	ln         *fasthttputil.InmemoryListener
	clientConf *tls.Config
	client     *fasthttp.HostClient
}

func newInMemoryTLS(tb testing.TB) *inMemoryTLS { return newInMemoryTLSWith(tb, true) }

// newInMemoryTLSWith is newInMemoryTLS with the upstream hop over TLS or not.
func newInMemoryTLSWith(tb testing.TB, upstreamTLS bool) *inMemoryTLS {
	tb.Helper()
	dir := tb.TempDir()
	ca := tlstest.NewCA(tb, "bench CA")
	ca.WriteCA(tb, dir, "ca.pem")
	ca.WritePair(tb, dir, "gw", tlstest.Leaf{Names: []string{"gw.test"}})
	body := []byte(strings.Repeat("x", 512))
	backendLn := fasthttputil.NewInmemoryListener()
	backend := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.Response.Header.SetContentType("application/json")
			ctx.Response.SetBodyRaw(body)
		},
		NoDefaultServerHeader: true, NoDefaultDate: true,
	}
	text := strings.ReplaceAll(benchConfig, "{{STATE}}", filepath.Join(dir, "state"))
	if upstreamTLS {
		go backend.Serve(tls.NewListener(backendLn, &tls.Config{Certificates: []tls.Certificate{ca.TLSCert(tb, tlstest.Leaf{Names: []string{"backend.test"}})}}))
		tlsBlock := "\n    tls: { server_name: backend.test, ca_file: " + dir + "/ca.pem }\n"
		text = strings.Replace(text, `idc:   { upstreams: ["idc-1:80", "idc-2:80"] }`, `idc:`+"\n    upstreams: [\"idc-1:80\", \"idc-2:80\"]"+tlsBlock, 1)
		text = strings.Replace(text, `cloud: { upstreams: ["cloud-1:80"] }`, `cloud:`+"\n    upstreams: [\"cloud-1:80\"]"+tlsBlock, 1)
	} else {
		go backend.Serve(backendLn)
	}
	text += "tls: { listen: 127.0.0.1:0, certs: [{ cert_file: gw.crt, key_file: gw.key }] }\n"
	path := filepath.Join(dir, "bench.yaml")
	os.WriteFile(path, []byte(text), 0o644)
	cfg, err := conf.LoadFile(path)
	if err != nil {
		tb.Fatalf("%v\n%s", err, text)
	}
	srv, err := New(cfg, Options{Logger: quietLog(), Dial: func(string) (net.Conn, error) { return backendLn.Dial() }})
	if err != nil {
		tb.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	go srv.ServeTLS(ln)
	m := &inMemoryTLS{srv: srv, ln: ln, clientConf: &tls.Config{ServerName: "gw.test", RootCAs: ca.Pool()}}
	m.client = &fasthttp.HostClient{Addr: "gw", MaxConns: 1024, Dial: func(string) (net.Conn, error) { return m.dial() }}
	tb.Cleanup(func() {
		srv.Shutdown(time.Second)
		backend.Shutdown()
		backendLn.Close()
	})
	return m
}

// dial opens a new client connection and completes its handshake.
func (m *inMemoryTLS) dial() (*tls.Conn, error) {
	raw, err := m.ln.Dial()
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, m.clientConf)
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// BenchmarkProxyTLS is BenchmarkProxy with TLS on both hops: keep-alive requests,
// the cost of the record layer and of the TLS listener's wrapping.
func BenchmarkProxyTLS(b *testing.B) { benchProxyTLS(b, newInMemoryTLS(b)) }

// BenchmarkProxyTLSEdge is BenchmarkProxy with TLS between client and gateway only
// (the client's side of the work is in the figure too).
func BenchmarkProxyTLSEdge(b *testing.B) { benchProxyTLS(b, newInMemoryTLSWith(b, false)) }

func benchProxyTLS(b *testing.B, m *inMemoryTLS) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://gw/api/feed?page=1")
		req.Header.Set("X-User-Id", "u-1001")
		for pb.Next() {
			if err := m.client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
			}
		}
	})
}

// BenchmarkTLSHandshake measures one full handshake with the gateway's TLS
// listener (ECDSA P-256 certificate, Go's default key exchange) and one request on
// the new connection: the work of a new TLS connection.
func BenchmarkTLSHandshake(b *testing.B) {
	m := newInMemoryTLS(b)
	m.clientConf.ClientSessionCache = nil
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://gw/api/feed?page=1")
	req.SetConnectionClose()
	hc := &fasthttp.HostClient{Addr: "gw", Dial: func(string) (net.Conn, error) { return m.dial() }}
	b.ReportAllocs()
	for b.Loop() {
		if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("%v %d", err, resp.StatusCode())
		}
	}
}

// TestHandlerAllocsTLSUpstream: with the region's upstreams over TLS, the steady
// state of the request path allocates only what crypto/tls does: one small reader
// per network read of records (Conn.readFromUntil hands a fresh atLeastReader to
// bytes.Buffer.ReadFrom), two per answer here. The gateway adds none: the same
// path to a plain upstream allocates nothing (TestHandlerAllocs).
func TestHandlerAllocsTLSUpstream(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	m := newInMemoryTLS(t)
	im := &inMemory{srv: m.srv}
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	run := func() {
		im.handleOnce(&ctx)
		if ctx.Response.StatusCode() != 200 {
			t.Fatalf("status %d", ctx.Response.StatusCode())
		}
	}
	for i := 0; i < 100; i++ {
		run()
	}
	if n := testing.AllocsPerRun(200, run); n > 2 {
		t.Errorf("%.1f allocations per request to a TLS upstream, want at most crypto/tls's 2", n)
	}
}

// BenchmarkHandlerTLSUpstream is BenchmarkHandler with the upstream over TLS.
func BenchmarkHandlerTLSUpstream(b *testing.B) {
	m := newInMemoryTLS(b)
	im := &inMemory{srv: m.srv}
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	b.ReportAllocs()
	for b.Loop() {
		im.handleOnce(&ctx)
	}
}
