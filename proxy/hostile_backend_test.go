package proxy

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy/wire"
)

// firstThen answers the first request a backend receives with first and every later
// one with rest.
func firstThen(first, rest replyFunc) replyFunc {
	var n atomic.Int32
	return func(c net.Conn, r *recRequest) bool {
		if n.Add(1) == 1 {
			return first(c, r)
		}
		return rest(c, r)
	}
}

// Timeouts of hostileConf, as the tests measure them.
const (
	headTimeout = time.Second     // response_header
	bodyIdle    = 2 * time.Second // body
)

// How a broken reply must end, in TestHostileBrokenBackends.
type ending int

const (
	atOnce    ending = iota // on the backend's own bytes or close, no timer
	headTimer               // at timeouts.response_header
	bodyTimer               // at timeouts.body
)

// neverTimer is a timeout no case of TestHostileBrokenBackends may wait for: longer
// than ioWait, so a gateway that waited for it fails the client's read instead.
const neverTimer = 30 * time.Second

// startHostileEnding is startHostile with every timer but the one the case must end
// at set to neverTimer, so what ends a case is told by the timer that can fire, not
// by how long a loaded machine took.
func startHostileEnding(t *testing.T, reply replyFunc, by ending) (*gateway, *recBackend) {
	t.Helper()
	head, body := neverTimer, neverTimer
	switch by {
	case headTimer:
		head = headTimeout
	case bodyTimer:
		body = bodyIdle
	}
	cfg := strings.Replace(hostileConf, "response_header: 1s, body: 2s",
		fmt.Sprintf("response_header: %s, body: %s", head, body), 1)
	if cfg == hostileConf {
		t.Fatal("hostileConf's timeouts changed: update startHostileEnding")
	}
	b := startBackend(t, reply)
	return startGateway(t, cfg, map[string]string{"IDC": b.addr, "CLOUD": b.addr, "LIMITS": ""}), b
}

