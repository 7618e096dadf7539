package proxy

import (
	"strconv"
	"strings"
	"testing"
)

// What a smuggling case must come to.
type smuggleWant int

const (
	// refused: 400, the connection closes, and not one byte reaches the backend.
	refused smuggleWant = iota
	// normalised: the request is served, and the backend receives exactly one
	// well-formed request carrying body.
	normalised
	// cut: the head was streamed before the body turned out to be broken; the client
	// gets 400 and a close, the backend never receives a complete request and the
	// gateway closes that upstream connection instead of pooling it.
	cut
)

func (w smuggleWant) String() string { return [...]string{"refused", "normalised", "cut"}[w] }

// hidden is the request an attacker hopes the backend reads on its own.
const hidden = "GET /hidden HTTP/1.1\r\nHost: gw.test\r\n\r\n"

const post = "POST /p HTTP/1.1\r\nHost: gw.test\r\n"

type smuggleCase struct {
	name string
	raw  string
	want smuggleWant
	body string // the body the backend must receive when normalised
	// status is the refusal's status when it is not 400: a head that never ends in
	// CRLF CRLF is refused by the head timeout, with 408 (fasthttp waits for the
	// CRLF CRLF that ends a head; see README, Safe at the edge).
	status int
}

var smuggleCases = []smuggleCase{
	// Content-Length and Transfer-Encoding together.
	{"CL then TE", post + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE then CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 44\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE chunked and CL 0", post + "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", refused, "", 0},

	// Content-Length in every wrong shape.
	{"duplicate CL equal", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"duplicate CL differing", post + "Content-Length: 5\r\ncontent-length: 44\r\n\r\nhello" + hidden, refused, "", 0},
	{"CL list", post + "Content-Length: 5, 5\r\n\r\nhello", refused, "", 0},
	{"CL plus sign", post + "Content-Length: +5\r\n\r\nhello", refused, "", 0},
	{"CL negative", post + "Content-Length: -5\r\n\r\nhello", refused, "", 0},
	{"CL hex", post + "Content-Length: 0x5\r\n\r\nhello", refused, "", 0},
	{"CL decimal point", post + "Content-Length: 5.0\r\n\r\nhello", refused, "", 0},
	{"CL inner space", post + "Content-Length: 5 5\r\n\r\nhello", refused, "", 0},
	{"CL empty", post + "Content-Length:\r\n\r\nhello", refused, "", 0},
	{"CL overflow", post + "Content-Length: 18446744073709551621\r\n\r\nhello", refused, "", 0},
	{"CL underscore spelling", post + "Content_Length: 5\r\n\r\nhello", refused, "", 0},
	{"CL space before colon", post + "Content-Length : 5\r\n\r\nhello", refused, "", 0},
	{"CL leading zeros", post + "Content-Length: 005\r\n\r\nhello", normalised, "hello", 0},
	{"CL surrounding whitespace", post + "Content-Length: \t5 \t\r\n\r\nhello", normalised, "hello", 0},

	// Transfer-Encoding obfuscated.
	{"TE upper case", post + "Transfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", normalised, "hello", 0},
	{"TE mixed case name", post + "tRANSFER-eNCODING: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", normalised, "hello", 0},
	{"TE surrounding spaces", post + "Transfer-Encoding:   chunked   \r\n\r\n5\r\nhello\r\n0\r\n\r\n", normalised, "hello", 0},
	{"TE tab", post + "Transfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", normalised, "hello", 0},
	{"TE xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE chunkedx", post + "Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE chunked, identity", post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE identity, chunked", post + "Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE gzip, chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE identity", post + "Transfer-Encoding: identity\r\n\r\n" + hidden, refused, "", 0},
	{"TE identity with CL", post + "Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"TE quoted", post + "Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE duplicated", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", refused, "", 0},
	{"TE duplicated with identity", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", refused, "", 0},
	{"TE in HTTP/1.0", "POST /p HTTP/1.0\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE in HTTP/1.0 with CL", "POST /p HTTP/1.0\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"TE on a folded line", post + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE folded after chunked", post + "Transfer-Encoding: chunked\r\n\t, identity\r\n\r\n0\r\n\r\n", refused, "", 0},
	{"TE space before colon", post + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE underscore spelling", post + "Transfer_Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE leading space first line", post[:len(post)-len("Host: gw.test\r\n")] + " Transfer-Encoding: chunked\r\nHost: gw.test\r\n\r\n0\r\n\r\n", refused, "", 0},
	{"TE vertical tab", post + "Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE NUL", post + "Transfer-Encoding: chunked\x00\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},
	{"TE name with inner space", post + "Transfer Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, refused, "", 0},

	// Chunked bodies that lie.
	{"chunk size non-hex", post + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", cut, "", 0},
	{"chunk size 0x", post + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", cut, "", 0},
	{"chunk size negative", post + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", cut, "", 0},
	{"chunk size overflow", post + "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff5\r\nhello\r\n0\r\n\r\n", cut, "", 0},
	{"chunk size overflow to small", post + "Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n", cut, "", 0},
	{"chunk size leading space", post + "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n", cut, "", 0},
	{"chunk data longer than size", post + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n" + hidden, cut, "", 0},
	{"chunk data longer than size, hex after", post + "Transfer-Encoding: chunked\r\n\r\n2\r\nabcdef\r\n0\r\n\r\n", cut, "", 0},
	{"chunk data shorter than size", post + "Transfer-Encoding: chunked\r\n\r\n8\r\nhello\r\n0\r\n\r\n" + hidden, cut, "", 0},
	{"chunk size line bare LF", post + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", cut, "", 0},
	{"chunk extension with bare LF", post + "Transfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n", cut, "", 0},
	{"chunk extension", post + "Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n", normalised, "hello", 0},
	{"chunked with trailer", post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n", normalised, "hello", 0},
	{"chunked in many pieces", post + "Transfer-Encoding: chunked\r\n\r\n1\r\nh\r\n2\r\nel\r\n2\r\nlo\r\n0\r\n\r\n", normalised, "hello", 0},

	// Line endings.
	{"bare LF everywhere", "POST /p HTTP/1.1\nHost: gw.test\nContent-Length: 5\n\nhello", refused, "", 408},
	{"bare LF everywhere, no body", "GET /p HTTP/1.1\nHost: gw.test\n\n", refused, "", 408},
	{"bare LF blank line", "GET /p HTTP/1.1\r\nHost: gw.test\r\n\n", refused, "", 408},
	{"bare LF before the blank line", "GET /p HTTP/1.1\r\nHost: gw.test\n\r\n", refused, "", 408},
	{"bare LF ending the request line", "GET /p HTTP/1.1\nHost: gw.test\r\n\r\n", normalised, "", 0},
	{"bare LF between fields", post + "X-A: 1\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"bare LF ending the head", post + "Content-Length: " + strconv.Itoa(len(hidden)) + "\r\n\n" + hidden, refused, "", 0},
	{"bare CR between fields", post + "X-A: 1\rContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"bare CR in request line", "POST /p HTTP/1.1\rHost: gw.test\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"bare CR in value", post + "X-A: a\rb\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},

	// Folding, control bytes.
	{"obs-fold", post + "X-A: a\r\n b\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"obs-fold tab", post + "X-A: a\r\n\tb\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"NUL in value", post + "X-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"NUL in name", post + "X\x00A: a\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"control byte in value", post + "X-A: a\x01b\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"escape in value", post + "X-A: a\x1bb\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"DEL in value", post + "X-A: a\x7fb\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"space in name", post + "X A: b\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"empty name", post + ": b\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},
	{"line without colon", post + "X-A b\r\nContent-Length: 5\r\n\r\nhello", refused, "", 0},

	// Request targets.
	{"space in target", "GET /a b HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"tab in target", "GET /a\tb HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"NUL in target", "GET /a\x00b HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"two spaces after method", "GET  /a HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"absolute-form elsewhere", "GET http://evil.test/x HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"absolute-form same host", "GET http://gw.test/x HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"authority-form", "GET evil.test:443 HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"CONNECT", "CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n", refused, "", 0},
	{"CONNECT origin-form", "CONNECT /x HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"unknown version", "GET / HTTP/1.2\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"HTTP/2 preface version", "GET / HTTP/2.0\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"lower-case version", "GET / http/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"bad percent-encoding", "GET /a%zz HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"cut percent-encoding", "GET /a% HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},
	{"percent-encoding", "GET /a%20b%2F?q=%41 HTTP/1.1\r\nHost: gw.test\r\n\r\n", normalised, "", 0},
	{"method with slash", "GE/T / HTTP/1.1\r\nHost: gw.test\r\n\r\n", refused, "", 0},

	// Host.
	{"Host with path", "GET / HTTP/1.1\r\nHost: evil.test/x\r\n\r\n", refused, "", 0},
	{"Host with space", "GET / HTTP/1.1\r\nHost: gw.test evil.test\r\n\r\n", refused, "", 0},
	{"Host with userinfo", "GET / HTTP/1.1\r\nHost: user@evil.test\r\n\r\n", refused, "", 0},
}

// TestHostileSmuggling sends each malformed or ambiguous request on its own connection
// and checks it is refused, normalised or cut as planned, with the hidden request
// never reaching the backend.
func TestHostileSmuggling(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, replyOK, "")
	for _, tc := range smuggleCases {
		t.Run(tc.name, func(t *testing.T) {
			checkSmuggle(t, func() *rawConn { return dialRaw(t, gw.addr) }, b, tc)
		})
	}
	for _, r := range b.requests() {
		if r.Req.URL.Path == "/hidden" {
			t.Errorf("the hidden request reached the backend on connection %d", r.Conn)
		}
	}
	b.mustBeClean(t)
}

// promptConf is hostileConf with head and body timeouts longer than a test waits for
// an answer (ioWait).
var promptConf = strings.Replace(hostileConf, "body: 2s, request_head: 1s, idle: 2s", "body: 1m, request_head: 1m, idle: 1m", 1)

// TestHostileSmugglingPrompt runs the smuggling table again with promptConf: every
// refusal and every cut must come from reading the request, not from a timeout that
// frees the client's connection and an upstream one long after. The heads that never
// end in CRLF CRLF (status 408) are the head timeout's by design, and left out.
func TestHostileSmugglingPrompt(t *testing.T) {
	t.Parallel()
	if promptConf == hostileConf {
		t.Fatal("promptConf did not replace hostileConf's timeouts")
	}
	b := startBackend(t, replyOK)
	gw := startGateway(t, promptConf, map[string]string{"IDC": b.addr, "CLOUD": b.addr, "LIMITS": ""})
	for _, tc := range smuggleCases {
		if tc.status == 408 {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			checkSmuggle(t, func() *rawConn { return dialRaw(t, gw.addr) }, b, tc)
		})
	}
	for _, r := range b.requests() {
		if r.Req.URL.Path == "/hidden" {
			t.Errorf("the hidden request reached the backend on connection %d", r.Conn)
		}
	}
	b.mustBeClean(t)
}

// checkSmuggle sends tc on a connection from dial (plain or TLS) and checks the outcome.
func checkSmuggle(t *testing.T, dial func() *rawConn, b *recBackend, tc smuggleCase) {
	t.Helper()
	before := b.requests()
	totals := b.totals()
	bytesBefore := b.totalBytes()
	c := dial()
	c.send(tc.raw)
	method := strings.SplitN(tc.raw, " ", 2)[0]
	resp, body, err := c.response(method)
	switch tc.want {
	case refused, cut:
		if err != nil {
			t.Fatalf("want a 400 answer, got %v", err)
		}
		want := 400
		if tc.status != 0 {
			want = tc.status
		}
		if resp.StatusCode != want {
			t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, want)
		}
		c.mustClose()
	case normalised:
		if err != nil {
			t.Fatalf("want a 200 answer, got %v", err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("status %d (%q), want 200", resp.StatusCode, body)
		}
	}
	switch tc.want {
	case refused:
		if n := b.totalBytes() - bytesBefore; n != 0 {
			t.Errorf("%d bytes reached the backend; want none", n)
		}
	case normalised:
		b.waitFor(t, ioWait, "one more request", func() bool { return b.numRequests() == len(before)+1 })
		got := b.requests()[len(before)]
		if string(got.Body) != tc.body || got.BodyLen != int64(len(tc.body)) {
			t.Errorf("backend body %q (%d bytes), want %q", got.Body, got.BodyLen, tc.body)
		}
	case cut:
		// Every upstream connection the broken request touched must be closed, and
		// none of them may have carried a complete request (often nothing at all
		// reached it: the head was still buffered when the body broke).
		touched := b.grownSince(totals)
		b.waitFor(t, ioWait, "the upstream connections to be closed", func() bool {
			for _, i := range touched {
				if !b.conns[i].ended {
					return false
				}
			}
			return true
		})
		if n := len(b.requests()) - len(before); n != 0 {
			t.Errorf("%d complete requests reached the backend; want none", n)
		}
		b.mu.Lock()
		for _, i := range touched {
			rc := b.conns[i]
			if rc.total > 0 && (rc.bad != nil || !rc.aborted) {
				t.Errorf("upstream connection %d: want a cut body, got bad=%v aborted=%v from %q", i, rc.bad, rc.aborted, rc.raw)
			}
		}
		b.mu.Unlock()
	}
}
