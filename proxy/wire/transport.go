package wire

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// transport is the fasthttp RoundTripper of every upstream client. Unlike fasthttp's
// own, it
//   - never retries: the proxy decides about failover itself;
//   - bounds the response head by the response-header timeout and then the body by an
//     idle timeout that moves with progress, so a large download is not cut by a
//     total deadline while a stalled one is;
//   - reads small bodies of known length (the common API response) straight into the
//     response, and streams the rest through a pooled reader, so the steady state
//     allocates nothing;
//   - returns a connection to the pool only when its response was read to the end;
//   - lets a request's HeadWatch (headwatch.go) cut its wait for the answer's head.
type Transport struct {
	// Header bounds the wait for the answer's head; Body each wait between body reads.
	Header time.Duration
	Body   time.Duration
	// BufferLimit is the largest body of known length read into memory at once.
	BufferLimit int
	// writeFirst writes each request whole before reading its answer instead of
	// holding its last bytes for that read (flushForAnswer); the benchmarks and the
	// read-count test compare both.
	writeFirst bool
}

const maxInterimResponses = 8

var errTooManyInterim = errors.New("upstream sent too many interim (1xx) responses")

// RoundTrip implements fasthttp.RoundTripper.
func (t *Transport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	cc, err := hc.AcquireConn(0, req.ConnectionClose())
	if err != nil {
		return false, err
	}
	// A pooled connection with input waiting would hand it to this request as its
	// answer (see upconn.go); it goes, and the next one is tried.
	for staleIdle(cc.Conn(), cc.CreatedTime(), cc.LastUseTime()) {
		hc.CloseConn(cc)
		if cc, err = hc.AcquireConn(0, req.ConnectionClose()); err != nil {
			return false, err
		}
	}
	conn := cc.Conn()
	now := time.Now()
	if err := conn.SetWriteDeadline(now.Add(t.Body)); err != nil {
		hc.CloseConn(cc)
		return false, err
	}
	// The writer's buffer may hold the request's last bytes until the head read
	// below has sent them (flushForAnswer): it goes back to the pool after that read.
	bw := hc.AcquireWriter(conn)
	err = req.Write(bw)
	if err == nil {
		err = flushForAnswer(conn, bw, !t.writeFirst)
	}
	if err != nil {
		hc.ReleaseWriter(bw)
		hc.CloseConn(cc)
		return false, err
	}
	wait := t.Header
	hw := watching(req)
	if hw != nil {
		if l := hw.HeadLimit(); l > 0 && l < wait {
			wait = l
		}
	}
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		hc.CloseConn(cc)
		hc.ReleaseWriter(bw)
		return false, err
	}
	if hw != nil && !hw.HeadWait(conn) {
		hc.CloseConn(cc)
		hc.ReleaseWriter(bw)
		return false, ErrAbandoned
	}
	br := hc.AcquireReader(conn)
	err = readHead(resp, br)
	hc.ReleaseWriter(bw)
	if hw != nil && (hw.HeadDone() || err != nil && wait < t.Header && errors.Is(err, os.ErrDeadlineExceeded)) {
		// Cut by the watch, or at its limit: whatever came is not used.
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return false, ErrAbandoned
	}
	if err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return false, err
	}
	closeConn := req.ConnectionClose() || resp.Header.ConnectionClose()
	status := resp.StatusCode()
	if req.Header.IsHead() || status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified {
		resp.SkipBody = true
		// Bytes after a bodiless answer (a body on HEAD or 204) are not the next
		// answer: the connection goes.
		surplus := br.Buffered() > 0
		hc.ReleaseReader(br)
		if closeConn || surplus || status == fasthttp.StatusSwitchingProtocols {
			hc.CloseConn(cc)
		} else {
			markSuspect(conn) // a late body would be checked for on its next use
			hc.ReleaseConn(cc)
		}
		return false, nil
	}
	cl := resp.Header.ContentLength()
	if cl >= 0 && cl <= t.BufferLimit {
		// Fast path: the whole body is small and of known length.
		resp.StreamBody = false
		err = resp.ReadBody(br, cl)
		surplus := br.Buffered() > 0 // more than Content-Length said
		hc.ReleaseReader(br)
		if err != nil || closeConn || surplus {
			hc.CloseConn(cc)
		} else {
			hc.ReleaseConn(cc)
		}
		return false, err
	}
	// Slow path: stream the body as it arrives.
	if err := conn.SetReadDeadline(time.Now().Add(t.Body)); err != nil {
		hc.ReleaseReader(br)
		hc.CloseConn(cc)
		return false, err
	}
	if cl > 0 {
		// Nothing has gone to the client yet: a backend that stops right after the
		// head of a body it promised gets the client a 502 (or 504), not a 200 head
		// followed by nothing. The first body bytes usually came with the head, so
		// this rarely waits; a chunked stream is not held (it may start late).
		if _, err := br.Peek(1); err != nil {
			hc.ReleaseReader(br)
			hc.CloseConn(cc)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return false, err
		}
	}
	b := acquireBody(hc, cc, (*fasthttp.HostClient).ReleaseConn, (*fasthttp.HostClient).CloseConn)
	b.init(conn, br, int64(cl), t.Body, closeConn)
	if cl < 0 {
		// Chunked or read-until-close upstream: chunked to the client, so that a
		// cut upstream shows as a cut, never as a complete body.
		cl = -1
	}
	resp.SetBodyStream(b, cl)
	// The head goes to the client as soon as it is written, not when the client
	// buffer fills: if the upstream then fails, the client sees the head and a body
	// cut short (fewer bytes than Content-Length, or no last chunk), never a
	// connection closed with nothing on it.
	resp.ImmediateHeaderFlush = true
	return false, nil
}

