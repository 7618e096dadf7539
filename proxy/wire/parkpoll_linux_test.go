package wire

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
	"github.com/valyala/fasthttp"
)

// A second Close must not touch the descriptor the epoll goroutine closed after the
// first: its number belongs to another file by then (a test's certificate was once
// corrupted that way).
func TestParkingCloseTwice(t *testing.T) {
	var q [2]int // the other file, made first so that it does not take the number
	if err := syscall.Pipe2(q[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(q[0])
	defer syscall.Close(q[1])
	p := &Parking{After: time.Second}
	p.mu.Lock()
	pp := p.pollLocked()
	p.mu.Unlock()
	if pp == nil {
		t.Fatal("no epoll set")
	}
	epfd := pp.epfd
	p.Close()
	waitFor(t, "the epoll goroutine to close its set", func() bool {
		_, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(epfd), syscall.F_GETFD, 0)
		return e == syscall.EBADF
	})
	if err := syscall.Dup2(q[1], epfd); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(epfd)
	p.Close()
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(epfd), syscall.F_GETFD, 0); e != 0 {
		t.Fatalf("a second Close closed a descriptor it no longer owns: %v", e)
	}
	if n, err := syscall.Read(q[0], make([]byte, 1)); n > 0 || err != syscall.EAGAIN {
		t.Fatalf("a second Close wrote to a descriptor it no longer owns (read %d, %v)", n, err)
	}
}

// parkOne accepts a connection from ln and runs it the way fasthttp does up to its
// park: idle, an idle read deadline of idle, a read that reports the client gone, a
// Close. It returns the client's end.
func parkOne(t *testing.T, ln *LineListener, idle time.Duration) net.Conn {
	t.Helper()
	client, err := parkConn(ln, idle)
	if client != nil {
		t.Cleanup(func() { client.Close() })
	}
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// parkConn is parkOne for any goroutine.
func parkConn(ln *LineListener, idle time.Duration) (net.Conn, error) {
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	c, err := ln.Accept()
	if err != nil {
		return client, err
	}
	ConnState(c, fasthttp.StateIdle)
	c.SetReadDeadline(time.Now().Add(idle))
	if n, err := c.Read(make([]byte, 16)); n != 0 || err != errParked {
		return client, fmt.Errorf("idle read: %d, %v; want it parked", n, err)
	}
	return client, c.Close()
}

// closedByPeer waits (bounded) for c's peer to close it.
func closedByPeer(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("%s: read %d, %v; want the gateway's close", what, n, err)
	}
}

// watched counts the sockets in p's epoll set, and those of them detached, from the
// sockets themselves.
func watched(p *Parking) (all, detached int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.poll == nil {
		return 0, 0
	}
	for _, s := range p.poll.socks {
		if s.c == nil {
			detached++
		}
	}
	return len(p.poll.socks), detached
}

// TestParkedSockets: parked connections wait in the epoll set, first as net.Conns,
// then (after Detach) as bare sockets out of Go's poller. In either stage a parked
// connection is served again when its next request comes, is closed at its idle
// deadline even when that comes before every other parked socket's deadline (the
// epoll wait is cut short), and is closed by Close; the listener's count of open
// connections follows.
func TestParkedSockets(t *testing.T) {
	for _, tc := range []struct {
		name     string
		detach   time.Duration
		detached int
	}{
		{"net.Conn", time.Hour, 0},
		{"detached", time.Millisecond, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan string, 1)
			p := &Parking{After: time.Millisecond, Detach: tc.detach, Serve: func(c net.Conn) error {
				b := make([]byte, 3)
				_, err := io.ReadFull(c, b)
				served <- string(b)
				c.Close()
				return err
			}}
			ln := &LineListener{Listener: tl, Park: p}
			defer ln.Close()

			late := parkOne(t, ln, time.Hour)
			early := parkOne(t, ln, 50*time.Millisecond)
			next := parkOne(t, ln, time.Hour)
			if p.Parked() != 3 || ln.live.Load() != 3 {
				t.Fatalf("parked %d, open %d; want 3 and 3", p.Parked(), ln.live.Load())
			}
			waitFor(t, fmt.Sprintf("%d of 3 parked sockets detached", tc.detached), func() bool {
				all, detached := watched(p)
				return all == 3 && detached == tc.detached && p.Detached() == detached
			})

			// The socket parked with the earliest deadline, after one with an hour to go.
			closedByPeer(t, early, "the earlier idle deadline")

			if _, err := next.Write([]byte("GET")); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-served:
				if got != "GET" {
					t.Fatalf("the woken connection read %q, want the request's first bytes", got)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the parked socket was not served after its next request came")
			}

			p.Close()
			closedByPeer(t, late, "Close")
			waitFor(t, "no connection parked or open", func() bool { return ln.live.Load() == 0 && p.Parked() == 0 })
		})
	}
}

