package wire

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// sockIO reads and writes a nonblocking TCP socket with raw system calls, still
// waiting in Go's poller (so deadlines and Close work as for net.Conn) when the
// socket is not ready.
//
// Why: net.Conn's Read and Write enter the kernel through syscall.Syscall, which
// marks the goroutine's P as in a system call. A read or write of a nonblocking
// socket never blocks, but on loopback a write runs the receiver's TCP input in the
// writer's context and often outlasts two ticks (20 µs) of the runtime's monitor
// thread; the monitor then takes the P away and hands it to another thread, the
// writer has to get a P back when the call returns, and the monitor, having found
// work, keeps waking every 20 µs instead of backing off to 10 ms. On one core that
// churn of thread switches and monitor wake-ups cost more than the proxy's own work
// per request. RawSyscall skips the bookkeeping: the P stays with the goroutine,
// whose kernel time is work done for it anyway, and the monitor backs off.
//
// The costs: a stop-the-world waits for a call in flight (microseconds); the race
// detector does not see these reads and writes as synchronising (nothing here
// relies on a socket for memory ordering between goroutines of this process).
//
// net.Conn allows concurrent calls; the raw path holds its arguments in the struct
// so that the callbacks, bound once, allocate nothing. A second concurrent reader
// or writer (which shiftgate does not have, but a net.Conn must allow) takes the
// plain path, which waits for the raw one on the socket's own lock.
type sockIO struct {
	conn net.Conn
	raw  syscall.RawConn
	r, w sockDir
	rd   readDeadline  // see deadline.go
	wd   writeDeadline // see deadline.go
	// held is a request the next Read writes before it waits for the answer
	// (holdWrite); heldF is sendThenRead, bound once.
	held     []byte
	heldF    func(fd uintptr) bool
	heldMore bool          // the socket took part of held: the rest goes by Write
	heldErr  syscall.Errno // writing held failed
}

// sockDir is one direction of a sockIO: the call in flight and its outcome. Every
// parked connection keeps two, so they hold no more than they need.
type sockDir struct {
	busy  atomic.Bool // a raw call is in flight
	f     func(fd uintptr) bool
	wd    *writeDeadline // the write direction's deadline, armed before f waits; nil for reads
	p     []byte
	n     int
	errno syscall.Errno
}

// op names d's operation, for errors.
func (d *sockDir) op() string {
	if d.wd != nil {
		return "write"
	}
	return "read"
}

// newSockIO returns a sockIO for c when it is a TCP socket, else nil.
func newSockIO(c net.Conn) *sockIO {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &sockIO{conn: c, raw: rc}
	s.w.wd = &s.wd
	s.r.f, s.w.f = s.r.once, s.w.all
	s.heldF = s.sendThenRead
	s.rd.c, s.wd.c = c, c
	s.rd.armed.Store(noDeadline)
	s.wd.armed.Store(noDeadline)
	return s
}

// once makes one read: done unless the socket has nothing yet.
func (d *sockDir) once(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(d.p))), uintptr(len(d.p)))
		switch e {
		case 0:
			d.n = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the poller, then again
		}
		d.errno = e
		return true
	}
}

// all writes until p is gone: done unless the socket's buffer is full.
func (d *sockDir) all(fd uintptr) bool {
	for len(d.p) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(d.p))), uintptr(len(d.p)))
		switch e {
		case 0:
			d.n += int(n)
			d.p = d.p[n:]
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			d.wd.waiting()
			return false // the rest once the socket is writable
		}
		d.errno = e
		return true
	}
	return true
}

// holdWrite keeps p, a whole request, for the next Read to write before it waits
// for the answer. The caller leaves p untouched until that Read returns, and makes
// no other call on the socket before it.
//
// Why: Go's RawConn.Read clears the socket's readiness and then tries a read before
// it waits; right after a request is written that read almost always finds nothing
// (the answer has rarely come yet), a system call of 1.3–1.7 µs for nothing
// (BenchmarkEmptyRead). Written inside the Read, after the readiness was cleared,
// the request's answer can only come after it, so the first try can be skipped and
// the wait taken at once: any byte that comes marks the socket ready again.
func (s *sockIO) holdWrite(p []byte) {
	s.held, s.heldMore, s.heldErr = p, false, 0
}

// sendThenRead is the read function while a request is held: it writes the request
// and waits (false) instead of reading; later tries read.
func (s *sockIO) sendThenRead(fd uintptr) bool {
	for len(s.held) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(s.held))), uintptr(len(s.held)))
		switch e {
		case 0:
			s.held = s.held[n:]
			if len(s.held) == 0 {
				s.held = nil
				return false // the answer comes after this: wait for it
			}
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			s.heldMore = true
			return true // the rest by Write, which waits for room
		}
		s.heldErr, s.held = e, nil
		return true
	}
	s.held = nil
	return s.r.once(fd)
}

