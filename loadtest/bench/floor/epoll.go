//go:build linux

package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// epollServer is the nginx model in Go: GOMAXPROCS event loops, each on its own
// locked OS thread with its own epoll instance and its own SO_REUSEPORT listening
// socket; nonblocking sockets registered once, edge-triggered, for reading and
// writing; no goroutine per connection. A read shorter than the buffer means the
// socket is drained (a later arrival raises a new edge), so a request costs one read
// and one write on each side, as in nginx. With raw, reads, writes and accepts go
// through syscall.RawSyscall, skipping the runtime's entersyscall/exitsyscall (safe:
// the sockets never block). How a loop waits for its next events is wait's choice.
type epollServer struct {
	address string
	loops   []*loop
	wg      sync.WaitGroup
}

// How an event loop waits for its next events (-wait). Measured side by side, they
// show what the Go runtime's handling of a waiting thread costs an event loop.
const (
	// waitSyscall blocks in epoll_wait through the runtime's system call path: the
	// runtime's monitor thread takes the processor away while the call blocks (it
	// outlasts 20 µs), stays awake at 20 µs ticks while a call is in flight, and the
	// loop's thread has to get a processor back when events come.
	waitSyscall = "syscall"
	// waitNetpoll waits in Go's netpoller: the loop's epoll descriptor is itself
	// registered with the runtime (an epoll set is readable when it has events), and
	// the loop collects its events with a nonblocking epoll_wait once woken: the path
	// every goroutine-per-connection Go server's wake-ups take.
	waitNetpoll = "netpoll"
	// waitHeld blocks in epoll_wait with syscall.RawSyscall6, keeping the processor
	// through the wait, as nginx's worker keeps its CPU: one system call per wake-up
	// and nothing for the runtime to do. The wait is bounded (heldWaitMS) so that the
	// rest of the process (signals, the garbage collector's stop) is not held up
	// longer than that when no event comes. Only for a process whose event loops are
	// all it runs.
	waitHeld = "held"
)

// heldWaitMS bounds one held wait.
const heldWaitMS = 10

func startEpoll(listen, backend string, raw bool, wait string) (*epollServer, error) {
	switch wait {
	case waitSyscall, waitNetpoll, waitHeld:
	default:
		return nil, fmt.Errorf("epoll: -wait is syscall, netpoll or held, got %q", wait)
	}
	la, err := netip.ParseAddrPort(listen)
	if err != nil || !la.Addr().Is4() {
		return nil, fmt.Errorf("epoll: -listen wants an IPv4 address and port, got %q", listen)
	}
	ba, err := netip.ParseAddrPort(backend)
	if err != nil || !ba.Addr().Is4() {
		return nil, fmt.Errorf("epoll: -backend wants an IPv4 address and port, got %q", backend)
	}
	s := &epollServer{}
	port := la.Port()
	for range runtime.GOMAXPROCS(0) {
		l, err := newLoop(la.Addr().As4(), port, ba, raw, wait)
		if err != nil {
			s.close()
			return nil, err
		}
		port = l.port // port 0: the others share the first one's
		s.loops = append(s.loops, l)
	}
	s.address = netip.AddrPortFrom(la.Addr(), port).String()
	for _, l := range s.loops {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if wait != waitNetpoll {
				// A loop that waits in a system call keeps its thread, as an nginx
				// worker does. One woken by the poller must not: a goroutine locked
				// to its thread is handed to that thread by whichever thread polled
				// (3-4 futex calls and 3-4 context switches per request at a fixed
				// load, measured with perf stat).
				runtime.LockOSThread()
			}
			l.run()
		}()
	}
	return s, nil
}

func (s *epollServer) addr() string { return s.address }

func (s *epollServer) close() {
	for _, l := range s.loops {
		unix.Write(l.wake[1], []byte{1})
	}
	s.wg.Wait()
}

// pair is a client connection and its upstream connection.
type pair struct {
	cfd, ufd int
	in       []byte // client bytes read, not yet forwarded: in[:inN]
	inN      int
	out      []byte // upstream bytes read, not yet written to the client: out[outOff:outN]
	outOff   int
	outN     int
	// reqLeft: bytes of the current request still to forward upstream (0: none in
	// flight, the next head is awaited); respLeft: bytes of its answer still to pass
	// back (-1: its head is not read yet); the pair handles one request at a time.
	reqLeft, respLeft int64
	waiting           bool // a request is forwarded and its answer not done
	headReq           bool
	// Readiness as the edges reported it, cleared when a call finds the socket
	// drained (short read, EAGAIN) or full (short write, EAGAIN).
	cr, cw, ur, uw bool
}

type loop struct {
	ep, lfd int
	port    uint16
	wake    [2]int
	backend unix.SockaddrInet4
	raw     bool
	wait    string
	// epf and eprc hold ep under waitNetpoll: registered with the runtime's poller,
	// which owns ep then (closed through epf).
	epf   *os.File
	eprc  syscall.RawConn
	pairs []*pair // by fd, for the client and the upstream side
	free  []*pair
}

