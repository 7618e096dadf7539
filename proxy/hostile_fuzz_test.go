package proxy

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzRequestHead writes arbitrary bytes to a gateway in front of a recording backend,
// as one client connection that then half-closes. Invariants: the gateway does not
// panic; it answers or closes the connection within the timeouts; whatever reaches the
// backend parses as well-formed requests (net/http and the strict head check of
// checkRequestHead: one Host, unambiguous framing, no foreign X-Shift-Region). A body
// cut short is allowed to reach the backend incomplete (the client broke it off while
// it streamed), never as a complete request.
func FuzzRequestHead(f *testing.F) {
	for _, tc := range smuggleCases {
		f.Add([]byte(tc.raw))
	}
	for _, s := range []string{
		get("/"),
		get("/a?b=c", "X-Shift-Region: cloud", "X_Forwarded_For: 1.2.3.4", "Connection: x-a, close", "X-A: 1"),
		get("/", "Connection: Upgrade", "Upgrade: websocket"),
		"GET / HTTP/1.0\r\nHost: gw.test\r\nConnection: keep-alive\r\n\r\n" + get("/2"),
		post + "Content-Length: 5\r\n\r\nhello" + get("/pipelined"),
		post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get("/pipelined"),
		post + "Content-Length: 100\r\n\r\nshort",
		"HEAD / HTTP/1.1\r\nHost: gw.test\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: gw.test\r\nExpect: 100-continue\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	gw, b := startHostile(f, replyOK, "")
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.DialTimeout("tcp", gw.addr, ioWait)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Write on the side: the gateway may answer, and stop reading, before it has
		// read everything.
		go func() {
			c.SetWriteDeadline(time.Now().Add(ioWait))
			c.Write(data)
			c.(*net.TCPConn).CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(ioWait))
		out, err := io.ReadAll(c)
		if err != nil && !isReset(err) {
			t.Fatalf("the gateway neither answered nor closed: %v (got %q)", err, trunc(out))
		}
		if len(out) > 0 && !strings.HasPrefix(string(out), "HTTP/1.1 ") {
			t.Fatalf("the gateway's answer is not HTTP/1.1: %q", trunc(out))
		}
		// The backend may still be reading what the gateway forwarded; what it has
		// read so far is checked now, the rest by later runs.
		for _, err := range b.takeFindings() {
			t.Errorf("input %q: %v", trunc(data), err)
		}
	})
}

func trunc(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}

// takeFindings returns what reached the backend malformed since the last call, and
// forgets the requests recorded so far (a long fuzz run would otherwise keep them all).
// A body cut short is not a finding.
func (b *recBackend) takeFindings() []error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []error
	for _, c := range b.conns {
		if c.bad != nil && !strings.Contains(c.bad.Error(), "body after") {
			out = append(out, c.bad)
		}
		c.bad, c.reqs = nil, nil
	}
	// Connections that are over keep nothing worth checking again.
	live := b.conns[:0]
	for _, c := range b.conns {
		if !c.ended {
			live = append(live, c)
		}
	}
	clear(b.conns[len(live):])
	b.conns = live
	return out
}
