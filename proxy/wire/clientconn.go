package wire

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// LineListener wraps each accepted connection in a lineConn. With Park set, its
// connections park while idle (TLS ones with their session, see Parking), and
// Park.MaxConns caps this listener's connections, served and parked (fasthttp caps
// the served ones of each listener).
type LineListener struct {
	net.Listener
	Park *Parking
	live atomic.Int64 // connections accepted and not yet closed, under Park
}

// Accept implements net.Listener. A TLS connection stays recognisable as one
// (Handshake, ConnectionState), so that fasthttp runs its handshake off the accept
// loop and never writes a plain-text refusal into it.
func (l *LineListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, isTLS := c.(tlsConn)
		if l.Park == nil {
			if isTLS {
				return &tlsLineConn{lineConn: lineConn{Conn: c, below: sockBelow(c)}, tc: tc}, nil
			}
			return &lineConn{Conn: c, sock: newSockIO(c)}, nil
		}
		if m := l.Park.MaxConns; m > 0 && l.live.Load() >= int64(m) {
			l.Park.refused.Add(1)
			if isTLS {
				// No handshake yet: a plain-text refusal would be noise in a TLS
				// stream, and the handshake would hold up the accept loop (fasthttp
				// closes such a connection too).
				c.Close()
			} else {
				refuse(c)
			}
			continue
		}
		l.live.Add(1)
		if isTLS {
			tl := &tlsLineConn{lineConn: lineConn{Conn: c, below: sockBelow(c), parking: l.Park, live: &l.live}, tc: tc}
			tl.outer = tl
			return tl, nil
		}
		return &lineConn{Conn: c, sock: newSockIO(c), parking: l.Park, live: &l.live}, nil
	}
}

// tlsConn is what fasthttp recognises as a TLS connection.
type tlsConn interface {
	Handshake() error
	ConnectionState() tls.ConnectionState
}

// sockBelow returns the raw socket under TLS connection c (RawListener), nil when it
// has none.
func sockBelow(c net.Conn) *sockIO {
	nc, ok := c.(interface{ NetConn() net.Conn })
	if !ok {
		return nil
	}
	if rc, ok := nc.NetConn().(*rawConn); ok {
		return rc.sock
	}
	return nil
}

// tlsLineConn is a lineConn over a TLS connection.
type tlsLineConn struct {
	lineConn
	tc tlsConn
}

// Handshake runs the TLS handshake (bounded by the connection's own timeout).
func (c *tlsLineConn) Handshake() error { return c.tc.Handshake() }

// ConnectionState reports the TLS state.
func (c *tlsLineConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// lineConn is a client connection that knows how many bytes it has read since the
// last LF. When a head overflows fasthttp's read buffer, the buffer holds exactly the
// last bytes read, from the start of the request; if none of them is an LF, the request
// line alone did not fit (414), else the fields did not (431). fasthttp resets the
// parsed head before its error handler runs, so this is the one place the difference
// survives. It costs a byte search per read and no allocation; it is used by one
// goroutine at a time.
//
// It also turns fasthttp's write deadline, which bounds the whole response, into an idle
// timeout that moves with each write: a 50 MB download to a slow but steady client is
// not cut for taking longer than the body timeout, a client that stops reading is. A
// TCP socket's deadlines go through its sockIO, which arms them only when they matter
// (deadline.go); other connections' through idleWrites.
//
// Under Parking (parking set) it parks while it waits for a next request: see Parking.
type lineConn struct {
	net.Conn
	sock    *sockIO // raw reads and writes of a TCP socket; nil for others
	sinceLF int
	w       idleWrites
	// below is the raw socket under a TLS connection (RawListener), nil for others.
	// It already makes its write deadline an idle timeout, armed only when a write
	// waits; under parking a parked TLS connection is watched on it.
	below *sockIO

	parking *Parking
	live    *atomic.Int64 // the listener's count of open connections, under parking
	// outer is what fasthttp serves under parking when that is not the lineConn
	// itself: its tlsLineConn, which fasthttp recognises as TLS. nil when plain.
	outer net.Conn
	park  atomic.Int32 // serving, parking, parked or closed
	// idle is set while fasthttp waits for the next request (ConnState); the read
	// deadline fasthttp sets then is kept in idleDeadline and applied by idleRead.
	idle         bool
	idleDeadline time.Time
	// first is the first byte of the request that woke a parked connection, read
	// again by fasthttp when hasFirst.
	first    byte
	hasFirst bool
}

// SetReadDeadline passes the deadline on, except while the connection waits for its
// next request under Parking: idleRead applies it then.
func (c *lineConn) SetReadDeadline(t time.Time) error {
	if c.idle {
		c.idleDeadline = t
		return nil
	}
	return c.setReadDeadline(t)
}

// setReadDeadline sets the socket's read deadline, through sock when it has one.
func (c *lineConn) setReadDeadline(t time.Time) error {
	if c.sock != nil {
		return c.sock.SetReadDeadline(t)
	}
	return c.Conn.SetReadDeadline(t)
}

// Close closes the connection, or parks it when its read has just told fasthttp the
// client left (Parking).
func (c *lineConn) Close() error {
	if c.parking != nil && c.park.Load() == parking && c.parking.hold(c) {
		return nil
	}
	return c.closeNow()
}

// closeNow closes the connection for good.
func (c *lineConn) closeNow() error {
	if c.park.Swap(closed) != closed && c.live != nil {
		c.live.Add(-1)
	}
	return c.Conn.Close()
}

// SetWriteDeadline sets an idle timeout for writes: sock's (deadline.go) or idleWrites.
func (c *lineConn) SetWriteDeadline(t time.Time) error {
	switch {
	case c.sock != nil:
		return c.sock.SetWriteDeadline(t)
	case c.below != nil:
		return c.Conn.SetWriteDeadline(t)
	}
	return c.w.setDeadline(c.Conn, t)
}

func (c *lineConn) SetDeadline(t time.Time) error {
	if err := c.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.setReadDeadline(t)
}

func (c *lineConn) Write(p []byte) (int, error) {
	if c.sock != nil {
		return c.sock.Write(p)
	}
	if c.below == nil {
		c.w.move(c.Conn)
	}
	return c.Conn.Write(p)
}

// read reads from the socket.
func (c *lineConn) read(p []byte) (int, error) {
	if c.sock != nil {
		return c.sock.Read(p)
	}
	return c.Conn.Read(p)
}

// copyBufs are the buffers of lineConn.ReadFrom.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ReadFrom copies r to the connection, each read written at once. fasthttp's write
// buffer hands a streamed body here once it is empty (after the head was flushed):
// bytes an upstream sent before it stalled reach the client instead of waiting in
// the buffer for 4 KiB that never come. Writes go through Write, so the idle write
// timeout moves as they do.
func (c *lineConn) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		nr, er := r.Read(buf)
		if nr > 0 {
			nw, ew := c.Write(buf[:nr])
			n += int64(nw)
			if ew != nil {
				return n, ew
			}
			if nw != nr {
				return n, io.ErrShortWrite
			}
		}
		if er == io.EOF {
			return n, nil
		}
		if er != nil {
			return n, er
		}
	}
}

