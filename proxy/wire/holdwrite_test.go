package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// answerBackend answers every request on every connection with a 512-byte body,
// delay after it came, until the test ends; it returns its address.
func answerBackend(tb testing.TB, delay time.Duration) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Length: 512\r\n\r\n" + strings.Repeat("x", 512))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(bytes.TrimSpace(line)) > 0 {
						continue
					}
					if delay > 0 {
						time.Sleep(delay)
					}
					if _, err := c.Write(answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// upstreamClient is a HostClient over the Transport to addr, its connections
// watched (upstreamConn) as the proxy's are.
func upstreamClient(addr string, held bool) *fasthttp.HostClient {
	t := &Transport{Header: 5 * time.Second, Body: 5 * time.Second, BufferLimit: 1 << 20, writeFirst: !held}
	return &fasthttp.HostClient{
		Addr:      addr,
		Dial:      func(a string) (net.Conn, error) { return WatchUpstream(net.Dial("tcp", a)) },
		Transport: t,
	}
}

// BenchmarkUpstreamRoundTrip: one client, one upstream connection over loopback, a
// GET and its 512-byte answer, with the request held for the answer's read (the
// read that would find nothing is skipped) and written before it.
func BenchmarkUpstreamRoundTrip(b *testing.B) {
	addr := answerBackend(b, 0)
	for _, held := range []bool{false, true} {
		name := "written"
		if held {
			name = "held"
		}
		b.Run(name, func(b *testing.B) {
			hc := upstreamClient(addr, held)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI("http://" + addr + "/feed")
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for range b.N {
				if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Fatalf("%v %d", err, resp.StatusCode())
				}
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// readCalls is the number of read system calls this process has made
// (/proc/self/io), or -1 where that is not known.
func readCalls(tb testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	return -1
}

// TestHeldRequestSkipsEmptyRead: with the request held for the answer's read, the
// client makes one read per answer, never one that finds nothing, and every answer
// arrives whole. The backend answers 2 ms after each request, so the read that
// tries first always comes too early: written then read, a round trip makes two
// reads on the client's side (/proc/self/io counts them, the backend's two included:
// the request, and the one that finds no next request yet).
func TestHeldRequestSkipsEmptyRead(t *testing.T) {
	if readCalls(t) < 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("no /proc/self/io to count read calls (CI runs on Linux, where it exists)")
		}
		t.Skip("no /proc/self/io to count read calls")
	}
	addr := answerBackend(t, 2*time.Millisecond)
	const n = 200
	reads := map[bool]int64{}
	for _, held := range []bool{false, true} {
		hc := upstreamClient(addr, held)
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + addr + "/feed")
		if err := hc.Do(req, resp); err != nil { // dial outside the count
			t.Fatal(err)
		}
		r0 := readCalls(t)
		for i := range n {
			if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 || len(resp.Body()) != 512 {
				t.Fatalf("held %v, request %d: %v %d, %d body bytes", held, i, err, resp.StatusCode(), len(resp.Body()))
			}
		}
		reads[held] = readCalls(t) - r0
	}
	t.Logf("read calls per round trip, the backend's two included: written %.2f, held %.2f", float64(reads[false])/n, float64(reads[true])/n)
	if reads[true] > 3*n+n/10 {
		t.Errorf("held: %d read calls over %d round trips, want 3 each (one on the client's side)", reads[true], n)
	}
}

// TestHeldRequestCases: a held request larger than the socket takes at once is
// written whole before its answer is read; one on a socket the peer reset fails as
// a write or read error, not a hang; one on a socket whose read deadline has passed
// is never sent.
func TestHeldRequestCases(t *testing.T) {
	t.Run("larger than the socket takes", func(t *testing.T) {
		peer, s := rawPair(t)
		// More than loopback socket buffers hold (a few MiB) while the peer sleeps.
		big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB
		got := make(chan []byte, 1)
		go func() {
			time.Sleep(50 * time.Millisecond) // let the writer fill the socket
			b := make([]byte, len(big))
			peer.SetDeadline(time.Now().Add(10 * time.Second))
			_, err := io.ReadFull(peer, b)
			if err == nil {
				_, err = peer.Write([]byte("answer"))
			}
			if err != nil {
				b = nil
			}
			got <- b
		}()
		s.holdWrite(big)
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 16)
		n, err := s.Read(buf)
		if err != nil || string(buf[:n]) != "answer" {
			t.Fatalf("read after a large held request: %q %v", buf[:n], err)
		}
		if b := <-got; !bytes.Equal(b, big) {
			t.Fatalf("the peer got %d bytes, not the request whole", len(b))
		}
	})
	t.Run("peer reset", func(t *testing.T) {
		peer, s := rawPair(t)
		peer.(*net.TCPConn).SetLinger(0)
		peer.Close()
		time.Sleep(20 * time.Millisecond) // the reset arrives
		s.holdWrite([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		_, err := s.Read(make([]byte, 16))
		var oe *net.OpError
		if err == nil || !errors.As(err, &oe) || (oe.Op != "write" && oe.Op != "read") {
			t.Fatalf("held request to a reset peer: %v, want a write or read error", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the error took %v: it waited for the deadline", time.Since(start))
		}
	})
	t.Run("deadline passed", func(t *testing.T) {
		peer, s := rawPair(t)
		s.holdWrite([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		s.SetReadDeadline(time.Unix(1, 0))
		if _, err := s.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past its deadline: %v", err)
		}
		// Nothing was sent, and nothing is left to be sent by the next call.
		if _, err := s.Write([]byte("next")); err != nil {
			t.Fatal(err)
		}
		peer.SetReadDeadline(time.Now().Add(time.Second))
		b := make([]byte, 64)
		n, err := peer.Read(b)
		if err != nil || string(b[:n]) != "next" {
			t.Fatalf("the peer got %q %v, want only the later write", b[:n], err)
		}
	})
}
