package wire

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Parking holds idle keep-alive client connections without the goroutine, read
// buffer and request context fasthttp keeps for each of them.
//
// fasthttp serves a connection in one goroutine from its first request to its close.
// When request bodies stream (StreamRequestBody) it keeps the connection's read
// buffer, sized for the largest request head, between requests, and waits for the
// next one in that goroutine, whose stack has grown to 8 KiB while serving: about
// 17 KiB of RSS per idle client. A connection that has waited After for its next
// request is parked instead: its read returns end-of-stream, which fasthttp takes for
// a client that left, so it ends the connection's goroutine and gives the buffer and
// context back; its close is then held, and it waits, without a goroutine on Linux
// (parkpoll_linux.go), elsewhere in a small goroutine's one-byte read, until the next
// request's first byte (which is handed back to fasthttp through Serve, as a new
// connection) or until the idle deadline fasthttp had set (the connection is closed,
// as fasthttp would have).
//
// A TLS connection parks the same way, keeping its net.Conn and session (crypto/tls
// reads a request whose record was cut by the park deadline on as if nothing had
// happened: a timeout does not break a TLS stream); it is watched on the socket under
// the encryption, its first byte is read through TLS, and it is never detached
// (parkpoll_linux.go), since the session lives in the net.Conn.
//
// It relies on fasthttp setting a read deadline once a request's first byte is in
// (Server.ReadTimeout > 0) and reporting each connection's state to ConnState.
type Parking struct {
	// After is how long a keep-alive connection waits in its server goroutine for the
	// next request before it parks.
	After time.Duration
	// Serve serves a woken connection (fasthttp.Server.ServeConn).
	Serve func(net.Conn) error
	// MaxConns caps a listener's served and parked connections together (0: no
	// cap). A client over it gets fasthttp's 503 and a close.
	MaxConns int
	// Crowd and Soon: while a listener's served (not parked) connections are more
	// than Crowd, an idle one parks after Soon instead of After (0: never). A burst of
	// clients that each send a request and then wait would otherwise each hold a
	// goroutine and fasthttp's buffers (about 80 KiB) for After; the Go runtime keeps
	// a goroutine's descriptor for good, and the heap's bookkeeping for its peak.
	Crowd int
	Soon  time.Duration
	// Detach is how long a connection stays parked as a net.Conn before its socket is
	// detached from it (parkpoll_linux.go; 0: never).
	Detach time.Duration

	n       atomic.Int64 // parked connections, read without the lock
	d       atomic.Int64 // of them detached (parkpoll_linux.go)
	refused atomic.Int64 // connections refused at MaxConns
	mu      sync.Mutex
	conns   map[*lineConn]struct{}
	closed  bool
	poll    *parkPoll // the parked sockets' epoll set (parkpoll_linux.go); nil until used
}

// Parked counts the parked connections.
func (p *Parking) Parked() int { return int(p.n.Load()) }

// Detached counts the parked connections whose sockets are detached from their
// net.Conn (parkpoll_linux.go).
func (p *Parking) Detached() int { return int(p.d.Load()) }

// countLocked updates the counts read without the lock.
func (p *Parking) countLocked() {
	all, detached := p.watchedLocked()
	p.n.Store(int64(len(p.conns) + all))
	p.d.Store(int64(detached))
}

// Refused counts the connections refused at MaxConns.
func (p *Parking) Refused() int64 { return p.refused.Load() }

// Close closes every parked connection; a connection that parks later is closed at
// once.
func (p *Parking) Close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.unwatchAllLocked()
	p.countLocked()
	p.mu.Unlock()
	for c := range conns {
		if c.park.Load() == parked {
			c.endParked()
		}
	}
}

// refusal is what a client over MaxConns gets: fasthttp's own answer.
var refusal = func() string {
	const body = "The connection cannot be served because Server.Concurrency limit exceeded"
	return "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}()

// refuse answers a plain connection over MaxConns and closes it.
func refuse(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(time.Second)) //nolint:errcheck // best effort
	io.WriteString(c, refusal)                      //nolint:errcheck
	c.Close()
}

// The states of a connection under Parking.
const (
	serving int32 = iota // fasthttp serves it
	parking              // its read told fasthttp the client left; its close will park it
	parked               // a goroutine waits for its next request
	closed               // closed for good
)