// readHead reads a response head, skipping interim 1xx answers (but not 101).
func readHead(resp *fasthttp.Response, br *bufio.Reader) error {
	for n := 0; ; n++ {
		head, err := peekHead(br)
		if err != nil {
			return err
		}
		if err := resp.Header.Read(br); err != nil {
			return err
		}
		// fasthttp lets chunked win over Content-Length silently; an answer with
		// both is refused (RFC 9112 section 6.3: handled as an error).
		if resp.Header.ContentLength() == -1 && headHasField(head, fasthttp.HeaderContentLength) {
			return errFramingConflict
		}
		// fasthttp drops Transfer-Encoding from an answer of another version than
		// HTTP/1.1 and reads its body to the close, chunk framing and all. Such
		// framing is faulty (RFC 9112 section 6.1): the answer is refused.
		if !resp.Header.IsHTTP11() && headHasField(head, fasthttp.HeaderTransferEncoding) {
			return errVersionFraming
		}
		s := resp.StatusCode()
		if s < 100 || s > 199 || s == fasthttp.StatusSwitchingProtocols {
			return nil
		}
		if n >= maxInterimResponses {
			return errTooManyInterim
		}
	}
}

// bodyMode is how an upstream body is framed.
const (
	framedChunked = -1 // Transfer-Encoding: chunked
	framedClose   = -2 // until the upstream closes the connection
)

var bodyPool sync.Pool

// upstreamBody streams one upstream response body to the client. C is fasthttp's
// (unexported) connection type, carried by inference so no closure is allocated.
type upstreamBody[C any] struct {
	hc       *fasthttp.HostClient
	cc       C
	release  func(*fasthttp.HostClient, C)
	discard  func(*fasthttp.HostClient, C)
	conn     net.Conn
	br       *bufio.Reader
	left     int64 // bytes left in a fixed body or the current chunk
	mode     int64 // >= 0 fixed length, framedChunked, framedClose
	done     bool  // the body was read to its end
	noReuse  bool
	idle     time.Duration
	extended time.Time
	chunk    chunkState
	err      error
	n        int64        // body bytes returned by Read
	obs      BodyObserver // told how the body ended, at Close; nil for none
}

// BodyObserver is told, once, how a streamed upstream body ended: the body bytes
// passed on and whether the body was read to its end. It is called from the goroutine
// that writes the response, after the handler has returned; it must not touch the
// request's context.
type BodyObserver interface {
	BodyDone(bytes int64, complete bool)
}

// ObserveBody has o told how the streamed upstream body of resp ends, and reports
// whether resp has such a body (false for a body in memory: its length is known).
func ObserveBody(resp *fasthttp.Response, o BodyObserver) bool {
	if b, ok := resp.BodyStream().(interface{ observe(BodyObserver) }); ok {
		b.observe(o)
		return true
	}
	return false
}

func (b *upstreamBody[C]) observe(o BodyObserver) { b.obs = o }

func acquireBody[C any](hc *fasthttp.HostClient, cc C, release, discard func(*fasthttp.HostClient, C)) *upstreamBody[C] {
	b, _ := bodyPool.Get().(*upstreamBody[C])
	if b == nil {
		b = new(upstreamBody[C])
	}
	b.hc, b.cc, b.release, b.discard = hc, cc, release, discard
	return b
}

func (b *upstreamBody[C]) init(conn net.Conn, br *bufio.Reader, cl int64, idle time.Duration, noReuse bool) {
	b.conn, b.br, b.mode, b.idle, b.noReuse = conn, br, cl, idle, noReuse
	b.left, b.done, b.err, b.chunk, b.n, b.obs = 0, false, nil, chunkSize, 0, nil
	if cl >= 0 {
		b.left = cl
		b.done = cl == 0
	}
	b.extended = time.Now()
}

// Read implements io.Reader over the upstream body's framing.
func (b *upstreamBody[C]) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	// Keep the read deadline ahead of progress: the body may take as long as it
	// needs while it moves, but a stall of `idle` ends it.
	if now := time.Now(); now.Sub(b.extended) > b.idle/4 {
		b.conn.SetReadDeadline(now.Add(b.idle)) //nolint:errcheck // a dead conn fails the read
		b.extended = now
	}
	var n int
	var err error
	switch {
	case b.mode >= 0:
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err = b.br.Read(p)
		b.left -= int64(n)
		if b.left == 0 {
			b.done = true
			err = nil
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	case b.mode == framedChunked:
		n, err = b.readChunked(p)
	default:
		n, err = b.br.Read(p)
		if err == io.EOF {
			b.done, b.noReuse = true, true
		}
	}
	b.n += int64(n)
	if err != nil && err != io.EOF {
		b.err = err
		return n, err
	}
	if b.done && n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Close returns the connection to the pool if the body was read to its end, else
// closes it: a connection in the middle of a body would hand its rest to the next
// request.
func (b *upstreamBody[C]) Close() error {
	if b.obs != nil {
		b.obs.BodyDone(b.n, b.done && b.err == nil)
		b.obs = nil
	}
	surplus := b.br.Buffered() > 0 // bytes past the end of the body
	b.hc.ReleaseReader(b.br)
	if b.done && b.err == nil && !b.noReuse && !surplus {
		b.release(b.hc, b.cc)
	} else {
		b.discard(b.hc, b.cc)
	}
	var zero C
	b.hc, b.cc, b.conn, b.br, b.release, b.discard = nil, zero, nil, nil, nil, nil
	bodyPool.Put(b)
	return nil
}
