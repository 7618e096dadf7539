package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pattern returns n bytes that differ with their offset, so a lost, repeated or
// reordered chunk shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%23 + i/4096%3)
	}
	return b
}

// backend answers ?size=N with N pattern bytes and otherwise echoes the method, the
// path and the request body, always with a Content-Length; it counts its connections.
func backend(t *testing.T) (addr string, conns *atomic.Int64) {
	conns = new(atomic.Int64)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if s := r.URL.Query().Get("size"); s != "" {
			n, _ := strconv.Atoi(s)
			body = pattern(n)
		} else {
			in, err := io.ReadAll(r.Body)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			body = append([]byte(r.Method+" "+r.URL.Path+" "), in...)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), conns
}

var modes = []struct {
	name, mode string
	raw        bool
}{
	{"netpoll", "netpoll", false},
	{"fasthttp", "fasthttp", false},
	{"epoll", "epoll", false},
	{"epoll-raw", "epoll", true},
}

// TestFloorsProxy sends one keep-alive connection's worth of requests of every shape
// the floors claim to frame through each floor: small and large answers, a large
// request body, HEAD, and two pipelined requests; each must come back whole, in
// order, over one upstream connection.
func TestFloorsProxy(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			be, upstreams := backend(t)
			c := dialFloor(t, m.mode, be, m.raw)
			br := bufio.NewReader(c)
			exchange := func(req string, method string, want []byte) {
				t.Helper()
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatal(err)
				}
				check(t, br, method, want)
			}
			get := func(path string) string {
				return "GET " + path + " HTTP/1.1\r\nHost: bench\r\nX-User-Id: u-1\r\n\r\n"
			}
			exchange(get("/api/feed"), "GET", []byte("GET /api/feed "))
			big := pattern(300 << 10)
			exchange(fmt.Sprintf("POST /up HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n%s", len(big), big),
				"POST", append([]byte("POST /up "), big...))
			exchange(get("/?size=200000"), "GET", pattern(200000))
			exchange("HEAD /?size=10 HTTP/1.1\r\nHost: bench\r\n\r\n", "HEAD", nil)
			// Two requests in one write: the answers come back in order.
			if _, err := io.WriteString(c, get("/one")+get("/two")); err != nil {
				t.Fatal(err)
			}
			check(t, br, "GET", []byte("GET /one "))
			check(t, br, "GET", []byte("GET /two "))
			exchange(get("/api/feed"), "GET", []byte("GET /api/feed "))
			if n := upstreams.Load(); n != 1 {
				t.Errorf("%d upstream connections for one client connection, want 1 (keep-alive)", n)
			}
		})
	}
}

// dialFloor starts a floor of mode in front of backend and returns a client
// connection to it with a hang guard; both end with the test.
func dialFloor(t *testing.T, mode, backend string, raw bool) net.Conn {
	t.Helper()
	s, err := start(mode, "127.0.0.1:0", backend, raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	c, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second)) // hang guard
	return c
}

func check(t *testing.T, br *bufio.Reader, method string, want []byte) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: body: %v", method, err)
	}
	if resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Fatalf("%s: status %d, body %d bytes %.40q; want 200, %d bytes %.40q", method, resp.StatusCode, len(got), got, len(want), want)
	}
	if method == "HEAD" && resp.ContentLength != 10 {
		t.Fatalf("HEAD: Content-Length %d, want 10", resp.ContentLength)
	}
}

// TestFloorsRefuseChunked: the hand-framed floors do not guess at a body they cannot
// frame; they answer 501 and close.
func TestFloorsRefuseChunked(t *testing.T) {
	for _, m := range modes {
		if m.mode == "fasthttp" {
			continue // fasthttp frames chunked bodies itself
		}
		t.Run(m.name, func(t *testing.T) {
			be, _ := backend(t)
			c := dialFloor(t, m.mode, be, m.raw)
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
			out, _ := io.ReadAll(c) // until the floor closes
			if !strings.HasPrefix(string(out), "HTTP/1.1 501 ") {
				t.Fatalf("got %q, want a 501 and a close", out)
			}
		})
	}
}
