package wire

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	server = <-done
	if server == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// rawPair is a loopback connection whose server end reads and writes raw.
func rawPair(tb testing.TB) (peer net.Conn, raw *sockIO) {
	tb.Helper()
	peer, server := tcpPair(tb)
	raw = newSockIO(server)
	if raw == nil {
		tb.Fatal("newSockIO: nil for a TCP connection")
	}
	return peer, raw
}

func TestSockIOOnlyTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if newSockIO(a) != nil {
		t.Fatal("newSockIO took an in-memory pipe")
	}
}

// A large write to a reader that takes its time fills the socket buffer: the raw
// write must wait in the poller and go on where it stopped, and every byte arrives
// once and in order.
func TestSockIOWriteWaitsAndResumes(t *testing.T) {
	peer, raw := rawPair(t)
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the buffers fill first
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	n, err := raw.Write(want)
	if err != nil || n != len(want) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(want))
	}
	raw.conn.(*net.TCPConn).CloseWrite()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer read %d bytes, not what was written (%d)", len(b), len(want))
	}
}

func TestSockIOReadCases(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(peer net.Conn, raw *sockIO)
		want    string // "" for data
		check   func(error) bool
	}{
		{
			name: "data waits for the peer",
			prepare: func(peer net.Conn, _ *sockIO) {
				go func() { time.Sleep(20 * time.Millisecond); peer.Write([]byte("hello")) }()
			},
		},
		{
			name:    "peer's close is end of stream",
			prepare: func(peer net.Conn, _ *sockIO) { peer.Close() },
			want:    "EOF",
			check:   func(err error) bool { return err == io.EOF },
		},
		{
			name:    "deadline in the past",
			prepare: func(_ net.Conn, raw *sockIO) { raw.SetReadDeadline(time.Now().Add(-time.Second)) },
			want:    "read: i/o timeout",
			check:   func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) && opIs(err, "read") },
		},
		{
			name: "deadline while waiting",
			prepare: func(_ net.Conn, raw *sockIO) {
				raw.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
			},
			want:  "read: i/o timeout",
			check: func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) },
		},
		{
			name: "closed while waiting",
			prepare: func(_ net.Conn, raw *sockIO) {
				go func() { time.Sleep(30 * time.Millisecond); raw.conn.Close() }()
			},
			want:  "use of closed network connection",
			check: func(err error) bool { return errors.Is(err, net.ErrClosed) && opIs(err, "read") },
		},
		{
			name: "reset by the peer",
			prepare: func(peer net.Conn, _ *sockIO) {
				peer.(*net.TCPConn).SetLinger(0)
				peer.Close()
			},
			want:  "connection reset",
			check: func(err error) bool { return errors.Is(err, syscall.ECONNRESET) && opIs(err, "read") },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peer, raw := rawPair(t)
			tc.prepare(peer, raw)
			buf := make([]byte, 64)
			n, err := raw.Read(buf)
			if tc.want == "" {
				if err != nil || string(buf[:n]) != "hello" {
					t.Fatalf("Read = %q, %v; want hello", buf[:n], err)
				}
				return
			}
			if n != 0 || err == nil || !tc.check(err) {
				t.Fatalf("Read = %d, %v; want an error like %q", n, err, tc.want)
			}
		})
	}
}

func TestSockIOWriteToResetPeer(t *testing.T) {
	peer, raw := rawPair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ { // the reset arrives after a write or two
		_, err = raw.Write(make([]byte, 1024))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) || !opIs(err, "write") {
		t.Fatalf("Write to a reset peer: %v; want a write error with ECONNRESET or EPIPE", err)
	}
}

// Two writers at once: one takes the raw path, the other net.Conn's, which waits on
// the socket's lock; no write is lost or torn.
func TestSockIOConcurrentWriters(t *testing.T) {
	peer, raw := rawPair(t)
	const writers, each, size = 4, 200, 1000
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			chunk := bytes.Repeat([]byte{byte('a' + w)}, size)
			for i := 0; i < each; i++ {
				if _, err := raw.Write(chunk); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	go func() { wg.Wait(); raw.conn.(*net.TCPConn).CloseWrite() }()
	b, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != writers*each*size {
		t.Fatalf("read %d bytes, want %d", len(b), writers*each*size)
	}
	for i := 0; i < len(b); i += size {
		if c := bytes.Count(b[i:i+size], b[i:i+1]); c != size {
			t.Fatalf("chunk at %d is torn: %d of %d bytes alike", i, c, size)
		}
	}
}

func TestSockIOAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	peer, raw := rawPair(t)
	msg := []byte("ping")
	buf := make([]byte, 16)
	pong := func() {
		if _, err := raw.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, buf[:4]); err != nil {
			t.Fatal(err)
		}
		peer.Write(msg)
		if n, err := raw.Read(buf); err != nil || n != 4 {
			t.Fatalf("Read = %d, %v", n, err)
		}
	}
	pong()
	// The peer's own reads and writes go through net.Conn, which allocates nothing
	// either in the steady state.
	if n := testing.AllocsPerRun(200, pong); n != 0 {
		t.Fatalf("%.1f allocations per raw write and read, want 0", n)
	}
}

