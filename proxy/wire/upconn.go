package wire

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"
)

// A pooled upstream connection must carry nothing but the answer to the next request
// written on it. fasthttp keeps idle connections without watching them, so bytes a
// backend sends out of turn (a body longer than its framing said, a body on a HEAD or
// 204 answer arriving late, an answer nobody asked for) would be read as the answer to
// the next request of another client. nginx and HAProxy watch idle connections and close
// them on any input; here the connection is checked when it is taken from the pool,
// with one non-blocking recv(MSG_PEEK). That is a system call, so it is made only where
// it can find something: after a bodiless answer (HEAD, 1xx, 204, 304), whose body a
// broken backend sends anyway, and on a connection idle for StaleAfter or more, which
// the backend may have closed or written to since. A hot connection reused within
// StaleAfter of a normal answer is not checked: bytes sent out of turn in that window
// would go unnoticed (the surplus already buffered when an answer ends is always
// caught, for free, by the transport).

// StaleAfter is how long a pooled connection may sit idle before it is checked.
const StaleAfter = 100 * time.Millisecond

// upstreamConn is a dialed upstream TCP connection that can tell, without blocking or
// consuming anything, whether bytes (or the end of the stream) are waiting on it. The
// raw connection and the peek function are made once per connection, so a check costs
// one non-blocking recv(MSG_PEEK) and no allocation. Its write deadline is an idle
// timeout (the sockIO's, see deadline.go; idleWrites without one), so a large upload
// streams to the backend as long as it moves.
type upstreamConn struct {
	net.Conn
	w     idleWrites
	raw   syscall.RawConn
	sock  *sockIO // raw reads and writes (rawio.go); nil when not TCP
	peekf func(fd uintptr)
	n     int
	errno error
	buf   [1]byte
	// suspect is set when the connection goes back to the pool after a bodiless
	// answer: it is checked on its next use whatever its idle time.
	suspect bool
	// holdNext has the next Write held for the Read of the answer (sockIO.holdWrite).
	holdNext bool
}

// WatchUpstream wraps a freshly dialed connection in an upstreamConn when it is a
// socket; anything else (in-memory pipes in tests) is returned as it is.
func WatchUpstream(c net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c, nil
	}
	u := &upstreamConn{Conn: c, sock: newSockIO(c)}
	if u.sock != nil {
		u.raw = u.sock.raw // one RawConn for the raw I/O and the peek
	} else {
		raw, rerr := sc.SyscallConn()
		if rerr != nil {
			return c, nil
		}
		u.raw = raw
	}
	u.peekf = u.peek
	return u, nil
}

// Deadlines go through sock, which arms them only when they matter (deadline.go);
// without one, the write deadline is an idleWrites timeout.
func (u *upstreamConn) SetWriteDeadline(t time.Time) error {
	if u.sock != nil {
		return u.sock.SetWriteDeadline(t)
	}
	return u.w.setDeadline(u.Conn, t)
}

func (u *upstreamConn) SetReadDeadline(t time.Time) error {
	if u.sock != nil {
		return u.sock.SetReadDeadline(t)
	}
	return u.Conn.SetReadDeadline(t)
}

func (u *upstreamConn) SetDeadline(t time.Time) error {
	if err := u.SetWriteDeadline(t); err != nil {
		return err
	}
	return u.SetReadDeadline(t)
}

func (u *upstreamConn) Write(p []byte) (int, error) {
	if u.sock != nil {
		if u.holdNext {
			u.holdNext = false
			u.sock.holdWrite(p)
			return len(p), nil
		}
		return u.sock.Write(p)
	}
	u.w.move(u.Conn)
	return u.Conn.Write(p)
}

func (u *upstreamConn) Read(p []byte) (int, error) {
	if u.sock != nil {
		return u.sock.Read(p)
	}
	return u.Conn.Read(p)
}

// flushForAnswer flushes bw, the rest of a request; with hold, so that the read of
// its answer writes it and waits for the answer without trying a read first
// (sockIO.holdWrite). bw's buffer must stay untouched until that read returns.
func flushForAnswer(conn net.Conn, bw *bufio.Writer, hold bool) error {
	if u, ok := conn.(*upstreamConn); ok && hold && u.sock != nil && bw.Buffered() > 0 {
		u.holdNext = true
		err := bw.Flush()
		u.holdNext = false
		return err
	}
	return bw.Flush()
}

func (u *upstreamConn) peek(fd uintptr) {
	u.n, _, u.errno = syscall.Recvfrom(int(fd), u.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
}

// stale reports whether an idle connection has input waiting (bytes, or the peer's
// close): such a connection must not carry another request. It is called by the one
// goroutine that holds the connection.
func (u *upstreamConn) stale() bool {
	// Control, not Read: no poller bookkeeping, the peek never blocks anyway.
	if err := u.raw.Control(u.peekf); err != nil {
		return true
	}
	if u.errno == nil {
		return true // n > 0: unsolicited bytes; n == 0: the backend closed
	}
	return !errors.Is(u.errno, syscall.EAGAIN) && !errors.Is(u.errno, syscall.EWOULDBLOCK)
}

// staleIdle reports whether conn, taken from the pool (it was used before: last use
// after creation), has input waiting, checking only suspect connections and those idle
// for StaleAfter. Connections of other kinds are never stale.
//
// Under TLS the socket is checked, so a close_notify, a stray record or the
// backend's FIN is caught like plain bytes (a late session ticket would cost one
// reconnection); plaintext the TLS layer has already decrypted and holds is not
// seen, but an answer's surplus in the reader is still caught by the transport.
func staleIdle(conn net.Conn, created, lastUse time.Time) bool {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	u, ok := conn.(*upstreamConn)
	if !ok || lastUse.Before(created) || !u.suspect && time.Since(lastUse) < StaleAfter {
		return false
	}
	u.suspect = false
	return u.stale()
}

// markSuspect has conn checked on its next use (see staleIdle).
func markSuspect(conn net.Conn) {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if u, ok := conn.(*upstreamConn); ok {
		u.suspect = true
	}
}

var (
	errFramingConflict = errors.New("upstream answer has both Content-Length and Transfer-Encoding")
	errVersionFraming  = errors.New("upstream answer has Transfer-Encoding in a version other than HTTP/1.1")
)

// peekHead makes br buffer a whole response head and returns it without consuming it,
// so its raw fields can be checked after fasthttp has parsed them. It returns nil when
// the head does not fit in br (fasthttp then refuses it itself) and the read error, if
// any. The slice is valid until br is read past the head.
func peekHead(br *bufio.Reader) ([]byte, error) {
	n := 1
	for {
		if _, err := br.Peek(n); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, nil
			}
			return nil, err
		}
		// Everything buffered so far: no wait.
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b, strCRLFCRLF); i >= 0 {
			return b[:i+4], nil
		}
		if len(b) >= br.Size() {
			return nil, nil
		}
		n = len(b) + 1
	}
}

var strCRLFCRLF = []byte("\r\n\r\n")

// headHasField reports whether a raw head has a field named name, ignoring case.
func headHasField(head []byte, name string) bool {
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		if i < 0 {
			return false
		}
		line := head[:i]
		head = head[i+1:]
		// fasthttp reads "Name :" as "Name:" in answers; so does this.
		if c := bytes.IndexByte(line, ':'); c > 0 && bytes.EqualFold(bytes.TrimRight(line[:c], " \t"), []byte(name)) {
			return true
		}
	}
	return false
}
