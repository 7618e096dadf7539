package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
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
	wait       string
}{
	{"netpoll", "netpoll", false, waitSyscall},
	{"fasthttp", "fasthttp", false, waitSyscall},
	{"epoll", "epoll", false, waitSyscall},
	{"epoll-raw", "epoll", true, waitSyscall},
	{"epoll-raw-netpoll", "epoll", true, waitNetpoll},
	{"epoll-raw-held", "epoll", true, waitHeld},
}

// TestFloorsProxy sends one keep-alive connection's worth of requests of every shape
// the floors claim to frame through each floor: small and large answers, a large
// request body, HEAD, and two pipelined requests; each must come back whole, in
// order, over one upstream connection.
func TestFloorsProxy(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			be, upstreams := backend(t)
			c := dialFloor(t, m.mode, be, m.raw, m.wait)
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
func dialFloor(t *testing.T, mode, backend string, raw bool, wait string) net.Conn {
	t.Helper()
	s, err := start(mode, "127.0.0.1:0", backend, raw, wait)
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
			c := dialFloor(t, m.mode, be, m.raw, m.wait)
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
			out, _ := io.ReadAll(c) // until the floor closes
			if !strings.HasPrefix(string(out), "HTTP/1.1 501 ") {
				t.Fatalf("got %q, want a 501 and a close", out)
			}
		})
	}
}

// TestFloorWaits: each -wait leaves an idle event loop where it says: blocked in a
// system call (the runtime sees "syscall"), parked in Go's netpoller ("IO wait"), or
// keeping its processor in a raw call (the runtime sees a running goroutine, or one
// the stack dump's own stop of the world preempted); the loops that wait in a system
// call keep their thread, the one the poller wakes does not.
func TestFloorWaits(t *testing.T) {
	cases := []struct {
		wait   string
		states []string
	}{
		{waitSyscall, []string{"syscall, locked to thread"}},
		{waitNetpoll, []string{"IO wait"}},
		{waitHeld, []string{"running, locked to thread", "runnable, locked to thread", "preempted, locked to thread"}},
	}
	for _, c := range cases {
		t.Run(c.wait, func(t *testing.T) {
			be, _ := backend(t)
			conn := dialFloor(t, "epoll", be, true, c.wait)
			// One exchange: the loop has run and gone back to waiting.
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: b\r\n\r\n")
			check(t, bufio.NewReader(conn), "GET", []byte("GET / "))
			want := func(states []string) bool {
				return !slices.ContainsFunc(states, func(s string) bool { return !slices.Contains(c.states, s) })
			}
			// A loop may still be on its way back to its wait; once there, it stays:
			// a held wait that was a timed system call after all would show as one
			// in most of the samples that follow.
			ids := loopIDs(t)
			states := loopStates(t, ids)
			for i := 0; !want(states) && i < 200; i++ {
				time.Sleep(5 * time.Millisecond)
				states = loopStates(t, ids)
			}
			for range 10 {
				if !want(states) {
					t.Fatalf("idle event loops under -wait %s are %q, want each one of %q", c.wait, states, c.states)
				}
				time.Sleep(3 * time.Millisecond)
				states = loopStates(t, ids)
			}
		})
	}
}

// loopIDs returns the goroutine ids of the event loops, one per GOMAXPROCS. A loop
// that is running on another thread when the stack is dumped shows no stack ("stack
// unavailable"), so it cannot be told apart by its functions in that dump: the ids
// are gathered over dumps until every loop has been seen with its stack.
func loopIDs(t *testing.T) []string {
	seen := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < runtime.GOMAXPROCS(0) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, ".(*loop).run(") {
				id, _, _ := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
				seen[id] = true
			}
		}
		if len(seen) > runtime.GOMAXPROCS(0) || time.Now().After(deadline) {
			t.Fatalf("%d event loop goroutines seen, want one per GOMAXPROCS (%d):\n%s", len(seen), runtime.GOMAXPROCS(0), buf)
		}
		time.Sleep(time.Millisecond)
	}
	return slices.Sorted(maps.Keys(seen))
}

// loopStates returns the state the runtime reports for each event loop's goroutine
// (ids from loopIDs), as the stack dump's header gives it ("syscall, locked to
// thread"), whether or not its stack is in the dump.
func loopStates(t *testing.T, ids []string) []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var states []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, "\n") // goroutine 7 [IO wait, locked to thread]:
		id, st, ok := strings.Cut(strings.TrimPrefix(head, "goroutine "), " [")
		if !ok || !slices.Contains(ids, id) {
			continue
		}
		st, _, _ = strings.Cut(st, "]")
		states = append(states, st)
	}
	if len(states) != len(ids) {
		t.Fatalf("%d of the %d event loop goroutines in the stack dump:\n%s", len(states), len(ids), buf)
	}
	return states
}

// TestFloorFlags: -wait belongs to the epoll mode and takes one of its three values.
func TestFloorFlags(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-mode", "netpoll", "-wait", "held", "-backend", "127.0.0.1:1"}, 2, "usage: floor"},
		{[]string{"-mode", "epoll", "-wait", "spin", "-listen", "127.0.0.1:0", "-backend", "127.0.0.1:1"}, 1, `-wait is syscall, netpoll or held, got "spin"`},
	}
	for _, c := range cases {
		var out, errb strings.Builder
		if code := run(c.args, &out, &errb); code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("floor %q: exit %d, stderr %q; want %d and %q", c.args, code, errb.String(), c.code, c.want)
		}
	}
}
