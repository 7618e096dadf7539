package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

// startGatewayOpt is startGateway with Options (the test hooks among them).
func startGatewayOpt(t *testing.T, yamlText string, vars map[string]string, opt Options) *gateway {
	t.Helper()
	dir := t.TempDir()
	r := []string{"{{STATE}}", filepath.Join(dir, "state")}
	for k, v := range vars {
		r = append(r, "{{"+k+"}}", v)
	}
	path := filepath.Join(dir, "shiftgate.yaml")
	if err := os.WriteFile(path, []byte(strings.NewReplacer(r...).Replace(yamlText)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown(5 * time.Second) })
	return &gateway{srv: srv, addr: ln.Addr().String(), dir: dir}
}

// parkGateway starts a gateway on yamlText with both regions on b whose idle
// connections park after after (0: the config's timeouts.park_idle).
func parkGateway(t *testing.T, b *recBackend, yamlText string, after time.Duration) *gateway {
	t.Helper()
	return startGatewayOpt(t, yamlText, map[string]string{"IDC": b.addr, "CLOUD": b.addr}, Options{parkAfter: after})
}

// servedConn dials addr and has one GET for path answered on the connection, which
// then waits for its next request.
func servedConn(t *testing.T, addr, path string) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	if r, _ := c.roundTrip("GET", get(path)); r.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, r.StatusCode)
	}
	return c
}

// waitParked waits (bounded) until n client connections are parked and none is
// served.
func waitParked(t *testing.T, srv *Server, n int) {
	t.Helper()
	waitParkedOn(t, srv, n, 1)
}

// waitParkedOn is waitParked for a server with that many listeners: fasthttp counts
// each accept loop as an open connection, and subtracts one.
func waitParkedOn(t *testing.T, srv *Server, n, listeners int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d parked connections", n), func() bool {
		return srv.parking.Parked() == n && srv.http.GetOpenConnectionsCount() == int32(listeners-1)
	})
}

// TestParkedConnsServe: keep-alive connections that waited past parkAfter are parked
// (no goroutine, buffer or context of fasthttp's), and go on serving their clients
// on the same connection: a plain GET, a 1 MiB streamed body, pipelined requests. They
// then park again.
func TestParkedConnsServe(t *testing.T) {
	b := startBackend(t, replyOK)
	gw := parkGateway(t, b, stallConf, 20*time.Millisecond)
	const n = 8
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = servedConn(t, gw.addr, "/first")
	}
	waitParked(t, gw.srv, n)

	for i := 2; i < n; i++ {
		if r, body := conns[i].roundTrip("GET", get("/again", "X-Req-Id: again")); r.StatusCode != 200 || !strings.Contains(string(body), "id=again") {
			t.Fatalf("request on parked connection %d: %d %q", i, r.StatusCode, body)
		}
	}
	// A streamed body larger than the read buffer.
	big := strings.Repeat("0123456789abcdef", 1<<16)
	conns[0].send(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n%s", len(big), big))
	if r, _ := conns[0].mustResponse("POST"); r.StatusCode != 200 {
		t.Fatalf("POST on a parked connection: %d", r.StatusCode)
	}
	// Two pipelined requests in one write.
	conns[1].send(get("/p1", "X-Req-Id: p1") + get("/p2", "X-Req-Id: p2"))
	for _, id := range []string{"p1", "p2"} {
		if r, body := conns[1].mustResponse("GET"); r.StatusCode != 200 || !strings.Contains(string(body), "id="+id) {
			t.Fatalf("pipelined %s on a parked connection: %d %q", id, r.StatusCode, body)
		}
	}
	sum := sha256.Sum256([]byte(big))
	found := false
	for _, r := range b.requests() {
		found = found || (r.Req.URL.Path == "/upload" && r.BodyLen == int64(len(big)) && r.BodySum == sum)
	}
	if !found {
		t.Error("the backend did not get the POST's body whole")
	}
	waitParked(t, gw.srv, n)
}

