package proxy

import (
	"io"
	"net"
	"sync"
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
func (s *Server) sendUntilClose(ctx *fasthttp.RequestCtx, timeout time.Duration) {
	resp := &ctx.Response
	// Counted from here, while fasthttp still counts the request in flight, so a
	// shutdown that saw it finish waits for the body too (handedOff.drain).
	s.handedOff.begin()
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
			s.handedOff.end(nil)
		}
	})
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer c.Close() // the server keeps hijacked connections (KeepHijackedConns)
		if !owned.CompareAndSwap(false, true) {
			return
		}
		orphan.Stop()
		s.handedOff.attach(c)
		defer s.handedOff.end(c)
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

// handedOff tracks the answers written on taken-over connections (sendUntilClose),
// which fasthttp no longer counts once it hands a connection over: a shutdown waits
// for them as for in-flight requests, then closes what is left, so the process does
// not exit in the middle of a body whose only end is the close (the client would take
// the cut body as complete).
type handedOff struct {
	mu    sync.Mutex
	n     int                   // answers begun and not ended
	idle  chan struct{}         // closed when n drops to 0, while drain waits
	conns map[net.Conn]struct{} // their connections, once taken over
}

func (h *handedOff) begin() {
	h.mu.Lock()
	h.n++
	h.mu.Unlock()
}

// attach names the connection the answer is written on, for drain to close.
func (h *handedOff) attach(c net.Conn) {
	h.mu.Lock()
	if h.conns == nil {
		h.conns = map[net.Conn]struct{}{}
	}
	h.conns[c] = struct{}{}
	h.mu.Unlock()
}

// end marks one answer done; c is its connection, nil when none was attached.
func (h *handedOff) end(c net.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c != nil {
		delete(h.conns, c)
	}
	h.n--
	if h.n == 0 && h.idle != nil {
		close(h.idle)
		h.idle = nil
	}
}

// drain waits until every answer is done or until deadline, then closes the
// connections of those still being written, and reports how many were.
func (h *handedOff) drain(deadline time.Time) int {
	h.mu.Lock()
	if h.n == 0 {
		h.mu.Unlock()
		return 0
	}
	idle := make(chan struct{})
	h.idle = idle
	h.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-idle:
		return 0
	case <-t.C:
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.idle = nil
	for c := range h.conns {
		c.Close() //nolint:errcheck // ends the answer; its writer returns
	}
	return h.n
}
