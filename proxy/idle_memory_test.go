package proxy

import (
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"
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
	// stallConf's idle timeout (60 s) keeps the connections open while measured.
	gw := startGateway(t, stallConf, map[string]string{"IDC": b.addr, "CLOUD": b.addr})

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
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
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
	before := heap()
	for range idleConns {
		c, err := net.Dial("tcp", gw.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		serveOne(c)
	}
	after := heap()
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
	var tide connTide
	for i, step := range []struct {
		open int
		want bool
	}{
		{10, false}, {400, false}, {150, false}, // a small peak is not worth a release
		{5000, false}, {4000, false}, {2501, false},
		{2500, true},                           // half of the peak of 5000
		{2000, false}, {1200, true}, {0, true}, // the peak restarts at each release
		{500, false}, {200, false}, // a peak under 1000 again
		{3000, false}, {1500, true},
	} {
		if got := tide.shouldRelease(step.open); got != step.want {
			t.Errorf("step %d: %d open: release %v, want %v", i, step.open, got, step.want)
		}
	}
}
