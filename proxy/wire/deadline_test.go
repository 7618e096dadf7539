package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// countingConn counts the deadlines given to its connection.
type countingConn struct {
	net.Conn
	reads, writes int
}

func (c *countingConn) SetReadDeadline(t time.Time) error {
	c.reads++
	return c.Conn.SetReadDeadline(t)
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.writes++
	return c.Conn.SetWriteDeadline(t)
}

// countArms counts the deadlines s gives the poller.
func countArms(s *sockIO) (reads, writes *int) {
	c := &countingConn{Conn: s.conn}
	s.rd.c, s.wd.c = c, c
	return &c.reads, &c.writes
}

// The deadlines of a request on a busy connection (idle, head, body; the write
// deadline) reach the poller once, not per request: reads and writes that do not wait
// arm nothing.
func TestDeadlinesArmedOnlyWhenNeeded(t *testing.T) {
	peer, raw := rawPair(t)
	reads, writes := countArms(raw)
	msg := []byte("GET / HTTP/1.1\r\n\r\n")
	buf := make([]byte, 64)
	for i := 0; i < 1000; i++ {
		now := time.Now()
		raw.SetReadDeadline(now.Add(10 * time.Second)) // head
		if _, err := peer.Write(msg); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < len(msg); {
			n, err := raw.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
		raw.SetReadDeadline(now.Add(30 * time.Second))  // body
		raw.SetWriteDeadline(now.Add(30 * time.Second)) // answer
		if _, err := raw.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		raw.SetReadDeadline(now.Add(time.Minute)) // idle
	}
	// The first head deadline is armed; every later one is later than it. A read
	// that waits for the peer's bytes keeps the armed one.
	if *reads > 1 || *writes != 0 {
		t.Fatalf("poller deadlines armed over 1000 requests: %d read, %d write; want 1 and 0", *reads, *writes)
	}
}

// A read deadline moved later is the one the read keeps: the earlier one the poller
// still holds fires, and the read waits on.
func TestReadDeadlineMovedLater(t *testing.T) {
	peer, raw := rawPair(t)
	raw.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	raw.SetReadDeadline(time.Now().Add(time.Minute))
	go func() { time.Sleep(150 * time.Millisecond); peer.Write([]byte("hello")) }()
	buf := make([]byte, 16)
	n, err := raw.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v; want hello (the 20 ms deadline was replaced)", buf[:n], err)
	}
	// Cleared altogether, the same.
	raw.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	raw.SetReadDeadline(time.Time{})
	go func() { time.Sleep(150 * time.Millisecond); peer.Write([]byte("again")) }()
	if n, err = raw.Read(buf); err != nil || string(buf[:n]) != "again" {
		t.Fatalf("Read = %q, %v; want again (the deadline was cleared)", buf[:n], err)
	}
}

// A read times out when the last deadline set has passed, not at an earlier one the
// poller held, and with the error net.Conn gives.
func TestReadDeadlineNotEarly(t *testing.T) {
	_, raw := rawPair(t)
	start := time.Now()
	raw.SetReadDeadline(start.Add(20 * time.Millisecond))
	want := start.Add(200 * time.Millisecond)
	raw.SetReadDeadline(want)
	_, err := raw.Read(make([]byte, 16))
	if !errors.Is(err, os.ErrDeadlineExceeded) || !opIs(err, "read") {
		t.Fatalf("Read: %v; want a read i/o timeout", err)
	}
	if now := time.Now(); now.Before(want) {
		t.Fatalf("timed out %v before the deadline", want.Sub(now))
	}
}

// A deadline moved earlier, by another goroutine, cuts a waiting read at once (this is
// how a request's wait for an answer is abandoned).
func TestReadDeadlineCutsWaitingRead(t *testing.T) {
	_, raw := rawPair(t)
	raw.SetReadDeadline(time.Now().Add(time.Hour))
	done := make(chan error, 1)
	go func() {
		_, err := raw.Read(make([]byte, 16))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // usually waiting by now; either way it must end
	raw.SetReadDeadline(time.Unix(1, 0))
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read: %v; want a timeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a deadline in the past did not end the waiting read")
	}
}

// fill writes to raw until its socket buffer is full (the peer does not read).
func fill(t *testing.T, raw *sockIO) {
	t.Helper()
	raw.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	chunk := make([]byte, 1<<20)
	for {
		if _, err := raw.Write(chunk); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			return
		}
	}
}

