package wire

import (
	"bufio"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// parseHead parses raw as fasthttp's server does.
func parseHead(t testing.TB, raw string) *fasthttp.RequestHeader {
	t.Helper()
	var h fasthttp.RequestHeader
	if err := h.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("fasthttp refuses %q: %v", raw, err)
	}
	return &h
}

// TestCheckHead covers what fasthttp accepts and CheckHead refuses, and what both accept.
func TestCheckHead(t *testing.T) {
	ok := func(raw string) {
		t.Helper()
		if why := CheckHead(parseHead(t, raw)); why != "" {
			t.Errorf("%q refused (%s), want accepted", raw, why)
		}
	}
	refused := func(raw string) {
		t.Helper()
		if why := CheckHead(parseHead(t, raw)); why == "" {
			t.Errorf("%q accepted, want refused", raw)
		}
	}
	ok("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
	ok("GET /a%20b?x=%41 HTTP/1.0\r\nHost: a.test:8080\r\n\r\n")
	ok("GET / HTTP/1.1\r\nHost: [::1]:80\r\nX-A: 1\r\n\r\n")
	ok("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
	ok("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
	ok("GET / HTTP/1.1\nHost: a\r\n\r\n") // the request line is re-written, not forwarded
	refused("GET / HTTP/1.2\r\nHost: a\r\n\r\n")
	refused("GET / HTTP/1.0\r\n\r\n")
	refused("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n")
	refused("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n")
	refused("GET / HTTP/1.1\r\nHost: a b\r\n\r\n")
	refused("GET /% HTTP/1.1\r\nHost: a\r\n\r\n")
	refused("GET /%4 HTTP/1.1\r\nHost: a\r\n\r\n")
	refused("GET /%g0 HTTP/1.1\r\nHost: a\r\n\r\n")
	refused("GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n")
	refused("GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n")
	refused("GET / HTTP/1.1\r\nHost: a\r\nX A: 1\r\n\r\n")
	refused("POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n")
	refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n")
	refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
	refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n")
}

func TestFoldEqual(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"x-shift-region", true}, {"X-Shift-Region", true}, {"X_SHIFT_REGION", true}, {"x_Shift-region", true},
		{"x-shift-regio", false}, {"x-shift-regions", false}, {"x.shift.region", false}, {"", false},
	} {
		if got := FoldEqual([]byte(tc.name), "x-shift-region"); got != tc.want {
			t.Errorf("FoldEqual(%q) = %v", tc.name, got)
		}
	}
}

func TestPeekHeadAndHeadHasField(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-length : 3\r\n\r\nbody"
	br := bufio.NewReaderSize(strings.NewReader(raw), 256)
	head, err := peekHead(br)
	if err != nil || string(head) != raw[:len(raw)-4] {
		t.Fatalf("peekHead = %q, %v", head, err)
	}
	if br.Buffered() != len(raw) && br.Buffered() != 64 {
		t.Errorf("peekHead consumed bytes: %d buffered", br.Buffered())
	}
	if !headHasField(head, "Content-Length") || headHasField(head, "X-A") {
		t.Errorf("headHasField wrong on %q", head)
	}
	// A head that does not fit: nil, no error (fasthttp refuses it itself).
	br = bufio.NewReaderSize(strings.NewReader("HTTP/1.1 200 OK\r\nX-A: "+strings.Repeat("a", 100)+"\r\n\r\n"), 32)
	if head, err := peekHead(br); head != nil || err != nil {
		t.Errorf("oversized head: %q, %v", head, err)
	}
}

// browserHead is a typical request head.
const browserHead = "GET /api/feed?page=2 HTTP/1.1\r\nHost: app.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
	"Accept: application/json, text/plain, */*\r\nAccept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\n" +
	"Cookie: uid=u-1001; theme=dark\r\nX-User-Id: u-1001\r\nReferer: https://app.example.com/\r\n\r\n"

// TestHygieneAllocs keeps the per-request checks free of allocations.
func TestHygieneAllocs(t *testing.T) {
	h := parseHead(t, browserHead)
	if n := testing.AllocsPerRun(100, func() {
		if CheckHead(h) != "" {
			t.Fatal("refused")
		}
		StripRequestHeaders(h)
	}); n != 0 {
		t.Errorf("CheckHead + StripRequestHeaders: %v allocations per request, want 0", n)
	}
}

func BenchmarkCheckHead(b *testing.B) {
	h := parseHead(b, browserHead)
	b.ReportAllocs()
	for b.Loop() {
		if CheckHead(h) != "" {
			b.Fatal("refused")
		}
	}
}

// BenchmarkStripRequestHeaders measures the scan of a clean head (the common case,
// nothing to delete), and the copy of a head with hop-by-hop fields plus their removal
// (the copy restores what the previous iteration deleted).
func BenchmarkStripRequestHeaders(b *testing.B) {
	b.Run("clean", func(b *testing.B) {
		h := parseHead(b, browserHead)
		b.ReportAllocs()
		for b.Loop() {
			StripRequestHeaders(h)
		}
	})
	for _, bc := range []struct{ name, extra string }{
		{"copy only", ""},
		{"copy+strip keep-alive", "Connection: keep-alive\r\n"},
		{"copy+strip hop-by-hop", "Connection: keep-alive, X-A\r\nX-A: 1\r\nKeep-Alive: 5\r\nX_Shift_Region: cloud\r\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tmpl := parseHead(b, strings.Replace(browserHead, "\r\n\r\n", "\r\n"+bc.extra+"\r\n", 1))
			var h fasthttp.RequestHeader
			b.ReportAllocs()
			for b.Loop() {
				tmpl.CopyTo(&h)
				if bc.extra != "" {
					StripRequestHeaders(&h)
				}
			}
		})
	}
}