// acceptThrough accepts one loopback connection through the listener wrap makes; the
// client end sends "x" and closes.
func acceptThrough(t *testing.T, wrap func(net.Listener) net.Listener) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	c, err := wrap(ln).Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The TLS listener's connections read and write raw.
func TestRawListenerTCPOnly(t *testing.T) {
	c := acceptThrough(t, func(ln net.Listener) net.Listener { return RawListener{ln} })
	rc, ok := c.(*rawConn)
	if !ok {
		t.Fatalf("Accept gave %T, want *rawConn", c)
	}
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != "x" {
		t.Fatalf("read %q, %v", b, err)
	}
	if err := rc.SetKeepAlive(true); err != nil {
		t.Fatal(err)
	}
}

func opIs(err error, op string) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == op
}

// BenchmarkLoopbackRoundTrip is one request-sized write and one read per op on a
// loopback connection, echoed by a peer goroutine: raw (sockIO) against net.Conn.
// Run with -cpu 1 to see the monitor's hand-offs that raw calls avoid.
func BenchmarkLoopbackRoundTrip(b *testing.B) {
	msg := bytes.Repeat([]byte("x"), 200)
	for _, mode := range []string{"net", "raw"} {
		b.Run(mode, func(b *testing.B) {
			peer, server := tcpPair(b)
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := peer.Read(buf)
					if err != nil {
						return
					}
					if _, err := peer.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
			var rw io.ReadWriter = server
			if mode == "raw" {
				rw = newSockIO(server)
			}
			buf := make([]byte, 4096)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := rw.Write(msg); err != nil {
					b.Fatal(err)
				}
				for got := 0; got < len(msg); {
					n, err := rw.Read(buf)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
		})
	}
}

// TestRawWiring: the connections the proxy serves and dials read and write raw: plain
// client connections (LineListener, with and without parking), pooled upstream
// connections (WatchUpstream) and pipelined ones (RawUpstream).
func TestRawWiring(t *testing.T) {
	up, _ := tcpPair(t)
	if c, _ := WatchUpstream(up, nil); c.(*upstreamConn).sock == nil {
		t.Error("WatchUpstream: pooled upstream connection without raw reads and writes")
	}
	up, _ = tcpPair(t)
	if c, _ := RawUpstream(up, nil); !isRawConn(c) {
		t.Errorf("RawUpstream gave %T, want *rawConn", c)
	}
	for _, park := range []*Parking{nil, {After: time.Hour}} {
		c := acceptThrough(t, func(ln net.Listener) net.Listener { return &LineListener{Listener: ln, Park: park} })
		if lc, ok := c.(*lineConn); !ok || lc.sock == nil {
			t.Errorf("LineListener (parking %v) gave %T without raw reads and writes", park != nil, c)
		}
	}
}

// A TLS client connection over a rawConn leaves its write deadline to the rawConn's
// sockIO (armed only when a write waits) instead of moving it itself on each write.
func TestTLSLineConnIdleBelow(t *testing.T) {
	ca := tlstest.NewCA(t, "wiring")
	cfg := &tls.Config{Certificates: []tls.Certificate{ca.TLSCert(t, tlstest.Leaf{Names: []string{"127.0.0.1"}})}}
	for _, raw := range []bool{true, false} {
		c := acceptThrough(t, func(ln net.Listener) net.Listener {
			if raw {
				ln = RawListener{ln}
			}
			return &LineListener{Listener: tls.NewListener(ln, cfg)}
		})
		tc, ok := c.(*tlsLineConn)
		if !ok {
			t.Fatalf("LineListener over TLS gave %T", c)
		}
		if (tc.below != nil) != raw {
			t.Errorf("TLS over rawConn %v: raw socket below %v", raw, tc.below != nil)
		}
	}
}

func isRawConn(c net.Conn) bool {
	_, ok := c.(*rawConn)
	return ok
}

// BenchmarkEmptyRead: what the read that finds nothing costs (the one Go's poller
// tries before it waits, which holdWrite spares the upstream): a raw nonblocking
// read of an empty loopback socket.
func BenchmarkEmptyRead(b *testing.B) {
	_, s := rawPair(b)
	var fd uintptr
	if err := s.raw.Control(func(f uintptr) { fd = f }); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	b.ResetTimer()
	for range b.N {
		_, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		if e != syscall.EAGAIN {
			b.Fatalf("read: %v, want EAGAIN", e)
		}
	}
}