func TestWriteDeadlineIsIdleTimeout(t *testing.T) {
	t.Run("a write that cannot go on times out after the idle time", func(t *testing.T) {
		_, raw := rawPair(t)
		start := time.Now()
		raw.SetWriteDeadline(start.Add(100 * time.Millisecond))
		n, err := raw.Write(make([]byte, 64<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) || !opIs(err, "write") {
			t.Fatalf("Write = %d, %v; want a write i/o timeout", n, err)
		}
		if n == 0 || n >= 64<<20 {
			t.Fatalf("Write = %d bytes; want some, not all", n)
		}
		if el := time.Since(start); el < 100*time.Millisecond {
			t.Fatalf("timed out after %v, before the idle time", el)
		}
	})
	t.Run("a write cut by a past deadline from another goroutine", func(t *testing.T) {
		_, raw := rawPair(t)
		raw.SetWriteDeadline(time.Now().Add(time.Hour))
		done := make(chan error, 1)
		go func() {
			_, err := raw.Write(make([]byte, 64<<20))
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		raw.SetWriteDeadline(time.Unix(1, 0))
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Write: %v; want a timeout", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a deadline in the past did not end the waiting write")
		}
	})
	t.Run("a deadline armed by an earlier wait does not fail a later write", func(t *testing.T) {
		peer, raw := rawPair(t)
		fill(t, raw) // this write waited: a 50 ms deadline was armed, and fired
		raw.SetWriteDeadline(time.Now().Add(30 * time.Millisecond))
		raw.wd.armIdle()                  // as a wait would
		time.Sleep(60 * time.Millisecond) // the armed deadline fires between writes
		// Room for the next write, however much fill queued.
		go io.Copy(io.Discard, peer)
		raw.SetWriteDeadline(time.Now().Add(time.Minute))
		if _, err := raw.Write([]byte("x")); err != nil {
			t.Fatalf("Write after a stale deadline fired: %v", err)
		}
	})
	t.Run("a cleared deadline lets a write wait", func(t *testing.T) {
		peer, raw := rawPair(t)
		raw.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
		raw.SetWriteDeadline(time.Time{})
		want := bytes.Repeat([]byte("y"), 16<<20)
		go func() { time.Sleep(150 * time.Millisecond); io.Copy(io.Discard, peer) }()
		if n, err := raw.Write(want); err != nil || n != len(want) {
			t.Fatalf("Write = %d, %v; want all of %d", n, err, len(want))
		}
	})
}

// A plain net.Conn call (a second concurrent reader) sees the deadline callers want,
// armed exactly.
func TestDeadlineExactForPlainPath(t *testing.T) {
	_, raw := rawPair(t)
	raw.SetReadDeadline(time.Now().Add(time.Hour))
	raw.SetReadDeadline(time.Now().Add(time.Hour + time.Minute))
	raw.exact(&raw.r)
	if w, a := raw.rd.want.Load(), raw.rd.armed.Load(); w != a {
		t.Fatalf("armed %v, want %v", deadlineTime(a), deadlineTime(w))
	}
}

// BenchmarkRequestDeadlines is the deadline moves of one request on a connection whose
// calls do not wait (head, body, answer, idle): through sockIO, which then arms none,
// against net.Conn, which arms each. The request's reads and writes are left out: on
// loopback their goroutine switches are 30 times the difference.
func BenchmarkRequestDeadlines(b *testing.B) {
	for _, mode := range []string{"net", "raw"} {
		b.Run(mode, func(b *testing.B) {
			_, server := tcpPair(b)
			type deadlined interface {
				SetReadDeadline(time.Time) error
				SetWriteDeadline(time.Time) error
			}
			var c deadlined = server
			if mode == "raw" {
				c = newSockIO(server)
			}
			b.ReportAllocs()
			for b.Loop() {
				now := time.Now()
				c.SetReadDeadline(now.Add(10 * time.Second))
				c.SetReadDeadline(now.Add(30 * time.Second))
				c.SetWriteDeadline(now.Add(30 * time.Second))
				c.SetReadDeadline(now.Add(time.Minute))
			}
		})
	}
}

var _ net.Conn = (*rawConn)(nil) // its deadlines are the sockIO's