// TestParkedIdleMemory: a parked connection, once detached, holds no net.Conn, buffer,
// request context or goroutine: on Linux its bare socket is a map entry and a place in
// the deadline heap (164–305 bytes measured; 1.2 KiB as a net.Conn with its raw I/O
// state, 70 KB unparked, TestIdleConnMemory). Tests detach parked connections as soon
// as they park. The clients are bare sockets, which hold no heap, so the heap
// measured is the gateway's alone. Each parked connection then still serves its next
// request.
func TestParkedIdleMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory distorts heap figures")
	}
	const n = 500
	requireFreeFDs(t, 2*n+64)
	addr := quietBackend(t)
	gw := startGatewayOpt(t, stallConf, map[string]string{"IDC": addr, "CLOUD": addr}, Options{parkAfter: 20 * time.Millisecond})
	limit := 512
	if runtime.GOOS != "linux" {
		limit = 4 << 10 // a goroutine and the net.Conn it reads
	}
	clients := make([]bareClient, 0, n)
	t.Cleanup(func() {
		for _, c := range clients {
			c.close()
		}
	})
	warm := newBareClient(t, gw.addr)
	warm.get(t, "/warm")
	waitParked(t, gw.srv, 1)
	warm.close()
	waitParked(t, gw.srv, 0)
	// Start from a steady heap: one that moved by less than a tenth of what the
	// parked connections are allowed.
	before := steadyHeap(t, int64(n*limit/10))
	for range n {
		c := newBareClient(t, gw.addr)
		clients = append(clients, c)
		c.get(t, "/idle")
	}
	waitParked(t, gw.srv, n)
	if runtime.GOOS == "linux" {
		waitUntil(t, fmt.Sprintf("%d detached", n), func() bool { return gw.srv.parking.Detached() == n })
	}
	per := float64(int64(collectedHeap())-int64(before)) / n
	if m, want := metricsText(gw.srv), fmt.Sprintf("\nshiftgate_client_connections_detached %d\n", gw.srv.parking.Detached()); !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %q:\n%s", strings.TrimSpace(want), grepLines(m, "connections"))
	}
	t.Logf("heap per parked connection: %.0f bytes", per)
	if per > float64(limit) {
		t.Errorf("each parked connection holds %.0f bytes of heap, want at most %d", per, limit)
	}
	for i := range clients {
		if body := clients[i].get(t, "/again"); body != "GET /again" {
			t.Fatalf("request on parked connection %d: %q", i, body)
		}
	}
}

// quietBackend starts a backend that keeps nothing per request (recBackend records
// each), for the memory tests, and returns its address.
func quietBackend(t *testing.T) string {
	t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Method+" "+r.RequestURI) //nolint:errcheck
	}))
	t.Cleanup(b.Close)
	return b.Listener.Addr().String()
}

// collectedHeap is the heap in use after two collections.
func collectedHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// steadyHeap waits (bounded) until the heap in use moves by less than slack bytes
// over 90 ms, and returns it: connections of earlier tests may still be ending.
func steadyHeap(t *testing.T, slack int64) uint64 {
	t.Helper()
	h := collectedHeap()
	waitUntil(t, "a steady heap", func() bool {
		time.Sleep(90 * time.Millisecond)
		prev := h
		h = collectedHeap()
		d := int64(h) - int64(prev)
		return d > -slack && d < slack
	})
	return h
}

// bareClient is a test client made of a blocking socket and nothing else: it keeps no
// Go heap between requests, unlike a net.Conn. The caller closes it.
type bareClient int

