package loadtest

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// serveTLS runs h over TLS with a certificate for localhost on a free loopback
// port and returns the base URL, the CA file and a count of accepted connections.
func serveTLS(t *testing.T, h fasthttp.RequestHandler) (string, string, *atomic.Int64) {
	t.Helper()
	ca := tlstest.NewCA(t, "loadtest CA")
	caFile := ca.WriteCA(t, t.TempDir(), "ca.pem")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	srv := &fasthttp.Server{Handler: h, Logger: quiet{}, ConnState: func(_ net.Conn, s fasthttp.ConnState) {
		if s == fasthttp.StateNew {
			conns.Add(1)
		}
	}}
	cert := ca.TLSCert(t, tlstest.Leaf{Names: []string{"localhost", "127.0.0.1"}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}))
	}()
	t.Cleanup(func() { srv.Shutdown(); <-done })
	return "https://" + ln.Addr().String(), caFile, &conns
}

func TestRunTLS(t *testing.T) {
	base, caFile, conns := serveTLS(t, func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsTLS() {
			ctx.SetStatusCode(500)
		}
	})
	ctx := context.Background()

	// Keep-alive: as many handshakes as connections, not as requests.
	res, err := Run(ctx, Options{URL: base + "/k", N: 400, Conns: 4, TLS: TLSOptions{CAFile: caFile, Curve: "x25519"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Successes != 400 || res.Handshakes < 1 || res.Handshakes > 4 || conns.Load() > 4 {
		t.Fatalf("keep-alive over TLS: %d ok, %d handshakes, %d server connections", res.Successes, res.Handshakes, conns.Load())
	}
	if !strings.HasPrefix(res.TLS, "TLS 1.3 TLS_AES_128_GCM_SHA256 X25519 alpn=http/1.1") {
		t.Errorf("negotiated %q", res.TLS)
	}

	// New connections: one full handshake per request.
	before := conns.Load()
	res, err = Run(ctx, Options{URL: base + "/n", N: 50, Conns: 2, NewConns: true, TLS: TLSOptions{CAFile: caFile}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Successes != 50 || res.Handshakes != 50 || conns.Load()-before != 50 {
		t.Fatalf("new connections over TLS: %d ok, %d handshakes, %d server connections", res.Successes, res.Handshakes, conns.Load()-before)
	}
	var text strings.Builder
	res.WriteText(&text)
	if !strings.Contains(text.String(), "50 handshakes") {
		t.Errorf("text output:\n%s", text.String())
	}

	// Verification is on by default: a CA the server is not from fails every request.
	other := tlstest.NewCA(t, "other")
	wrong := other.WriteCA(t, t.TempDir(), "other.pem")
	res, err = Run(ctx, Options{URL: base + "/v", N: 3, Conns: 1, TLS: TLSOptions{CAFile: wrong}})
	if err != nil || res.Errors != 3 {
		t.Fatalf("unverifiable server: %v, %d errors", err, res.Errors)
	}
	res, err = Run(ctx, Options{URL: base + "/i", N: 3, Conns: 1, TLS: TLSOptions{InsecureSkipVerify: true}})
	if err != nil || res.Successes != 3 {
		t.Fatalf("insecure: %v, %d ok", err, res.Successes)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("x"), 0o600)
	if _, err := Run(ctx, Options{URL: base, N: 1, TLS: TLSOptions{CAFile: bad}}); err == nil {
		t.Error("a CA file without certificates was accepted")
	}
	if _, err := Run(ctx, Options{URL: base, N: 1, TLS: TLSOptions{Curve: "x448"}}); err == nil {
		t.Error("an unknown curve was accepted")
	}
}

// quiet drops the test server's logs (refused handshakes are the point).
type quiet struct{}

func (quiet) Printf(string, ...any) {}