func newLoop(ip [4]byte, port uint16, backend netip.AddrPort, raw bool, wait string) (_ *loop, err error) {
	l := &loop{ep: -1, lfd: -1, wake: [2]int{-1, -1}, raw: raw, wait: wait,
		backend: unix.SockaddrInet4{Port: int(backend.Port()), Addr: backend.Addr().As4()}}
	defer func() {
		if err != nil {
			l.closeAll()
		}
	}()
	if l.lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, err
	}
	unix.SetsockoptInt(l.lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err = unix.SetsockoptInt(l.lfd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return nil, err
	}
	if err = unix.Bind(l.lfd, &unix.SockaddrInet4{Port: int(port), Addr: ip}); err != nil {
		return nil, err
	}
	if err = unix.Listen(l.lfd, 4096); err != nil {
		return nil, err
	}
	sa, err := unix.Getsockname(l.lfd)
	if err != nil {
		return nil, err
	}
	l.port = uint16(sa.(*unix.SockaddrInet4).Port)
	if err = unix.Pipe2(l.wake[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil, err
	}
	if l.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, err
	}
	for _, fd := range []int{l.lfd, l.wake[0]} {
		if err = unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			return nil, err
		}
	}
	if wait == waitNetpoll {
		// Nonblocking, os.NewFile registers it with the runtime's poller.
		if err = unix.SetNonblock(l.ep, true); err != nil {
			return nil, err
		}
		l.epf = os.NewFile(uintptr(l.ep), "epoll")
		if l.eprc, err = l.epf.SyscallConn(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *loop) closeAll() {
	for _, p := range l.pairs {
		if p != nil && p.cfd >= 0 {
			l.closePair(p)
		}
	}
	if l.epf != nil {
		l.epf.Close()
		l.ep = -1
	}
	for _, fd := range []int{l.lfd, l.ep, l.wake[0], l.wake[1]} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

func (l *loop) run() {
	defer l.closeAll()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := l.next(events)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			switch fd {
			case l.lfd:
				l.accept()
				continue
			case l.wake[0]:
				return
			}
			p := l.pairs[fd]
			if p == nil || p.cfd < 0 {
				continue // closed earlier in this batch
			}
			in := ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0
			out := ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0
			if fd == p.cfd {
				p.cr, p.cw = p.cr || in, p.cw || out
			} else {
				p.ur, p.uw = p.ur || in, p.uw || out
			}
			if err := l.pump(p); err != nil {
				l.closePair(p)
			}
		}
	}
}

// next waits for events the way l.wait says and returns how many it put in events.
func (l *loop) next(events []unix.EpollEvent) (int, error) {
	switch l.wait {
	case waitHeld:
		return epollWaitRaw(l.ep, events, heldWaitMS)
	case waitNetpoll:
		var (
			n   int
			err error
		)
		// RawConn.Read clears the descriptor's readiness, then calls the function
		// until it reports done, waiting in the poller between calls; an event that
		// comes after a call found none marks the set readable again.
		rerr := l.eprc.Read(func(fd uintptr) bool {
			n, err = epollWaitRaw(int(fd), events, 0)
			return n > 0 || err != nil
		})
		if rerr != nil {
			return 0, rerr
		}
		return n, err
	}
	return unix.EpollWait(l.ep, events, -1)
}

// epollWaitRaw is epoll_wait through syscall.RawSyscall6: the calling goroutine keeps
// its processor for as long as the call takes.
func epollWaitRaw(ep int, events []unix.EpollEvent, msec int) (int, error) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(msec), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func (l *loop) accept() {
	for {
		cfd, err := l.accept4()
		if err != nil {
			return // EAGAIN, or a failed accept: wait for the next edge
		}
		ufd, err := l.dial()
		if err != nil {
			unix.Close(cfd)
			continue
		}
		var p *pair
		if k := len(l.free); k > 0 {
			p, l.free = l.free[k-1], l.free[:k-1]
		} else {
			p = &pair{in: make([]byte, bufSize), out: make([]byte, bufSize)}
		}
		*p = pair{cfd: cfd, ufd: ufd, in: p.in, out: p.out, respLeft: -1, cw: true, uw: true}
		for _, fd := range []int{cfd, ufd} {
			for fd >= len(l.pairs) {
				l.pairs = append(l.pairs, nil)
			}
			l.pairs[fd] = p
		}
		for _, fd := range []int{cfd, ufd} {
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
			if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
				l.closePair(p)
				break
			}
		}
	}
}