// TestUpstreamConnStale checks the idle-connection check on a real socket: quiet is
// fresh, unsolicited bytes or the peer's close are stale, and nothing is consumed.
func TestUpstreamConnStale(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := WatchUpstream(net.Dial("tcp", ln.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u := c.(*upstreamConn)
	peer := <-accepted
	if u.stale() {
		t.Fatal("quiet connection reported stale")
	}
	peer.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(ioWait))
	// Wait for the byte to arrive without consuming it: stale polls, bounded.
	for deadline := time.Now().Add(ioWait); !u.stale(); {
		if time.Now().After(deadline) {
			t.Fatal("unsolicited byte not seen")
		}
		runtime.Gosched()
	}
	var b [1]byte
	if n, _ := c.Read(b[:]); n != 1 || b[0] != 'x' {
		t.Fatalf("the check consumed the byte: read %q", b[:n])
	}
	if u.stale() {
		t.Fatal("drained connection reported stale")
	}
	peer.Close()
	for deadline := time.Now().Add(ioWait); !u.stale(); {
		if time.Now().After(deadline) {
			t.Fatal("peer's close not seen")
		}
		runtime.Gosched()
	}
	if n := testing.AllocsPerRun(100, func() { u.stale() }); n != 0 {
		t.Errorf("stale allocates %v times", n)
	}
}

// BenchmarkUpstreamConnStale is the cost added to each reuse of a pooled upstream
// connection.
func BenchmarkUpstreamConnStale(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, _ := ln.Accept()
		defer c.Close()
		io.Copy(io.Discard, c)
	}()
	c, err := WatchUpstream(net.Dial("tcp", ln.Addr().String()))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	u := c.(*upstreamConn)
	b.ReportAllocs()
	for b.Loop() {
		if u.stale() {
			b.Fatal("stale")
		}
	}
}

// ioWait bounds each wait for the peer in these tests: long enough for a loaded
// machine, and a failure rather than a hang when something is wrong.
const ioWait = 10 * time.Second
