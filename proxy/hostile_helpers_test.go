package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hostileConf is the gateway under attack: every request goes to the idc region, the
// breaker is off (a test that breaks a backend on purpose must not trip it) and every
// timeout is short so refusals show up quickly. {{LIMITS}} may add a limits block.
// The connect timeout is the exception: a loopback connect is never refused slowly,
// so its timeout only measures how long a loaded machine (the race detector, 200
// clients at once) takes to run the dialing goroutine, and at 500ms that read as a
// gateway failure (502 cannot connect) on a busy 2-core machine.
const hostileConf = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
client_ip: { trusted_proxies: ["10.0.0.0/8"] }
internal: { trusted_callers: ["10.1.0.0/16"] }
split: { from: idc, to: cloud, salt: hostile }
timeouts: { connect: 5s, response_header: 1s, body: 2s, request_head: 1s, idle: 2s }
{{LIMITS}}
routes:
  - name: default
    match: { path_prefix: / }
    percent: 0
    breaker: { disabled: true }
`

// ioWait bounds every raw read and write of a test, so a bug shows as a failure and
// never as a hung test binary.
const ioWait = 10 * time.Second

// startHostile starts a recording backend answering with reply and a gateway in front
// of it; limits is a YAML limits block or "".
func startHostile(t testing.TB, reply replyFunc, limits string) (*gateway, *recBackend) {
	t.Helper()
	b := startBackend(t, reply)
	gw := startGateway(t, hostileConf, map[string]string{"IDC": b.addr, "CLOUD": b.addr, "LIMITS": limits})
	return gw, b
}

// replyFunc answers one request a recording backend received, writing raw bytes to c.
// It returns false to have the backend close the connection.
type replyFunc func(c net.Conn, r *recRequest) bool

// recRequest is one request as it reached a backend.
type recRequest struct {
	Conn, Seq int           // its connection's index and its index on that connection
	Head      []byte        // the exact bytes of its head, request line to blank line
	Req       *http.Request // the head as net/http parses it (Body already consumed)
	Body      []byte        // the first bodyKeep bytes of the body
	BodyLen   int64
	BodySum   [32]byte    // sha256 of the whole body
	Trailer   http.Header // trailer fields of a chunked body
}

// bodyKeep bounds the body bytes a recording backend keeps per request, so a 50 MB
// upload does not sit in the heap the memory test measures.
const bodyKeep = 64 << 10

// logKeep bounds the raw bytes a recording backend keeps per connection.
const logKeep = 256 << 10

// recConn is one connection a backend accepted.
type recConn struct {
	raw []byte // the first logKeep bytes received
	// capture collects what is read while a head is being parsed (capturing):
	// the head's bytes, whatever the connection has carried before.
	capture   []byte
	capturing bool
	total     int64 // bytes received
	reqs      []*recRequest
	bad       error // the bytes that reached the backend were not well-formed requests
	closed    bool  // the gateway closed the connection (EOF between requests)
	// aborted is set when the gateway closed the connection in the middle of a
	// request's body: the request is incomplete, so no backend acts on it. That is
	// how a streamed body that turns out malformed is cut (the head and the bytes
	// before the fault may already be upstream), and it is not a malformed request.
	aborted bool
	ended   bool // the backend's loop for this connection is over
}

// recBackend is a raw-TCP upstream on 127.0.0.1:0 that writes down exactly what
// reaches it, checks every request head against a strict reading of RFC 9112 and
// answers with a scripted raw reply. Its methods are safe for concurrent use.
type recBackend struct {
	addr  string
	ln    net.Listener
	reply replyFunc

	mu      sync.Mutex
	conns   []*recConn
	changed chan struct{} // closed and replaced on every change
	open    map[net.Conn]struct{}
	wg      sync.WaitGroup
}

func startBackend(t testing.TB, reply replyFunc) *recBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &recBackend{addr: ln.Addr().String(), ln: ln, reply: reply, changed: make(chan struct{}), open: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

func (b *recBackend) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		rc := &recConn{}
		id := len(b.conns)
		b.conns = append(b.conns, rc)
		b.open[c] = struct{}{}
		b.signalLocked()
		b.mu.Unlock()
		b.wg.Add(1)
		go b.serve(c, id, rc)
	}
}

func (b *recBackend) close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.open {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *recBackend) signalLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *recBackend) update(f func()) {
	b.mu.Lock()
	f()
	b.signalLocked()
	b.mu.Unlock()
}

// recReader is the backend's view of a connection: everything read through it is
// written down.
type recReader struct {
	c  net.Conn
	b  *recBackend
	rc *recConn
}

func (r *recReader) Read(p []byte) (int, error) {
	n, err := r.c.Read(p)
	if n > 0 {
		r.b.update(func() {
			if keep := logKeep - len(r.rc.raw); keep > 0 {
				r.rc.raw = append(r.rc.raw, p[:min(n, keep)]...)
			}
			if r.rc.capturing {
				r.rc.capture = append(r.rc.capture, p[:n]...)
			}
			r.rc.total += int64(n)
		})
	}
	return n, err
}

func (b *recBackend) serve(c net.Conn, id int, rc *recConn) {
	defer b.wg.Done()
	defer func() {
		c.Close()
		b.update(func() { rc.ended = true; delete(b.open, c) })
	}()
	br := bufio.NewReaderSize(&recReader{c: c, b: b, rc: rc}, 64<<10)
	offset := func() int64 {
		b.mu.Lock()
		defer b.mu.Unlock()
		return rc.total - int64(br.Buffered())
	}
	for seq := 0; ; seq++ {
		if _, err := br.Peek(1); err != nil {
			b.update(func() { rc.closed = true })
			return
		}
		start := offset()
		pre, _ := br.Peek(br.Buffered())
		b.update(func() { rc.capture, rc.capturing = append(rc.capture[:0], pre...), true })
		req, err := http.ReadRequest(br)
		b.update(func() { rc.capturing = false })
		if err != nil {
			b.update(func() { rc.bad = fmt.Errorf("request %d: net/http cannot read it: %v", seq, err) })
			return
		}
		end := offset()
		b.mu.Lock()
		head := append([]byte(nil), rc.capture[:end-start]...)
		b.mu.Unlock()
		if err := checkRequestHead(head); err != nil {
			b.update(func() { rc.bad = fmt.Errorf("request %d: %v\n%q", seq, err, head) })
			return
		}
		h := sha256.New()
		var keep bytes.Buffer
		n, err := io.Copy(io.MultiWriter(h, &capWriter{w: &keep, n: bodyKeep}), req.Body)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// The connection ended inside the body: an aborted request, which no
			// backend acts on (and which the smuggling checks do not count).
			b.update(func() { rc.aborted = true })
			return
		}
		if err != nil {
			// A body the backend cannot read as its framing says is malformed.
			b.update(func() { rc.bad = fmt.Errorf("request %d: body after %d bytes: %v", seq, n, err) })
			return
		}
		rr := &recRequest{Conn: id, Seq: seq, Head: head, Req: req, Body: keep.Bytes(), BodyLen: n, Trailer: req.Trailer}
		copy(rr.BodySum[:], h.Sum(nil))
		b.update(func() { rc.reqs = append(rc.reqs, rr) })
		if b.reply == nil || !b.reply(c, rr) {
			return
		}
	}
}

type capWriter struct {
	w io.Writer
	n int
}

func (w *capWriter) Write(p []byte) (int, error) {
	if k := min(len(p), w.n); k > 0 {
		w.w.Write(p[:k])
		w.n -= k
	}
	return len(p), nil
}

// waitFor blocks until cond (called under the backend's lock) holds, or fails the test
// after d.
func (b *recBackend) waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		b.mu.Lock()
		ok := cond()
		ch := b.changed
		b.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("backend: gave up after %s waiting for %s; it saw:\n%s", d, what, b.dump())
		}
	}
}

// requests returns every request the backend has read so far, in connection order.
func (b *recBackend) requests() []*recRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*recRequest
	for _, c := range b.conns {
		out = append(out, c.reqs...)
	}
	return out
}

func (b *recBackend) numRequests() int {
	n := 0
	for _, c := range b.conns {
		n += len(c.reqs)
	}
	return n
}

// connCount returns how many connections the backend accepted.
func (b *recBackend) connCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// totals returns how many bytes each connection has received so far.
func (b *recBackend) totals() []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]int64, len(b.conns))
	for i, c := range b.conns {
		out[i] = c.total
	}
	return out
}

// grownSince returns the connections that received bytes since totals was taken.
func (b *recBackend) grownSince(totals []int64) []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []int
	for i, c := range b.conns {
		if i >= len(totals) || c.total > totals[i] {
			out = append(out, i)
		}
	}
	return out
}

// totalBytes returns how many bytes reached the backend.
func (b *recBackend) totalBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int64
	for _, c := range b.conns {
		n += c.total
	}
	return n
}

// mustBeClean fails the test if anything that reached the backend was not a sequence
// of well-formed requests.
func (b *recBackend) mustBeClean(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, c := range b.conns {
		if c.bad != nil {
			t.Errorf("backend connection %d received bytes that are not a well-formed request: %v", i, c.bad)
		}
	}
}

func (b *recBackend) dump() string {
	var sb strings.Builder
	for i, c := range b.conns {
		fmt.Fprintf(&sb, "  conn %d: %d bytes, %d requests, closed=%v bad=%v\n", i, c.total, len(c.reqs), c.closed, c.bad)
		for _, r := range c.reqs {
			fmt.Fprintf(&sb, "    %s %s (body %d)\n", r.Req.Method, r.Req.RequestURI, r.BodyLen)
		}
		if len(c.raw) < 2048 {
			fmt.Fprintf(&sb, "    raw: %q\n", c.raw)
		}
	}
	return sb.String()
}

// checkRequestHead reads a request head strictly: CRLF line ends only, a token
// method, an origin-form target, HTTP/1.1, token field names, no control bytes, no
// folding, exactly one Host, at most one framing header and no internal header but
// the gateway's own single X-Shift-Region.
func checkRequestHead(head []byte) error {
	if len(head) == 0 {
		return errors.New("head not recorded")
	}
	if !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		return errors.New("head does not end with CRLF CRLF")
	}
	lines := strings.Split(string(head[:len(head)-4]), "\r\n")
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\n") {
			return fmt.Errorf("bare CR or LF in line %q", l)
		}
	}
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 || !isToken(parts[0]) || !strings.HasPrefix(parts[1], "/") || parts[2] != "HTTP/1.1" {
		return fmt.Errorf("bad request line %q", lines[0])
	}
	for _, c := range []byte(parts[1]) {
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("control byte in target %q", parts[1])
		}
	}
	var hosts, cl, te, region int
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok || !isToken(name) {
			return fmt.Errorf("bad field line %q", l)
		}
		for _, c := range []byte(value) {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return fmt.Errorf("control byte in field line %q", l)
			}
		}
		v := strings.Trim(value, " \t")
		switch norm := strings.ReplaceAll(strings.ToLower(name), "_", "-"); norm {
		case "host":
			hosts++
		case "content-length":
			cl++
			if name != strings.ReplaceAll(name, "_", "-") || v == "" || strings.Trim(v, "0123456789") != "" {
				return fmt.Errorf("bad Content-Length line %q", l)
			}
		case "transfer-encoding":
			te++
			if name != strings.ReplaceAll(name, "_", "-") || !strings.EqualFold(v, "chunked") {
				return fmt.Errorf("bad Transfer-Encoding line %q", l)
			}
		case "x-shift-region":
			region++
			if strings.Contains(name, "_") {
				return fmt.Errorf("internal header in a foreign spelling: %q", l)
			}
		}
	}
	switch {
	case hosts != 1:
		return fmt.Errorf("%d Host fields", hosts)
	case cl > 1 || te > 1 || cl+te > 1:
		return fmt.Errorf("ambiguous framing: %d Content-Length, %d Transfer-Encoding", cl, te)
	case region > 1:
		return fmt.Errorf("%d X-Shift-Region fields", region)
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// Replies.

// replyOK answers 200 with a body naming the request: its method, target and the
// value of its X-Req-Id header, so a client can tell whose answer it got.
func replyOK(c net.Conn, r *recRequest) bool {
	body := fmt.Sprintf("%s %s id=%s", r.Req.Method, r.Req.RequestURI, r.Req.Header.Get("X-Req-Id"))
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return true
}

// replyRaw answers every request with the same raw bytes, then keeps the connection
// (keep) or closes it.
func replyRaw(raw string, keep bool) replyFunc {
	return func(c net.Conn, r *recRequest) bool {
		c.Write([]byte(raw))
		return keep
	}
}

// replyHang answers nothing until the gateway closes the connection (or the test
// ends); raw is written first.
func replyHang(raw string) replyFunc {
	return func(c net.Conn, r *recRequest) bool {
		if raw != "" {
			c.Write([]byte(raw))
		}
		io.Copy(io.Discard, c)
		return false
	}
}

// Raw clients.

// rawConn is a client that writes exact bytes and reads what comes back under a
// deadline.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(ioWait))
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// response reads one response to a request of the given method, body included.
func (r *rawConn) response(method string) (*http.Response, []byte, error) {
	r.c.SetReadDeadline(time.Now().Add(ioWait))
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// mustResponse is response that fails the test on any error.
func (r *rawConn) mustResponse(method string) (*http.Response, []byte) {
	r.t.Helper()
	resp, body, err := r.response(method)
	if err != nil {
		r.t.Fatalf("reading response: %v", err)
	}
	return resp, body
}

// closed reports whether the gateway closes the connection (EOF or reset) within d
// without sending another byte.
func (r *rawConn) closed(d time.Duration) (bool, string) {
	r.c.SetReadDeadline(time.Now().Add(d))
	b, err := r.br.ReadByte()
	switch {
	case err == nil:
		rest, _ := r.br.Peek(r.br.Buffered())
		return false, fmt.Sprintf("got more bytes: %q", append([]byte{b}, rest...))
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err):
		return true, ""
	default:
		return false, err.Error()
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// mustClose fails the test unless the gateway closes the connection soon.
func (r *rawConn) mustClose() {
	r.t.Helper()
	if ok, why := r.closed(ioWait); !ok {
		r.t.Fatalf("connection not closed: %s", why)
	}
}

// roundTrip sends raw and reads one response.
func (r *rawConn) roundTrip(method, raw string) (*http.Response, []byte) {
	r.t.Helper()
	r.send(raw)
	return r.mustResponse(method)
}

// get is a well-formed GET for path with the given extra header lines.
func get(path string, extra ...string) string {
	var sb strings.Builder
	sb.WriteString("GET " + path + " HTTP/1.1\r\nHost: gw.test\r\n")
	for _, h := range extra {
		sb.WriteString(h + "\r\n")
	}
	sb.WriteString("\r\n")
	return sb.String()
}

// requireFreeFDs fails the test at once, saying why, when fewer than n file
// descriptors are left under the open-file limit: short of them, dials and accepts
// fail and the test would report 502s that are not the gateway's fault.
func requireFreeFDs(t testing.TB, n int) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	if free := int(lim.Cur) - len(open); free < n {
		t.Fatalf("needs %d free file descriptors, has %d (open-file limit %d, %d open): raise ulimit -n", n, free, lim.Cur, len(open))
	}
}