// TestHostileBrokenBackends answers the first request of each case with a broken reply
// and checks what the client gets, how long it takes, that the broken upstream
// connection is closed, not pooled, and that the next request is served on a fresh
// connection.
func TestHostileBrokenBackends(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		reply   replyFunc
		status  int    // what the client gets, 0 when the 2xx head went out
		body    string // when status is 0: the client gets a prefix of these before the cut
		by      ending // what ends it: the backend at once, or which timer
		reuseOK bool   // the connection may be pooled (the reply was valid)
	}{
		{name: "early close", reply: replyRaw("", false), status: 502, by: atOnce},
		{name: "cut status line", reply: replyRaw("HTTP/1.1 20", false), status: 502, by: atOnce},
		{name: "cut head", reply: replyRaw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", false), status: 502, by: atOnce},
		{name: "garbage", reply: replyRaw("garbage garbage\r\n\r\n", false), status: 502, by: atOnce},
		{name: "TLS bytes", reply: replyRaw("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", false), status: 502, by: atOnce},
		{name: "TLS alert kept open", reply: replyHang("\x15\x03\x01\x00\x02\x02\x46"), status: 504, by: headTimer},
		{name: "HTTP/0.9 style body", reply: replyRaw("<html>hello</html>", false), status: 502, by: atOnce},
		{name: "header without colon", reply: replyRaw("HTTP/1.1 200 OK\r\nBadHeader\r\nContent-Length: 2\r\n\r\nok", true), status: 502, by: atOnce},
		{name: "status not a number", reply: replyRaw("HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok", true), status: 502, by: atOnce},
		{name: "NUL in a header", reply: replyRaw("HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", true), status: 502, by: atOnce},
		// RFC 9112 section 5.2 lets a gateway replace obs-fold by spaces.
		{name: "folded header", reply: replyRaw("HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok", true), status: 200, body: "ok", by: atOnce, reuseOK: true},
		{name: "conflicting Content-Lengths", reply: replyRaw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", true), status: 502, by: atOnce},
		{name: "Content-Length list", reply: replyRaw("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", true), status: 502, by: atOnce},
		{name: "negative Content-Length", reply: replyRaw("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok", true), status: 502, by: atOnce},
		{name: "Content-Length and chunked", reply: replyRaw("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", true), status: 502, by: atOnce},
		{name: "chunked and Content-Length", reply: replyRaw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nok\r\n0\r\n\r\n", true), status: 502, by: atOnce},
		// fasthttp ignores Transfer-Encoding in another version than HTTP/1.1 and
		// would pass the chunk framing on as the body (RFC 9112 section 6.1: faulty).
		{name: "HTTP/1.0 with chunked", reply: replyRaw("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false), status: 502, by: atOnce},
		{name: "HTTP/2.0 with chunked", reply: replyRaw("HTTP/2.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false), status: 502, by: atOnce},
		{name: "unknown transfer coding", reply: replyRaw("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok", false), status: 502, by: atOnce},
		{name: "hang before head", reply: replyHang(""), status: 504, by: headTimer},
		{name: "hang in the head", reply: replyHang("HTTP/1.1 200 OK\r\nContent-"), status: 504, by: headTimer},
		{name: "hang in the body", reply: replyHang("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial"), body: "partial", by: bodyTimer},
		{name: "hang in a chunked body", reply: replyHang("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n"), body: "partial", by: bodyTimer},
		{name: "hang in a close-delimited body", reply: replyHang("HTTP/1.1 200 OK\r\n\r\npartial"), body: "partial", by: bodyTimer},
		{name: "close in the body", reply: replyRaw("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial", false), body: "partial", by: atOnce},
		// Nothing of the body has come: nothing has gone to the client either, so
		// it gets a status it can see.
		{name: "close after the head", reply: replyRaw("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", false), status: 502, by: atOnce},
		{name: "hang after the head", reply: replyHang("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"), status: 504, by: bodyTimer},
		{name: "close in a small body", reply: replyRaw("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart", false), status: 502, by: atOnce},
		{name: "close after a chunked head", reply: replyRaw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false), by: atOnce},
		{name: "close in a large body", reply: replyRaw("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"+strings.Repeat("x", 200000), false), body: strings.Repeat("x", 200000), by: atOnce},
		{name: "close in a chunked body", reply: replyRaw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n", false), body: "partial", by: atOnce},
		{name: "close in a chunk", reply: replyRaw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\npartial", false), body: "partial", by: atOnce},
		{name: "bad chunk size in the body", reply: replyRaw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\nzz\r\nmore\r\n0\r\n\r\n", true), body: "partial", by: atOnce},
		{name: "chunk longer than its size", reply: replyRaw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\npartial\r\n0\r\n\r\n", true), body: "par", by: atOnce},
		{name: "close-delimited body", reply: replyRaw("HTTP/1.1 200 OK\r\n\r\nwhole body", false), status: 200, body: "whole body", by: atOnce},
		// A switch the client never asked for (RFC 9110 section 15.2.2): a 502, and
		// the connection, now in the backend's protocol, is dropped.
		{name: "101 to a plain request", reply: replyRaw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw bytes", true), status: 502, by: atOnce},
		{name: "Connection: close honoured", reply: replyRaw("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true), status: 200, body: "ok", by: atOnce},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gw, b := startHostileEnding(t, firstThen(tc.reply, replyOK), tc.by)
			c := dialRaw(t, gw.addr)
			start := time.Now()
			c.send(get("/broken"))
			resp, body, err := c.response("GET")
			took := time.Since(start)
			switch {
			case tc.status >= 500:
				if err != nil || resp.StatusCode != tc.status {
					t.Fatalf("got %v %v, want %d", resp, err, tc.status)
				}
			case tc.status == 200:
				if err != nil || resp.StatusCode != 200 || string(body) != tc.body {
					t.Fatalf("got %v %q %v, want 200 %q", resp, body, err, tc.body)
				}
			default:
				// A 2xx answer had begun: the client must see its head and then the
				// cut (a body shorter than its length, or no last chunk), never a
				// complete body and never a connection closed with nothing on it.
				if resp == nil {
					t.Fatalf("got no answer at all (%v): want the 200 head then a visible cut", err)
				}
				if resp.StatusCode != 200 {
					t.Fatalf("got %d %v, want the 200 head then a cut", resp.StatusCode, err)
				}
				if err == nil {
					t.Fatalf("client read a complete body %q: a truncated body was re-framed as complete", body)
				}
				if !strings.HasPrefix(tc.body, string(body)) {
					t.Errorf("client got %.40q before the cut, want a prefix of %.40q", body, tc.body)
				}
				c.mustClose()
			}
			// A case ended by its timer waited for it (timers never fire early); one
			// ended at once came within the client's ioWait, where every timer of
			// its gateway is neverTimer.
			switch tc.by {
			case headTimer:
				if took < headTimeout {
					t.Errorf("answer after %s, before the %s response_header timeout", took, headTimeout)
				}
			case bodyTimer:
				if took < bodyIdle {
					t.Errorf("answer after %s, before the %s body timeout", took, bodyIdle)
				}
			}
			t.Logf("%s: %v after %s", tc.name, errOrStatus(resp, err), took.Round(time.Millisecond))
			if n := len(b.requests()); n != 1 {
				t.Errorf("the backend received %d requests, want 1 (no retry)", n)
			}
			// The broken connection is closed, never pooled.
			if !tc.reuseOK {
				b.waitFor(t, ioWait, "the broken upstream connection to be closed", func() bool { return b.conns[0].ended })
			}
			// The next request (on a fresh client connection) is served, on a fresh
			// upstream connection.
			c2 := dialRaw(t, gw.addr)
			r2, body2 := c2.roundTrip("GET", get("/next", "X-Req-Id: next"))
			if r2.StatusCode != 200 || !strings.HasSuffix(string(body2), "id=next") {
				t.Fatalf("next request: %d %q", r2.StatusCode, body2)
			}
			reqs := b.requests()
			if last := reqs[len(reqs)-1]; last.Conn == 0 && !tc.reuseOK {
				t.Errorf("the next request reused the broken upstream connection")
			}
			b.mustBeClean(t)
		})
	}
}

func errOrStatus(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// TestHostilePoisonedPool checks that a backend answer carrying more than its framing
// says (a body longer than Content-Length, a body on HEAD, 204 or 304) cannot hand its
// surplus to the next request on the same pooled connection: every client gets the
// answer to its own request.
func TestHostilePoisonedPool(t *testing.T) {
	t.Parallel()
	const evil = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
	cases := []struct {
		name, method, reply string
	}{
		{"body longer than Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + evil},
		{"body on a HEAD answer", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 39\r\n\r\n" + evil},
		{"body on 204", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 39\r\n\r\n" + evil},
		{"body on 304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 39\r\n\r\n" + evil},
		{"chunked body with a tail", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n" + evil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gw, b := startHostile(t, firstThen(replyRaw(tc.reply, true), replyOK), "")
			c := dialRaw(t, gw.addr)
			r, _ := c.roundTrip(tc.method, strings.Replace(get("/first"), "GET", tc.method, 1))
			if r.StatusCode >= 500 {
				t.Logf("first answer refused: %d", r.StatusCode)
			}
			for i := 0; i < 3; i++ {
				id := fmt.Sprintf("next-%d", i)
				r, body := c.roundTrip("GET", get("/next", "X-Req-Id: "+id))
				if r.StatusCode != 200 || !strings.HasSuffix(string(body), "id="+id) {
					t.Fatalf("request %s got %d %q: the surplus of the first answer poisoned the pool", id, r.StatusCode, body)
				}
			}
			b.mustBeClean(t)
		})
	}
}

// TestHostileUnsolicitedAnswer checks that bytes a backend sends on an idle pooled
// connection after its answer is complete (an answer nobody asked for, the body of a
// HEAD, 204 or 304 answer sent late) are not taken as the answer to the next request.
func TestHostileUnsolicitedAnswer(t *testing.T) {
	t.Parallel()
	const evil = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
	cases := []struct {
		name, method, head string
		idle               time.Duration // how long the connection sits in the pool first
	}{
		// After a normal answer a pooled connection is checked once it has been idle
		// for wire.StaleAfter (a hot one is not: see upconn.go); the wait is the point.
		{"after a complete answer, idle", "GET", "", 2 * wire.StaleAfter},
		// After a bodiless answer it is checked on its very next use.
		{"late body of a HEAD answer", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 39\r\n\r\n", 0},
		{"late body of a 204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", 0},
		{"late body of a 304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 39\r\n\r\n", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conns := make(chan net.Conn, 1)
			gw, b := startHostile(t, firstThen(func(c net.Conn, r *recRequest) bool {
				conns <- c
				if tc.head != "" {
					c.Write([]byte(tc.head))
					return true
				}
				return replyOK(c, r)
			}, replyOK), "")
			c := dialRaw(t, gw.addr)
			if r, _ := c.roundTrip(tc.method, strings.Replace(get("/first"), "GET", tc.method, 1)); r.StatusCode >= 300 && r.StatusCode != 304 {
				t.Fatalf("first: %d", r.StatusCode)
			}
			// The first answer is complete and its connection back in the pool: now
			// the backend speaks out of turn on it.
			up := <-conns
			if _, err := up.Write([]byte(evil)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(tc.idle)
			for i := 0; i < 3; i++ {
				id := fmt.Sprintf("next-%d", i)
				r, body := c.roundTrip("GET", get("/next", "X-Req-Id: "+id))
				if r.StatusCode != 200 || !strings.HasSuffix(string(body), "id="+id) {
					t.Fatalf("request %s got %d %q: bytes sent out of turn were taken for its answer", id, r.StatusCode, body)
				}
			}
			b.mustBeClean(t)
		})
	}
}

// TestHostileAnswerVersion: whatever version a backend answers in, the client gets the
// gateway's own, HTTP/1.1 (RFC 9110 section 6.2), and the body as framed. Before, the
// backend's version was echoed in the status line.
func TestHostileAnswerVersion(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, reply string }{
		{"HTTP/1.0 with length", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"HTTP/1.0 to the close", "HTTP/1.0 200 OK\r\n\r\nok"},
		{"HTTP/1.2 with length", "HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"HTTP/2.0 with length", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"HTTP/1.0 without a reason", "HTTP/1.0 200\r\nContent-Length: 2\r\n\r\nok"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gw, _ := startHostile(t, replyRaw(tc.reply, false), "")
			c := dialRaw(t, gw.addr)
			c.send(get("/v"))
			c.c.SetReadDeadline(time.Now().Add(ioWait))
			line, err := c.br.Peek(len("HTTP/1.1 200 "))
			if err != nil {
				t.Fatal(err)
			}
			if string(line) != "HTTP/1.1 200 " {
				t.Fatalf("status line begins %q, want the gateway's HTTP/1.1 200", line)
			}
			resp, body := c.mustResponse("GET")
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Fatalf("got %d %q, want 200 \"ok\"", resp.StatusCode, body)
			}
		})
	}
}
