package proxy

import (
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// sendUntilClose sends a streamed answer of unknown length (a chunked or
// close-delimited upstream body) to an HTTP/1.0 client, which must not get chunked
// framing (RFC 9112 section 6.1): the head goes without a framing field and with
// Connection: close, the body as it comes, and the close ends it, as nginx does.
// fasthttp chunks every stream of unknown length, so the answer is written on the
// hijacked connection; ctx stays valid until the hijack handler returns.
//
// A body the upstream cuts short reads as complete to such a client: a
// close-delimited body has no other end. Each write may take up to timeout.
func sendUntilClose(ctx *fasthttp.RequestCtx, timeout time.Duration) {
	resp := &ctx.Response
	resp.Header.Del(fasthttp.HeaderTransferEncoding)
	resp.Header.SetContentLength(-2) // no Content-Length; and Connection: close
	// fasthttp skips the hijack handler when the client's connection fails first,
	// and then never releases ctx: the upstream body, and its connection, would be
	// held for good. Whichever comes first owns the body: the handler, or this
	// timer, which closes it (as a tunnel's orphan timer does).
	var owned atomic.Bool
	orphan := time.AfterFunc(timeout, func() {
		if owned.CompareAndSwap(false, true) {
			resp.CloseBodyStream() //nolint:errcheck // closes the upstream connection
		}
	})
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer c.Close() // the server keeps hijacked connections (KeepHijackedConns)
		if !owned.CompareAndSwap(false, true) {
			return
		}
		orphan.Stop()
		defer resp.CloseBodyStream() //nolint:errcheck // returns the upstream connection, or closes it
		w := deadlineWriter{c: c, timeout: timeout}
		if _, err := w.Write(resp.Header.Header()); err != nil {
			return
		}
		buf := make([]byte, 32<<10)
		io.CopyBuffer(w, resp.BodyStream(), buf) //nolint:errcheck // the close ends the body either way
	})
}

// deadlineWriter gives each write to c its own deadline.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(time.Now().Add(w.timeout)) //nolint:errcheck // a dead conn fails the write
	return w.c.Write(p)
}
