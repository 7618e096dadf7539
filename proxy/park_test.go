package proxy

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
	waitUntil(t, fmt.Sprintf("%d parked connections", n), func() bool {
		return srv.parking.Parked() == n && srv.http.GetOpenConnectionsCount() == 0
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

// TestParkedIdleMemory: a parked connection holds a few hundred bytes of heap, not
// fasthttp's read buffer, writer and request context (70 KB, TestIdleConnMemory).
func TestParkedIdleMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory distorts heap figures")
	}
	const n = 500
	requireFreeFDs(t, 2*n+64)
	b := startBackend(t, replyOK)
	gw := parkGateway(t, b, stallConf, 20*time.Millisecond)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	warm := servedConn(t, gw.addr, "/warm")
	waitParked(t, gw.srv, 1)
	warm.c.Close()
	waitParked(t, gw.srv, 0)
	before := heap()
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = servedConn(t, gw.addr, "/idle")
	}
	waitParked(t, gw.srv, n)
	per := float64(int64(heap())-int64(before)) / n
	// The test's client side (net.Conn, bufio.Reader of 4 KiB) is in the same heap.
	t.Logf("heap per parked connection (gateway and test client): %.0f bytes", per)
	if per > 8<<10 {
		t.Errorf("each parked connection holds %.0f bytes of heap, want at most 8 KiB with the test client's reader", per)
	}
}

// TestParkedIdleTimeout: a parked connection is still closed at timeouts.idle.
func TestParkedIdleTimeout(t *testing.T) {
	b := startBackend(t, replyOK)
	conf := strings.Replace(stallConf, "idle: 60s", "idle: 300ms", 1)
	gw := parkGateway(t, b, conf, 10*time.Millisecond)
	c := servedConn(t, gw.addr, "/x")
	if ok, why := c.closed(ioWait); !ok {
		t.Fatalf("parked connection not closed at the idle timeout: %s", why)
	}
	waitParked(t, gw.srv, 0)
}

// TestParkedShutdown: Shutdown closes parked connections.
func TestParkedShutdown(t *testing.T) {
	b := startBackend(t, replyOK)
	gw := parkGateway(t, b, stallConf, 10*time.Millisecond)
	c := servedConn(t, gw.addr, "/x")
	waitParked(t, gw.srv, 1)
	if err := gw.srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if ok, why := c.closed(ioWait); !ok {
		t.Fatalf("parked connection open after Shutdown: %s", why)
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