// dial connects to the backend. The connect is blocking (on loopback it completes
// within the call); the socket is made nonblocking after it.
func (l *loop) dial() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, &l.backend); err != nil {
		unix.Close(fd)
		return -1, err
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (l *loop) closePair(p *pair) {
	for _, fd := range []int{p.cfd, p.ufd} {
		l.pairs[fd] = nil
		unix.Close(fd) // closing removes it from the epoll set
	}
	p.cfd, p.ufd = -1, -1
	l.free = append(l.free, p)
}

var errClosed = errors.New("connection closed")

// pump moves every byte it can between the pair's sockets, as far as the readiness
// flags allow, and returns an error when the pair must be closed.
func (l *loop) pump(p *pair) error {
	for progress := true; progress; {
		progress = false
		// Answer bytes buffered past its head: write them to the client.
		if p.respLeft >= 0 && p.outN > p.outOff && p.cw {
			n, err := l.write(p.cfd, p.out[p.outOff:p.outN])
			if err != nil && err != unix.EAGAIN {
				return err
			}
			p.outOff += n
			if p.outOff < p.outN {
				p.cw = false // short write: the socket is full until its next edge
			}
			if n > 0 {
				progress = true
			}
			if p.outOff == p.outN {
				p.outOff, p.outN = 0, 0
				if p.respLeft == 0 {
					p.waiting, p.respLeft = false, -1 // the exchange is done
				}
			}
		}
		// Read the upstream: the answer's head (gathered until whole), then its body
		// whenever the buffer has been written out.
		if p.ur && (p.respLeft < 0 || (p.respLeft > 0 && p.outN == 0)) {
			want := len(p.out) - p.outN
			if p.respLeft > 0 {
				want = int(min(int64(want), p.respLeft))
			}
			if want == 0 {
				return errHeadTooBig
			}
			n, err := l.read(p.ufd, p.out[p.outN:p.outN+want])
			switch {
			case err == unix.EAGAIN:
				p.ur = false
			case err != nil:
				return err
			case n == 0:
				return errClosed
			case !p.waiting:
				return errFraming // bytes from the backend with no request out
			default:
				if n < want {
					p.ur = false // short read: drained until the next edge
				}
				p.outN += n
				progress = true
				if p.respLeft > 0 {
					p.respLeft -= int64(n)
					break
				}
				h := headEnd(p.out[:p.outN])
				if h < 0 {
					break // the rest of the head is still to come
				}
				total, err := responseLen(p.out[:h], p.headReq)
				if err != nil || int64(p.outN) > total {
					return errFraming // unframed, or more than one answer to one request
				}
				p.respLeft = total - int64(p.outN)
			}
		}
		// Request bytes buffered: forward the current request's to the upstream.
		if p.reqLeft > 0 && p.inN > 0 && p.uw {
			k := int(min(p.reqLeft, int64(p.inN)))
			n, err := l.write(p.ufd, p.in[:k])
			if err != nil && err != unix.EAGAIN {
				return err
			}
			if n < k {
				p.uw = false
			}
			if n > 0 {
				p.reqLeft -= int64(n)
				p.inN = copy(p.in, p.in[n:p.inN])
				progress = true
			}
		}
		// No request in flight: start the next one when its head is buffered.
		if !p.waiting && p.inN > 0 {
			if h := headEnd(p.in[:p.inN]); h >= 0 {
				total, err := requestLen(p.in[:h])
				if err != nil {
					l.write(p.cfd, badRequest)
					return err
				}
				p.reqLeft, p.waiting, p.headReq, p.respLeft = total, true, isHead(p.in[:h]), -1
				progress = true
				continue
			}
			if p.inN == len(p.in) {
				l.write(p.cfd, badRequest)
				return errHeadTooBig
			}
		}
		// Read the client when its bytes are wanted: a body in flight, or the next
		// head once the answer is done. Pipelined requests wait in the kernel.
		if p.cr && p.inN < len(p.in) && (p.reqLeft > 0 || !p.waiting) {
			want := len(p.in) - p.inN
			n, err := l.read(p.cfd, p.in[p.inN:])
			switch {
			case err == unix.EAGAIN:
				p.cr = false
			case err != nil:
				return err
			case n == 0:
				return errClosed
			default:
				if n < want {
					p.cr = false
				}
				p.inN += n
				progress = true
			}
		}
	}
	return nil
}

func (l *loop) read(fd int, b []byte) (int, error) {
	if !l.raw {
		n, err := unix.Read(fd, b)
		return max(n, 0), errnoOf(err)
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func (l *loop) write(fd int, b []byte) (int, error) {
	if !l.raw {
		n, err := unix.Write(fd, b)
		return max(n, 0), errnoOf(err)
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

func (l *loop) accept4() (int, error) {
	if !l.raw {
		fd, _, err := unix.Accept4(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err == nil {
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		}
		return fd, err
	}
	r, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(l.lfd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, e
	}
	fd := int(r)
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return fd, nil
}

// errnoOf returns err as a unix.Errno when it is one, so callers compare with ==.
func errnoOf(err error) error {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return err
}