// run makes d's call on p through the poller; ok is false, and nothing was done,
// when another goroutine's call is in flight.
func (s *sockIO) run(d *sockDir, p []byte) (n int, ok bool, err error) {
	if !d.busy.CompareAndSwap(false, true) {
		return 0, false, nil
	}
	d.p, d.n, d.errno = p, 0, 0
	if d.wd != nil {
		d.wd.waited = false
	}
	f := d.f
	if d.wd == nil && s.held != nil {
		f = s.heldF
	}
	for {
		if d.wd != nil {
			err = s.raw.Write(f)
		} else {
			err = s.raw.Read(f)
		}
		if err == nil || d.errno != 0 || !s.retry(d, err) {
			break
		}
	}
	n, errno := d.n, d.errno
	d.p = nil
	d.busy.Store(false)
	switch {
	case err != nil:
		err = asOp(d.op(), err)
	case errno != 0:
		err = s.opError(d.op(), errno)
	}
	return n, true, err
}

// Read reads like net.Conn.Read: io.EOF at the peer's end, a *net.OpError on failure.
// A held request (holdWrite) is written first; its failure is the Read's, as a write
// error.
func (s *sockIO) Read(p []byte) (int, error) {
	if s.held != nil {
		return s.readAfterHeld(p)
	}
	if len(p) == 0 {
		s.exact(&s.r)
		return s.conn.Read(p)
	}
	n, ok, err := s.run(&s.r, p)
	switch {
	case !ok:
		s.exact(&s.r)
		return s.conn.Read(p)
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readAfterHeld writes the held request and reads its answer, waiting for it first.
func (s *sockIO) readAfterHeld(p []byte) (int, error) {
	if len(p) == 0 || s.r.busy.Load() {
		// Not the transport's read: send the request as a plain write would.
		held := s.held
		s.held = nil
		if _, err := s.Write(held); err != nil {
			return 0, err
		}
		return s.Read(p)
	}
	n, ok, err := s.run(&s.r, p)
	if !s.heldMore {
		s.held = nil // sent, or never: the socket failed before (closed, deadline)
	}
	switch {
	case s.heldErr != 0:
		errno := s.heldErr
		s.heldErr = 0
		return 0, s.opError("write", errno)
	case s.heldMore:
		held := s.held
		s.held, s.heldMore = nil, false
		if _, err := s.Write(held); err != nil {
			return 0, err
		}
		return s.Read(p)
	case !ok:
		return s.Read(p)
	case err != nil:
		return 0, err
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p like net.Conn.Write.
func (s *sockIO) Write(p []byte) (int, error) {
	n, ok, err := s.run(&s.w, p)
	if !ok {
		s.exact(&s.w)
		return s.conn.Write(p)
	}
	return n, err
}

func (s *sockIO) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// asOp names a poller error (deadline, closed), which net reports as "raw-read" or
// "raw-write", by the operation, as net.Conn's Read and Write do.
func asOp(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		oe.Op = op
	}
	return err
}

// RawListener hands out its TCP connections with raw reads and writes (see sockIO):
// for the TLS listener, whose connections a LineListener cannot reach under the
// encryption.
type RawListener struct{ net.Listener }

// Accept implements net.Listener.
func (l RawListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return asRaw(c), nil
}

// RawUpstream wraps a freshly dialed TCP connection so that its reads and writes are
// raw (pipelined upstreams); anything else is returned as it is.
func RawUpstream(c net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	return asRaw(c), nil
}

// asRaw wraps c in a rawConn when it is a TCP socket; anything else (in-memory pipes
// in tests) is returned as it is.
func asRaw(c net.Conn) net.Conn {
	if s := newSockIO(c); s != nil {
		return &rawConn{Conn: c, sock: s}
	}
	return c
}

// rawConn is a TCP connection whose reads and writes are raw.
type rawConn struct {
	net.Conn
	sock *sockIO
}

func (c *rawConn) Read(p []byte) (int, error)  { return c.sock.Read(p) }
func (c *rawConn) Write(p []byte) (int, error) { return c.sock.Write(p) }

// Deadlines are the sockIO's (deadline.go): the socket's own are armed through it.
func (c *rawConn) SetDeadline(t time.Time) error      { return c.sock.SetDeadline(t) }
func (c *rawConn) SetReadDeadline(t time.Time) error  { return c.sock.SetReadDeadline(t) }
func (c *rawConn) SetWriteDeadline(t time.Time) error { return c.sock.SetWriteDeadline(t) }

// CloseWrite half-closes the connection (tunnels).
func (c *rawConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// SetKeepAlive and SetKeepAlivePeriod pass TCP keep-alive settings on.
func (c *rawConn) SetKeepAlive(on bool) error { return c.Conn.(*net.TCPConn).SetKeepAlive(on) }
func (c *rawConn) SetKeepAlivePeriod(d time.Duration) error {
	return c.Conn.(*net.TCPConn).SetKeepAlivePeriod(d)
}