// errParked is what the read of a parking connection returns: end of stream.
var errParked = io.EOF

// ConnState is fasthttp's Server.ConnState for connections under Parking: it tells a
// connection when it waits for its next request.
func ConnState(c net.Conn, s fasthttp.ConnState) {
	var lc *lineConn
	switch c := c.(type) {
	case *lineConn:
		lc = c
	case *tlsLineConn:
		lc = &c.lineConn
	}
	if lc != nil && lc.parking != nil {
		switch s {
		case fasthttp.StateIdle:
			lc.idle = true
		case fasthttp.StateActive:
			lc.idle = false
		}
	}
}

// parkAfter is how long an idle connection of a listener with live open connections
// waits before it parks.
func (p *Parking) parkAfter(live *atomic.Int64) time.Duration {
	if p.Crowd > 0 && live != nil && live.Load()-p.n.Load() > int64(p.Crowd) {
		return p.Soon
	}
	return p.After
}

// idleRead is the read fasthttp makes while a connection waits for its next request:
// it waits at most parking.After, then parks the connection.
func (c *lineConn) idleRead(p []byte) (int, error) {
	d := time.Now().Add(c.parking.parkAfter(c.live))
	if !c.idleDeadline.IsZero() && c.idleDeadline.Before(d) {
		d = c.idleDeadline
	}
	if err := c.setReadDeadline(d); err != nil {
		return 0, err
	}
	// Past the idle deadline itself the read fails as it would have.
	short := c.idleDeadline.IsZero() || d.Before(c.idleDeadline)
	n, err := c.read(p)
	if n == 0 && short && isTimeout(err) && c.park.CompareAndSwap(serving, parking) {
		return 0, errParked
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hold parks c after fasthttp closed it; false when c is to be closed for good. On
// Linux c waits in the epoll set (parkpoll_linux.go); elsewhere, or when that fails,
// in a goroutine.
func (p *Parking) hold(c *lineConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || !c.park.CompareAndSwap(parking, parked) {
		return false
	}
	if !p.watchLocked(c) {
		if p.conns == nil {
			p.conns = make(map[*lineConn]struct{})
		}
		p.conns[c] = struct{}{}
		go p.wait(c)
	}
	p.countLocked()
	return true
}

// wait waits in a goroutine for the next request on a parked connection and serves
// it.
func (p *Parking) wait(c *lineConn) {
	first, ok := c.firstByte()
	p.mu.Lock()
	delete(p.conns, c)
	p.countLocked()
	p.mu.Unlock()
	p.serveWoken(c, first, ok)
}

// firstByte reads the first byte of a parked connection's next request, waiting until
// its idle deadline at most; false when the client left or the deadline passed.
func (c *lineConn) firstByte() (byte, bool) {
	c.setReadDeadline(c.idleDeadline) //nolint:errcheck // a dead conn fails the read
	var b [1]byte
	n, _ := c.read(b[:])
	return b[0], n == 1
}

// serveWoken hands parked connection c back to fasthttp with first, the first byte
// of its next request, or closes c when there is none (the client left, the idle
// deadline passed) or p was closed.
func (p *Parking) serveWoken(c *lineConn, first byte, ok bool) {
	p.mu.Lock()
	woken := ok && !p.closed && c.park.CompareAndSwap(parked, serving)
	p.mu.Unlock()
	if !woken {
		c.closeNow()
		return
	}
	c.first, c.hasFirst = first, true
	c.idle, c.idleDeadline = false, time.Time{}
	c.setReadDeadline(time.Time{}) //nolint:errcheck // fasthttp sets its own
	p.Serve(c.served())            //nolint:errcheck // fasthttp logs what matters
}

// served is the connection fasthttp serves: c, or the TLS connection c is part of.
func (c *lineConn) served() net.Conn {
	if c.outer != nil {
		return c.outer
	}
	return c
}

// endParked closes parked connection c for good. A TLS connection's close sends
// a close_notify alert, which may wait seconds for a client that stopped reading: it
// is closed in a goroutine of its own, never under the Parking's lock.
func (c *lineConn) endParked() {
	if c.outer != nil {
		go c.closeNow()
		return
	}
	c.closeNow()
}
