package wire

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// ClientBody wraps a streamed request body so that a failure to read it (a broken
// chunk, a client that stops sending or goes away) is told apart from a failure of the
// upstream the body was being written to: the first is the client's fault, must not
// count against the region's breaker and is answered 400. Its read errors come out
// as *ClientBodyError, through the upstream client's error.
//
// It also moves the client connection's read deadline as the body arrives: fasthttp
// sets one deadline for the whole body, which would cut a large upload for being large;
// the body timeout is meant between reads.
//
// It enforces limits.max_body_bytes on a body whose length is not known in advance
// (chunked): past the limit the read fails with a ClientBodyError that says so (a body
// whose Content-Length is over the limit is refused before it is read).
//
// And it drops the trailer fields of a chunked body, which fasthttp would forward after
// it: a trailer is a field too, and a backend that merges trailers into the header would
// see whatever the client put there (X-Shift-Region, hop-by-hop fields) unchecked.
type ClientBody struct {
	r        io.Reader
	h        *fasthttp.RequestHeader
	conn     net.Conn
	idle     time.Duration
	extended time.Time
	n        int64 // bytes read
	limit    int64 // most bytes the body may have; 0: no limit
	// keep, when not nil, collects the bytes read, up to its capacity, for a mirror's
	// copy of the request (Keep); keepLen is the body's Content-Length then, and
	// keepCut says the bytes did not fit.
	keep    []byte
	keepLen int64
	keepCut bool
	err     error // the first read error (io.EOF aside): every later Read returns it
}

// ClientBodyError is a read error of the client's request body.
type ClientBodyError struct{ err error }

// Error implements error.
func (e *ClientBodyError) Error() string { return "client request body: " + e.err.Error() }

// TooLarge reports whether the body went past limits.max_body_bytes.
func (e *ClientBodyError) TooLarge() bool { return e.err == fasthttp.ErrBodyTooLarge }

// Unwrap is deliberately absent: fasthttp turns any error with a Timeout method into
// its own ErrTimeout, which would make a stalled client look like a stalled upstream.

var clientBodyPool = sync.Pool{New: func() any { return new(ClientBody) }}

func (b *ClientBody) Read(p []byte) (int, error) {
	if b.err != nil {
		// A broken body stays broken. fasthttp's chunked writer (writeBodyChunked)
		// writes the data that comes with an error, drops the error and reads again:
		// its request stream would then take the bytes after a chunk that ran over its
		// size for the next chunk size ("2\r\nabcdef": "def") and wait for that much
		// data, and a body past the limit would wait for the rest of its chunk, holding
		// the client and an upstream connection until the body timeout.
		return 0, b.err
	}
	if now := time.Now(); now.Sub(b.extended) > b.idle/4 {
		b.conn.SetReadDeadline(now.Add(b.idle)) //nolint:errcheck // a dead conn fails the read
		b.extended = now
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.limit > 0 && b.n > b.limit {
		// Nothing past the limit goes on.
		n -= int(b.n - b.limit)
		b.n = b.limit
		b.keepCut = true
		b.err = &ClientBodyError{fasthttp.ErrBodyTooLarge}
		return n, b.err
	}
	if b.keep != nil && !b.keepCut {
		if len(b.keep)+n > cap(b.keep) {
			b.keepCut = true
		} else {
			b.keep = append(b.keep, p[:n]...)
		}
	}
	switch {
	case err == io.EOF:
		// The trailer has been read into the header; nothing of it goes on.
		for _, k := range b.h.PeekTrailerKeys() {
			b.h.DelBytes(k)
		}
	case err != nil:
		err = &ClientBodyError{err}
		b.err = err
	}
	return n, err
}

// WatchClientBody puts a ClientBody around the request's streamed body, if it has one,
// and returns it (or nil); idle is the body timeout, limit the most bytes the body may
// have (0: no limit). The caller releases it once the request has been forwarded.
func WatchClientBody(ctx *fasthttp.RequestCtx, idle time.Duration, limit int64) *ClientBody {
	r := ctx.Request.BodyStream()
	if r == nil {
		return nil
	}
	b := clientBodyPool.Get().(*ClientBody)
	b.r, b.h, b.conn, b.idle, b.extended, b.n, b.limit, b.err = r, &ctx.Request.Header, ctx.Conn(), idle, time.Now(), 0, limit, nil
	// SetBodyStream keeps the length: Content-Length, or -1 for chunked.
	ctx.Request.SetBodyStream(b, ctx.Request.Header.ContentLength())
	return b
}

// Keep makes b collect the body's bytes into buf (from its start, up to its
// capacity) as they are read on their way upstream, so that a mirror can send the
// same body without the main path buffering it. Call it before the body is read,
// for a body whose Content-Length is known and fits buf. A nil b ignores it.
func (b *ClientBody) Keep(buf []byte) {
	if b == nil {
		return
	}
	b.keep, b.keepLen, b.keepCut = buf[:0], int64(b.h.ContentLength()), false
	if b.keepLen <= 0 || b.keepLen > int64(cap(buf)) {
		b.keep, b.keepCut = nil, true
	}
}

// Kept returns the body Keep collected and whether it is the whole body: every byte
// of its Content-Length was read, and all of it fit. The bytes are the buffer given
// to Keep; use them before Release.
func (b *ClientBody) Kept() ([]byte, bool) {
	if b == nil || b.keep == nil || b.keepCut || int64(len(b.keep)) != b.keepLen {
		return nil, false
	}
	return b.keep, true
}

// Release gives b back once the request has been forwarded and returns the body
// bytes read from the client through it (0 for a nil b).
func (b *ClientBody) Release() int64 {
	if b == nil {
		return 0
	}
	n := b.n
	b.r, b.h, b.conn, b.err = nil, nil, nil, nil
	b.keep, b.keepLen, b.keepCut = nil, 0, false
	clientBodyPool.Put(b)
	return n
}