func newBareClient(t *testing.T, addr string) bareClient {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := bareClient(fd)
	tv := syscall.NsecToTimeval(int64(ioWait))
	for _, opt := range []int{syscall.SO_RCVTIMEO, syscall.SO_SNDTIMEO} {
		if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, opt, &tv); err != nil {
			c.close()
			t.Fatal(err)
		}
	}
	// The runtime's preemption signals interrupt blocking calls (EINTR, never
	// restarted on a socket with timeouts): an interrupted connect goes on in the
	// kernel, and a second call reports how it stands.
	sa := &syscall.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	deadline := time.Now().Add(ioWait)
	for err = syscall.Connect(fd, sa); err != nil; err = syscall.Connect(fd, sa) {
		if err == syscall.EISCONN {
			break
		}
		if (err != syscall.EINTR && err != syscall.EALREADY) || time.Now().After(deadline) {
			c.close()
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	return c
}

// get sends a GET for path and returns the 200 answer's body.
func (c bareClient) get(t *testing.T, path string) string {
	t.Helper()
	req := []byte(get(path))
	for len(req) > 0 {
		n, err := syscall.Write(int(c), req)
		if err == syscall.EINTR {
			continue // see newBareClient
		}
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		req = req[n:]
	}
	var got []byte
	buf := make([]byte, 4096)
	for {
		if r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(got)), nil); err == nil {
			body, err := io.ReadAll(r.Body)
			if err == nil {
				if r.StatusCode != 200 {
					t.Fatalf("GET %s: %d %q", path, r.StatusCode, body)
				}
				return string(body)
			}
		}
		n, err := syscall.Read(int(c), buf)
		if err == syscall.EINTR {
			continue // see newBareClient
		}
		if n <= 0 {
			t.Fatalf("GET %s: the answer ended after %q (%v)", path, got, err)
		}
		got = append(got, buf[:n]...)
	}
}

func (c bareClient) close() { syscall.Close(int(c)) }

// parkKind starts a gateway on yamlText, both regions on backend, whose idle
// connections park after after, and serves its clients on the plain or the TLS
// listener. It returns the server, its number of listeners, and a function that
// dials a client and has one GET for path answered on it.
type parkKind struct {
	name  string
	start func(t *testing.T, backend, yamlText string, after time.Duration) (*Server, int, func(path string) *rawConn)
}

var parkKinds = []parkKind{
	{"plain", func(t *testing.T, backend, yamlText string, after time.Duration) (*Server, int, func(string) *rawConn) {
		gw := startGatewayOpt(t, yamlText, map[string]string{"IDC": backend, "CLOUD": backend}, Options{parkAfter: after})
		return gw.srv, 1, func(path string) *rawConn { return servedConn(t, gw.addr, path) }
	}},
	{"tls", func(t *testing.T, backend, yamlText string, after time.Duration) (*Server, int, func(string) *rawConn) {
		g, cfg := parkTLSGateway(t, backend, yamlText, after)
		return g.srv, 2, func(path string) *rawConn { return servedTLSConn(t, g, cfg, path) }
	}},
}

// TestParkedIdleTimeout: a parked connection, plain or TLS, is still closed at
// timeouts.idle, and one whose client leaves while it is parked is closed and
// uncounted.
func TestParkedIdleTimeout(t *testing.T) {
	b := startBackend(t, replyOK)
	for _, k := range parkKinds {
		t.Run(k.name, func(t *testing.T) {
			conf := strings.Replace(stallConf, "idle: 60s", "idle: 300ms", 1)
			srv, listeners, served := k.start(t, b.addr, conf, 10*time.Millisecond)
			c := served("/x")
			if ok, why := c.closed(ioWait); !ok {
				t.Fatalf("parked connection not closed at the idle timeout: %s", why)
			}
			waitParkedOn(t, srv, 0, listeners)

			srv, listeners, served = k.start(t, b.addr, stallConf, 10*time.Millisecond)
			c = served("/y")
			waitParkedOn(t, srv, 1, listeners)
			c.c.Close()
			waitParkedOn(t, srv, 0, listeners)
		})
	}
}