// TestParkSoonWhenCrowded: past Crowd served connections an idle one parks after Soon,
// not After, and past Crowd connections with a net.Conn it is detached at once.
func TestParkSoonWhenCrowded(t *testing.T) {
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Parking{After: time.Hour, Soon: time.Millisecond, Crowd: 1}
	ln := &LineListener{Listener: tl, Park: p}
	defer ln.Close()
	defer p.Close()
	other, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := ln.Accept(); err != nil {
		t.Fatal(err)
	}
	type parked struct {
		client net.Conn
		err    error
	}
	done := make(chan parked, 1)
	go func() {
		client, err := parkConn(ln, time.Hour) // two served connections: one more than Crowd
		done <- parked{client, err}
	}()
	select {
	case r := <-done:
		if r.client != nil {
			defer r.client.Close()
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an idle connection among more than Crowd did not park after Soon")
	}
	if all, detached := watched(p); p.Parked() != 1 || all != 1 || detached != 1 {
		t.Fatalf("parked %d, in the epoll set %d, detached %d; want 1, 1, 1", p.Parked(), all, detached)
	}
	if d := p.parkAfter(&ln.live); d != p.After {
		t.Fatalf("with one connection served and one parked the wait is %v, want After", d)
	}
}

// processCPU is the CPU time the process used so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkParkWake: one connection waits for its next request, whose first byte
// wakes it, over and over: not parked (a read waiting in Go's poller, the floor),
// parked as a net.Conn, and parked detached (what a client idle past park_idle +
// Detach, or one parking among a crowd, pays per request); and over TLS, unparked
// and parked (never detached). The client's write, from another goroutine, is in
// every case.
func BenchmarkParkWake(b *testing.B) {
	ca := tlstest.NewCA(b, "park")
	cert := ca.TLSCert(b, tlstest.Leaf{Names: []string{"127.0.0.1"}})
	for _, bc := range []struct {
		name  string
		after time.Duration
		crowd int
		tls   bool
	}{
		{"unparked", time.Hour, 0, false},
		{"net.Conn", 0, 0, false},
		{"detached", 0, 1, false},
		{"tls-unparked", time.Hour, 0, true},
		{"tls-parked", 0, 0, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			served := make(chan net.Conn, 1)
			p := &Parking{After: bc.after, Crowd: bc.crowd, Detach: time.Hour, Serve: func(c net.Conn) error {
				served <- c
				return nil
			}}
			ln := &LineListener{Listener: tl, Park: p}
			if bc.tls {
				ln.Listener = tls.NewListener(RawListener{tl}, &tls.Config{Certificates: []tls.Certificate{cert}})
			}
			defer ln.Close()
			defer p.Close()
			// A second open connection makes the first one crowded when Crowd is 1.
			other, err := net.Dial("tcp", tl.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer other.Close()
			if _, err := ln.Accept(); err != nil {
				b.Fatal(err)
			}
			client, err := net.Dial("tcp", tl.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			c, err := ln.Accept()
			if err != nil {
				b.Fatal(err)
			}
			if bc.tls {
				tc := tls.Client(client, &tls.Config{ServerName: "127.0.0.1", RootCAs: ca.Pool()})
				client = tc
				done := make(chan error, 1)
				go func() { done <- tc.Handshake() }()
				if err := c.(tlsConn).Handshake(); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			buf := make([]byte, 16)
			write := make(chan struct{})
			go func() {
				req := []byte("G")
				for range write {
					client.Write(req) //nolint:errcheck // the read below fails if it did
				}
			}()
			defer close(write)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for range b.N {
				ConnState(c, fasthttp.StateIdle)
				c.SetReadDeadline(time.Now().Add(time.Hour))
				if bc.after > 0 {
					write <- struct{}{}
					if n, err := c.Read(buf); n != 1 || err != nil {
						b.Fatalf("idle read: %d, %v", n, err)
					}
					ConnState(c, fasthttp.StateActive)
					continue
				}
				if _, err := c.Read(buf); err != errParked {
					b.Fatalf("idle read: %v, want it parked", err)
				}
				c.Close()
				write <- struct{}{}
				c = <-served
				ConnState(c, fasthttp.StateActive)
				if n, err := c.Read(buf); n != 1 || err != nil {
					b.Fatalf("woken read: %d, %v", n, err)
				}
			}
			// Wall time is mostly the hand-offs between goroutines and threads; CPU
			// time is what parking costs a busy gateway.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// openFiles lists what the process's open descriptors refer to ("socket:[inode]",
// "pipe:[inode]", a path), but for the directory listing them.
func openFiles(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && !strings.HasPrefix(l, "/proc/") {
			files[l] = true
		}
	}
	return files
}

// newFiles lists the files open now that were not at start.
func newFiles(t *testing.T, start map[string]bool) []string {
	var opened []string
	for f := range openFiles(t) {
		if !start[f] {
			opened = append(opened, f)
		}
	}
	return opened
}

// TestParkChurn: many connections park, are detached, wake, expire and close at once,
// in both stages; afterwards every descriptor is closed, once, and the counts are
// back to zero. A socket whose descriptor leaked would stay open; one closed twice
// would close another file (the listener, the epoll set) and fail the rest.
func TestParkChurn(t *testing.T) {
	const clients, rounds = 40, 6
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	files := openFiles(t) // the listener's among them
	type served struct {
		c   net.Conn
		err error
	}
	woken := make(chan served, clients)
	p := &Parking{After: time.Millisecond, Detach: 2 * time.Millisecond, Serve: func(c net.Conn) error {
		b := make([]byte, 1)
		_, err := io.ReadFull(c, b)
		woken <- served{c, err}
		return nil
	}}
	ln := &LineListener{Listener: tl, Park: p}

	// A quarter of the clients idle out (at once or once detached); the others, per
	// round, send a byte and park again once served, or wait; half of those close in
	// the last rounds.
	conns := make([]net.Conn, clients)
	expiring := func(i int) bool { return i%4 == 0 }
	mostDetached := 0
	for i := range conns {
		idle := time.Hour
		if expiring(i) {
			idle = time.Duration(10+i%3) * time.Millisecond // before or after Detach
		}
		conns[i] = parkOne(t, ln, idle+time.Millisecond)
	}
	for r := range rounds {
		sent := 0
		for i, c := range conns {
			if c == nil || expiring(i) || (i+r)%3 == 0 {
				continue
			}
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatalf("round %d: client %d: %v", r, i, err)
			}
			sent++
		}
		for range sent {
			select {
			case s := <-woken:
				if s.err != nil {
					t.Fatalf("round %d: woken connection: %v", r, s.err)
				}
				// Back to idle and parked again, as fasthttp would leave it.
				ConnState(s.c, fasthttp.StateIdle)
				s.c.SetReadDeadline(time.Now().Add(time.Hour))
				if n, err := s.c.Read(make([]byte, 1)); n != 0 || err != errParked {
					t.Fatalf("round %d: idle read %d, %v; want it parked", r, n, err)
				}
				s.c.Close()
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: a parked connection was not woken", r)
			}
		}
		if r == rounds-2 {
			for i := 1; i < clients; i += 2 {
				conns[i].Close()
				conns[i] = nil
			}
		}
		time.Sleep(5 * time.Millisecond) // let some detach
		mostDetached = max(mostDetached, p.Detached())
	}
	if mostDetached == 0 {
		t.Fatal("no parked connection was detached")
	}
	for i, c := range conns {
		if expiring(i) {
			closedByPeer(t, c, "the idle deadline")
			c.Close()
			conns[i] = nil
		}
	}
	p.Close()
	ln.Close()
	for _, c := range conns {
		if c != nil {
			closedByPeer(t, c, "Close")
			c.Close()
		}
	}
	waitFor(t, "every connection closed", func() bool {
		return ln.live.Load() == 0 && p.Parked() == 0 && p.Detached() == 0
	})
	// The epoll goroutine closes its own descriptors as it ends.
	// Nothing the test opened stays open: its sockets, the epoll set and its pipe
	// (which the epoll goroutine closes as it ends).
	deadline := time.Now().Add(10 * time.Second)
	for len(newFiles(t, files)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still open: %v", newFiles(t, files))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