// idleWrites turns a write deadline into an idle timeout between writes: a deadline set
// d from now is moved to d from the latest write. Used by one goroutine at a time.
type idleWrites struct {
	idle time.Duration // 0: no write deadline
	set  time.Time     // when the deadline was last moved
}

func (w *idleWrites) setDeadline(c net.Conn, t time.Time) error {
	w.idle, w.set = 0, time.Time{}
	if !t.IsZero() {
		w.set = time.Now()
		w.idle = t.Sub(w.set)
	}
	return c.SetWriteDeadline(t)
}

// move pushes the deadline ahead before a write. Moving it costs a timer update, so it
// is done once a quarter of the timeout has passed.
func (w *idleWrites) move(c net.Conn) {
	if w.idle <= 0 {
		return
	}
	if now := time.Now(); now.Sub(w.set) > w.idle/4 {
		c.SetWriteDeadline(now.Add(w.idle)) //nolint:errcheck // a dead conn fails the write
		w.set = now
	}
}

func (c *lineConn) Read(p []byte) (int, error) {
	var (
		n   int
		err error
	)
	switch {
	case c.hasFirst && len(p) > 0:
		p[0], n, c.hasFirst = c.first, 1, false
	case c.idle:
		n, err = c.idleRead(p)
	default:
		n, err = c.read(p)
	}
	if n > 0 {
		b := p[:n]
		// IndexByte is vectorised: bodies without LF cost little.
		if bytes.IndexByte(b, '\n') < 0 {
			c.sinceLF = min(c.sinceLF+n, 1<<30)
		} else {
			c.sinceLF = n - 1 - bytes.LastIndexByte(b, '\n')
		}
	}
	return n, err
}

// SetKeepAlive and SetKeepAlivePeriod pass fasthttp's TCP keep-alive settings on.
func (c *lineConn) SetKeepAlive(on bool) error {
	if k, ok := c.Conn.(interface{ SetKeepAlive(bool) error }); ok {
		return k.SetKeepAlive(on)
	}
	return nil
}

func (c *lineConn) SetKeepAlivePeriod(d time.Duration) error {
	if k, ok := c.Conn.(interface{ SetKeepAlivePeriod(time.Duration) error }); ok {
		return k.SetKeepAlivePeriod(d)
	}
	return nil
}

// CloseWrite half-closes the connection, for tunnels.
func (c *lineConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// RequestLineTooLong reports whether the head of ctx overflowed a read buffer of size
// bytes before its request line ended.
func RequestLineTooLong(ctx *fasthttp.RequestCtx, size int) bool {
	switch c := ctx.Conn().(type) {
	case *lineConn:
		return c.sinceLF >= size
	case *tlsLineConn:
		return c.sinceLF >= size
	}
	return false
}