// TestParkedShutdown: Shutdown closes parked connections, plain and TLS.
func TestParkedShutdown(t *testing.T) {
	b := startBackend(t, replyOK)
	for _, k := range parkKinds {
		t.Run(k.name, func(t *testing.T) {
			srv, listeners, served := k.start(t, b.addr, stallConf, 10*time.Millisecond)
			c := served("/x")
			waitParkedOn(t, srv, 1, listeners)
			if err := srv.Shutdown(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			if ok, why := c.closed(ioWait); !ok {
				t.Fatalf("parked connection open after Shutdown: %s", why)
			}
		})
	}
}

// TestParkedConnCap: limits.max_conns counts parked connections: past it a client
// gets the 503; a parked one that closes frees a slot.
func TestParkedConnCap(t *testing.T) {
	const limit = 5
	b := startBackend(t, replyOK)
	conf := strings.Replace(stallConf, "routes:", fmt.Sprintf("limits: { max_conns: %d }\nroutes:", limit), 1)
	gw := parkGateway(t, b, conf, 10*time.Millisecond)
	held := make([]*rawConn, limit)
	for i := range held {
		held[i] = servedConn(t, gw.addr, "/held")
	}
	waitParked(t, gw.srv, limit)
	over := dialRaw(t, gw.addr)
	over.send(get("/over"))
	r, body := over.mustResponse("GET")
	if r.StatusCode != 503 || !r.Close || !strings.Contains(strings.ToLower(string(body)), "concurrency limit") {
		t.Fatalf("connection over the cap while the others are parked: %d close=%v %q", r.StatusCode, r.Close, body)
	}
	m := metricsText(gw.srv)
	for _, want := range []string{"\nshiftgate_client_connections_parked 5\n", "\nshiftgate_connections_refused_total 1\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q:\n%s", strings.TrimSpace(want), grepLines(m, "connections"))
		}
	}
	held[0].c.Close()
	waitUntil(t, "a freed slot", func() bool {
		c := dialRaw(t, gw.addr)
		defer c.c.Close()
		c.send(get("/after"))
		r, _, err := c.response("GET")
		return err == nil && r.StatusCode == 200
	})
}

// TestParkIdleKey: timeouts.park_idle sets when idle connections park, and "off"
// keeps every idle connection in its fasthttp goroutine.
func TestParkIdleKey(t *testing.T) {
	b := startBackend(t, replyOK)
	withKey := func(v string) string {
		return strings.Replace(stallConf, "idle: 60s }", "idle: 60s, park_idle: "+v+" }", 1)
	}
	on := parkGateway(t, b, withKey("20ms"), 0)
	servedConn(t, on.addr, "/first")
	waitParked(t, on.srv, 1)

	off := parkGateway(t, b, withKey("off"), 0)
	if off.srv.parking != nil {
		t.Fatal("park_idle: off still set up parking")
	}
	c := servedConn(t, off.addr, "/first")
	// Fifteen times the wait that parked the connection above: still served.
	time.Sleep(300 * time.Millisecond)
	if n := off.srv.http.GetOpenConnectionsCount(); n != 1 {
		t.Fatalf("park_idle off: %d connections in fasthttp's hands, want the idle one", n)
	}
	if r, _ := c.roundTrip("GET", get("/again")); r.StatusCode != 200 {
		t.Fatalf("second request: %d", r.StatusCode)
	}
}

// TestParkedConnsNoGoroutine: on Linux a parked connection keeps no goroutine (one
// epoll set and one goroutine watch them all), and each still wakes for its next
// request.
func TestParkedConnsNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parked connections wait in goroutines elsewhere than Linux")
	}
	const n = 200
	requireFreeFDs(t, 2*n+64)
	b := startBackend(t, replyOK)
	gw := parkGateway(t, b, stallConf, 20*time.Millisecond)
	warm := servedConn(t, gw.addr, "/warm") // starts the epoll goroutine
	waitParked(t, gw.srv, 1)
	before := runtime.NumGoroutine()
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = servedConn(t, gw.addr, "/idle")
	}
	waitParked(t, gw.srv, n+1)
	// fasthttp's worker goroutines linger up to a second after their connection
	// parks; count once they are gone.
	var grown int
	deadline := time.Now().Add(10 * time.Second)
	for {
		grown = runtime.NumGoroutine() - before
		if grown < n/10 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if grown >= n/10 {
		t.Fatalf("%d parked connections added %d goroutines, want none of their own", n, grown)
	}
	for i, c := range append(conns, warm) {
		if r, body := c.roundTrip("GET", get("/again", "X-Req-Id: again")); r.StatusCode != 200 || !strings.Contains(string(body), "id=again") {
			t.Fatalf("request on parked connection %d: %d %q", i, r.StatusCode, body)
		}
	}
}
