package admin

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const readyConfig = `regions:
  idc: { upstreams: ["127.0.0.1:1"] }
split: { from: idc, to: idc }
routes:
  - name: default
    match: { path_prefix: / }
`

// TestReadyz: /healthz says the process is alive whatever it does; /readyz says it
// takes traffic: not before the traffic listener serves, not while draining.
func TestReadyz(t *testing.T) {
	srv := newTestGateway(t)
	hs := httptest.NewServer(Handler(srv))
	defer hs.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	expect := func(when, path string, status int, body string) {
		t.Helper()
		if st, b := get(path); st != status || !strings.Contains(b, body) {
			t.Errorf("%s: %s = %d %q, want %d %q", when, path, st, b, status, body)
		}
	}
	expect("before serving", "/healthz", 200, "ok")
	expect("before serving", "/readyz", 503, "not listening yet")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ok, _ := srv.Ready(); ok || time.Now().After(end) {
			break
		}
	}
	expect("serving", "/readyz", 200, "ready")

	if err := srv.Shutdown(time.Second); err != nil {
		t.Fatal(err)
	}
	<-done
	expect("draining", "/readyz", 503, "draining")
	expect("draining", "/healthz", 200, "ok")
}
