package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
)

// logBuffer collects a server's log lines for tests that check what was logged.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tlsGateway is a Server under test with a plain and a TLS listener.
type tlsGateway struct {
	srv       *Server
	addr      string // plain
	tlsAddr   string
	dir       string
	log       *logBuffer
	path      string // the config file
	watchDone chan error
}

// startTLSGateway writes yamlText (with {{DIR}} the test's directory, {{STATE}} a
// state dir, and vars replaced) and serves it on a plain and a TLS listener, with
// the certificate watcher running, until the test ends. The config's paths may name
// files the caller wrote into dir beforehand.
func startTLSGateway(t *testing.T, dir, yamlText string, vars map[string]string) *tlsGateway {
	t.Helper()
	return startTLSGatewayOpt(t, dir, yamlText, vars, Options{})
}

// startTLSGatewayOpt is startTLSGateway with Options (the test hooks among them); its
// Logger and NoFallbackStore are the test's own.
func startTLSGatewayOpt(t *testing.T, dir, yamlText string, vars map[string]string, opt Options) *tlsGateway {
	t.Helper()
	text := strings.ReplaceAll(yamlText, "{{STATE}}", filepath.Join(dir, "state"))
	text = strings.ReplaceAll(text, "{{DIR}}", dir)
	for k, v := range vars {
		text = strings.ReplaceAll(text, "{{"+k+"}}", v)
	}
	path := filepath.Join(dir, "shiftgate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.LoadFile(path)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	lb := &logBuffer{}
	var w io.Writer = lb
	if testing.Verbose() {
		w = io.MultiWriter(lb, os.Stderr)
	}
	opt.Logger, opt.NoFallbackStore = slog.New(slog.NewTextHandler(w, nil)), true
	srv, err := New(cfg, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	tln := must(net.Listen("tcp", "127.0.0.1:0"))
	go srv.Serve(ln)     //nolint:errcheck
	go srv.ServeTLS(tln) //nolint:errcheck
	ctx, cancel := context.WithCancel(context.Background())
	g := &tlsGateway{srv: srv, addr: ln.Addr().String(), tlsAddr: tln.Addr().String(), dir: dir, log: lb, path: path,
		watchDone: make(chan error, 1)}
	srv.tls.watcher.Debounce = 20 * time.Millisecond
	go func() { g.watchDone <- srv.WatchCertificates(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-g.watchDone
		srv.Shutdown(5 * time.Second)
	})
	return g
}

// metric returns the value of the series named exactly name ("" when absent).
func (g *tlsGateway) metric(name string) string {
	var b strings.Builder
	g.srv.WriteMetrics(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// httpsGet sends one GET over a new TLS connection with cfg and returns the answer,
// its body and the connection's state.
func httpsGet(t *testing.T, addr string, cfg *tls.Config, target string, headers ...string) (*http.Response, string, tls.ConnectionState) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: ioWait}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioWait))
	req := "GET " + target + " HTTP/1.1\r\nHost: gw.test\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	io.WriteString(c, req+"\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("TLS response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body), c.ConnectionState()
}

// tlsBackend is an upstream that speaks TLS with cfg: it answers with its region,
// the path, and the common name of the client certificate it got, and counts
// connections and requests.
type tlsBackend struct {
	addr         string
	conns, reqs  atomic.Int64
	clientCNSeen atomic.Value
}

func startTLSBackend(t *testing.T, region string, cfg *tls.Config) *tlsBackend {
	t.Helper()
	b := &tlsBackend{}
	ln := tls.NewListener(must(net.Listen("tcp", "127.0.0.1:0")), cfg)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			b.reqs.Add(1)
			cn := ""
			if st := ctx.TLSConnectionState(); st != nil && len(st.PeerCertificates) > 0 {
				cn = st.PeerCertificates[0].Subject.CommonName
			}
			ctx.Response.Header.Set("X-Served-By", region)
			ctx.Response.Header.Set("X-Client-CN", cn)
			ctx.SetBodyString(string(ctx.Path()))
		},
		ConnState: func(c net.Conn, s fasthttp.ConnState) {
			if s == fasthttp.StateNew {
				b.conns.Add(1)
			}
		},
		Logger: quietLogger{},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	b.addr = ln.Addr().String()
	return b
}

// tlsWSBackend accepts upgrades over TLS and echoes.
func tlsWSBackend(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln := tls.NewListener(must(net.Listen("tcp", "127.0.0.1:0")), cfg)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
				io.Copy(c, br)
			}(c)
		}
	}()
	return ln.Addr().String()
}

// dialRawTLS is dialRaw over TLS, for the hostile tests.
func dialRawTLS(t testing.TB, addr string, cfg *tls.Config) *rawConn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: ioWait}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// servesTLS reports whether a new TLS connection to addr has a GET answered with a
// 200.
func servesTLS(t *testing.T, addr string, cfg *tls.Config) bool {
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: ioWait}, "tcp", addr, cfg)
	if err != nil {
		return false
	}
	defer tc.Close()
	rc := &rawConn{t: t, c: tc, br: newReader(tc)}
	rc.send(get("/after"))
	r, _, err := rc.response("GET")
	return err == nil && r.StatusCode == 200
}

// waitUntil polls cond until it holds or ioWait passes; it measures nothing.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quietLogger drops a test backend's logs (refused handshakes are the point).
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
