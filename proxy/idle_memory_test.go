package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

// idleConns is how many keep-alive connections the idle-memory test holds.
const idleConns = 1000

// TestIdleConnMemory: a keep-alive connection that has been served and now waits for
// its next request gives its write buffer and its requests' body buffers back. The
// test serves one request on each of idleConns connections, leaves them idle, and
// measures the heap held per connection: before, 74.7 KB (the 64 KiB read buffer,
// the 4 KiB writer, the request context); now 70.5 KB. The read buffer stays: fasthttp
// keeps it for a connection whose request bodies stream (StreamRequestBody), so the
// bound is that buffer plus 6 KiB.
func TestIdleConnMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory distorts heap figures")
	}
	b := startBackend(t, replyOK)
	// stallConf's idle timeout (60 s) keeps the connections open while measured; they
	// do not park (TestParkedIdleMemory measures parked ones).
	gw := parkGateway(t, b, stallConf, time.Hour)

	req := []byte(get("/idle"))
	buf := make([]byte, 4096)
	serveOne := func(c net.Conn) {
		c.SetDeadline(time.Now().Add(ioWait))
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		// replyOK's answer is small: it arrives in one read or a few.
		var got []byte
		for !bytes.Contains(got, []byte("id=")) {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("read: %v after %q", err, got)
			}
			got = append(got, buf[:n]...)
		}
	}
	// Warm the pools with one connection, then measure.
	warm, err := net.Dial("tcp", gw.addr)
	if err != nil {
		t.Fatal(err)
	}
	serveOne(warm)
	warm.Close()
	conns := make([]net.Conn, 0, idleConns)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	before := collectedHeap()
	for range idleConns {
		c, err := net.Dial("tcp", gw.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		serveOne(c)
	}
	after := collectedHeap()
	// The client side's connections are in the same heap: a net.Conn costs a few
	// hundred bytes, so the figure slightly overstates the gateway's share.
	per := float64(int64(after)-int64(before)) / idleConns
	t.Logf("heap per idle keep-alive connection (gateway and test client): %.0f bytes", per)
	const readBuffer = 64 << 10 // limits.max_header_bytes by default
	if per > readBuffer+6<<10 {
		t.Errorf("each idle keep-alive connection holds %.0f bytes of heap, want at most the read buffer + 6 KiB: its writer and body buffers should go back while it waits", per)
	}
}

func TestConnTide(t *testing.T) {
	tide := connTide{minPeak: releaseMinPeak}
	for i, step := range []struct {
		peak, open int
		want       bool
	}{
		{0, 10, false}, {400, 400, false}, {0, 150, false}, // a small peak is not worth a release
		{5000, 5000, false}, {0, 4000, false}, {0, 2501, false},
		{0, 2500, true},                                 // half of the peak of 5000
		{0, 2000, false}, {0, 1200, true}, {0, 0, true}, // the peak restarts at each release
		{500, 500, false}, {0, 200, false}, // a peak under 1000 again
		{3000, 3000, false}, {0, 1500, true},
		{4000, 0, true}, // a peak seen at accept between two looks
		{999, 0, false},
	} {
		if got := tide.shouldRelease(step.peak, step.open); got != step.want {
			t.Errorf("step %d: peak %d, %d open: release %v, want %v", i, step.peak, step.open, got, step.want)
		}
	}
}

// TestReleaseAfterBurst: a burst of connections that opens and closes between two
// looks of the release loop still leads to a release. The loop runs on a clock the
// test ticks, so it looks only before the burst and after it, when no connection is
// open any more; the peak it acts on was recorded when the connections were accepted.
func TestReleaseAfterBurst(t *testing.T) {
	const burst = 20
	b := startBackend(t, replyOK)
	dir := t.TempDir()
	text := strings.NewReplacer("{{STATE}}", filepath.Join(dir, "state"), "{{IDC}}", b.addr, "{{CLOUD}}", b.addr).Replace(stallConf)
	path := filepath.Join(dir, "shiftgate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type look struct {
		open, peak int
		released   bool
	}
	tick := make(chan time.Time)
	looks := make(chan look, 1)
	srv, err := New(cfg, Options{
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		releaseTick:    tick,
		releaseMinPeak: burst / 2,
		releaseChecked: func(open, peak int, released bool) { looks <- look{open, peak, released} },
		// Connections that park leave the served ones too: none does here.
		parkAfter: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown(5 * time.Second) })
	lookNow := func() look {
		t.Helper()
		select {
		case tick <- time.Now():
		case <-time.After(ioWait):
			t.Fatal("the release loop does not take ticks")
		}
		select {
		case l := <-looks:
			return l
		case <-time.After(ioWait):
			t.Fatal("the release loop did not look")
		}
		return look{}
	}
	if l := lookNow(); l.released || l.peak != 0 {
		t.Fatalf("before the burst: %+v", l)
	}
	conns := make([]*rawConn, 0, burst)
	for range burst {
		c := dialRaw(t, ln.Addr().String())
		if r, _ := c.roundTrip("GET", get("/burst")); r.StatusCode != 200 {
			t.Fatalf("burst request: %d", r.StatusCode)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.c.Close()
	}
	// Wait (bounded) until the gateway has seen every close.
	deadline := time.Now().Add(ioWait)
	for srv.http.GetOpenConnectionsCount() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after the clients closed them", srv.http.GetOpenConnectionsCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	l := lookNow()
	if l.open != 0 || l.peak != burst || !l.released {
		t.Fatalf("after a burst of %d connections that all closed before the loop looked: %+v; want the peak %d recorded at accept and a release", burst, l, burst)
	}
	// One more release at the next look (for the stacks of the workers that end
	// meanwhile), then none.
	if l := lookNow(); !l.released {
		t.Errorf("no follow-up release at the look after a release: %+v", l)
	}
	if l := lookNow(); l.released {
		t.Errorf("a third release with nothing new: %+v", l)
	}
}
