package wire

import (
	"container/heap"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux a parked connection has no goroutine: one epoll instance per Parking
// watches every parked socket, and one goroutine waits on it for all of them, wakes
// those whose next request comes and closes those whose idle deadline passes.
//
// A parked connection goes through two stages. First it stays a net.Conn (in Go's
// poller too, which sees the same readiness and, with no goroutine waiting, does
// nothing with it): it holds its lineConn, raw I/O state, net's netFD with two
// addresses and its poller entry, about 1.2 KiB (a goroutine waiting in a read held
// 2 KiB of stack more), and a park and wake-up cost 6 µs of CPU more than a read
// waiting in Go's poller (BenchmarkParkWake: 15–17 µs against 9.5–10.5, the client's
// write in both). After Parking.Detach in that stage it is detached: the descriptor
// is duplicated and the net.Conn closed, which takes the socket out of Go's poller,
// so that what is left is a map entry and a place in the deadline heap (164–305
// bytes of heap per parked connection in TestParkedIdleMemory, map growth included;
// nginx holds 0.7 KiB of RSS per idle client). Waking a detached socket
// makes a new net.Conn of it (net.FileConn, about fifteen system calls): 21 µs more
// than the read in Go's poller, paid by a client that has been idle for park_idle +
// Detach, or that parked while its listener was crowded (Parking.Crowd).
//
// When a parked socket turns readable (the next request, or the client's close) it
// leaves the epoll set and a goroutine is started for it, which reads the first byte
// and hands the connection back to fasthttp.

// parkPoll is a Parking's epoll instance and what it watches; all under Parking.mu.
//
// The epoll instance waits in Go's own poller (an epoll set is readable while it has
// events), so the loop goroutine waits like any network read: it holds no thread in a
// blocking epoll_wait, which cost every wake-up a hand-off of the thread's processor
// and back (two futex calls and the runtime monitor's wake-ups: 32 µs of CPU per park
// and wake-up where a read waiting in Go's poller costs 11, BenchmarkParkWake). The
// earliest deadline of the parked sockets is the file's read deadline. ep belongs to
// the loop, which closes it when it ends; Close stops the loop through that deadline.
// A detached socket's descriptor belongs to whoever takes it out of socks.
type parkPoll struct {
	ep    *os.File
	epfd  int // ep's descriptor, for epoll_ctl: used under Parking.mu before stopped only
	socks map[int32]parkedSock
	due   dueHeap
	// waitsFor is the deadline the loop's current wait ends at (0: none), so that a
	// socket parked with an earlier one wakes it.
	waitsFor int64
	detached int // sockets in socks without a net.Conn
	seq      uint32
	failed   bool // the instance could not be made: connections wait in goroutines
	stopped  bool // Close, or the loop failed: connections wait in goroutines
}

// parkedSock is a parked socket in the epoll set, keyed by its descriptor. seq tells
// it apart from a later socket that reuses the descriptor number.
type parkedSock struct {
	c    *lineConn // the connection, until it is detached
	seq  uint32
	idle int64         // the idle deadline, Unix ns; 0: none
	live *atomic.Int64 // the listener's count of open connections
}

// dueSock is a deadline of a parked socket in the heap: its idle deadline, or when it
// is to be detached. Stale once the socket woke or was detached (seq).
type dueSock struct {
	at     int64
	fd     int32
	seq    uint32
	detach bool
}

// dueHeap orders the deadlines, earliest first (container/heap).
type dueHeap []dueSock

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueSock)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// watchLocked puts parked connection c into the epoll set; false when c is to wait in
// a goroutine instead (no raw socket, or no epoll). Called under p.mu.
func (p *Parking) watchLocked(c *lineConn) bool {
	// A TLS connection is watched on the socket under the encryption and is never
	// detached: its session state lives in the net.Conn.
	sock, detachable := c.sock, true
	if sock == nil {
		sock, detachable = c.below, false
	}
	if sock == nil || sock.raw == nil {
		return false
	}
	pp := p.pollLocked()
	if pp == nil {
		return false
	}
	s := parkedSock{c: c, live: c.live}
	if !c.idleDeadline.IsZero() {
		s.idle = c.idleDeadline.UnixNano()
	}
	// Crowded (more than Crowd connections of c's listener hold a net.Conn): detach
	// at once. Each socket that is in Go's poller at the same moment leaves the
	// runtime half a kilobyte it never gives back (its poll descriptor).
	if detachable && p.Crowd > 0 && c.live != nil && c.live.Load()-int64(pp.detached) > int64(p.Crowd) {
		return p.detachLocked(-1, s)
	}
	fd := -1
	var err error
	seq := pp.seq + 1
	if cerr := sock.raw.Control(func(f uintptr) {
		fd = int(f)
		err = pp.add(fd, seq)
	}); cerr != nil || err != nil {
		return false
	}
	pp.seq = seq
	s.seq = seq
	pp.socks[int32(fd)] = s
	if detachable && p.Detach > 0 {
		if at := time.Now().Add(p.Detach).UnixNano(); s.idle == 0 || at < s.idle {
			pp.schedule(dueSock{at: at, fd: int32(fd), seq: seq, detach: true})
			return true
		}
	}
	if s.idle != 0 {
		pp.schedule(dueSock{at: s.idle, fd: int32(fd), seq: seq})
	}
	return true
}

// add puts descriptor fd into the epoll set, for one readiness event.
func (pp *parkPoll) add(fd int, seq uint32) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(fd), Pad: int32(seq)}
	return syscall.EpollCtl(pp.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

// schedule adds a deadline, and moves the loop's wait to end then when it comes
// first. Called under Parking.mu, before stopped.
func (pp *parkPoll) schedule(d dueSock) {
	heap.Push(&pp.due, d)
	if pp.waitsFor == 0 || d.at < pp.waitsFor {
		pp.waitsFor = d.at
		pp.ep.SetReadDeadline(time.Unix(0, d.at)) //nolint:errcheck // ep is open before stopped
	}
}

// detachLocked detaches parked connection s.c: its descriptor is duplicated into the
// epoll set and the net.Conn closed. fd is where s waits in the epoll set now, or -1
// when it is not in it yet (a connection that parks crowded). It reports whether s.c
// is parked, detached or not (a connection already in the set stays there as it is
// when its descriptor cannot be duplicated). Called under p.mu.
func (p *Parking) detachLocked(fd int32, s parkedSock) bool {
	pp := p.poll
	dup := -1
	var err error
	if cerr := s.c.sock.raw.Control(func(f uintptr) { dup, err = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil || err != nil {
		if fd >= 0 && s.idle != 0 {
			pp.schedule(dueSock{at: s.idle, fd: fd, seq: s.seq})
		}
		return fd >= 0
	}
	c := s.c
	if fd >= 0 {
		pp.forgetLocked(fd)
	}
	pp.seq++
	s.c, s.seq = nil, pp.seq
	if err := pp.add(dup, s.seq); err != nil {
		syscall.Close(dup)
		if fd < 0 {
			return false // c waits in a goroutine
		}
		c.closeNow()
		return true
	}
	pp.socks[int32(dup)] = s
	pp.detached++
	if s.idle != 0 {
		pp.schedule(dueSock{at: s.idle, fd: int32(dup), seq: s.seq})
	}
	// c is done: its socket lives on as dup, counted open in s.live until it closes.
	c.park.Store(closed)
	c.Conn.Close()
	return true
}

// watchedLocked counts the sockets in the epoll set, and those of them detached.
func (p *Parking) watchedLocked() (all, detached int) {
	if p.poll == nil {
		return 0, 0
	}
	return len(p.poll.socks), p.poll.detached
}

// pollLocked returns p's epoll instance, made and its goroutine started on first use;
// nil if it cannot be made.
func (p *Parking) pollLocked() *parkPoll {
	if p.poll != nil {
		if p.poll.failed || p.poll.stopped {
			return nil
		}
		return p.poll
	}
	p.poll = &parkPoll{failed: true}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	// Nonblocking, so that os.NewFile puts it into Go's poller.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil
	}
	ep := os.NewFile(uintptr(epfd), "parked-sockets")
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		return nil
	}
	p.poll = &parkPoll{ep: ep, epfd: epfd, socks: map[int32]parkedSock{}}
	go p.pollLoop(p.poll, rc)
	return p.poll
}

// pollLoop waits for parked sockets to turn readable, starting a goroutine for each,
// and closes or detaches those whose deadline passed, until Close.
func (p *Parking) pollLoop(pp *parkPoll, rc syscall.RawConn) {
	defer pp.ep.Close()
	var events [128]syscall.EpollEvent
	for {
		n := 0
		var werr error
		// Read tries first and waits in Go's poller only when there is nothing yet.
		err := rc.Read(func(fd uintptr) bool {
			for {
				n, werr = syscall.EpollWait(int(fd), events[:], 0)
				if werr != syscall.EINTR {
					return n > 0 || werr != nil
				}
			}
		})
		if err == nil {
			err = werr
		}
		p.mu.Lock()
		if pp.stopped {
			p.mu.Unlock()
			return
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// Not expected. Close the parked sockets (their clients reconnect, as
			// after an idle timeout) and let later ones wait in goroutines.
			pp.stopped = true
			p.closeWatchedLocked()
			p.countLocked()
			p.mu.Unlock()
			return
		}
		for _, ev := range events[:n] {
			s, ok := pp.socks[ev.Fd]
			if !ok || s.seq != uint32(ev.Pad) {
				continue // expired, detached or closed meanwhile
			}
			pp.forgetLocked(ev.Fd)
			if s.c != nil {
				go p.waitParked(s.c)
			} else {
				go p.revive(int(ev.Fd), s)
			}
		}
		now := time.Now().UnixNano()
		for len(pp.due) > 0 && pp.due[0].at <= now {
			d := heap.Pop(&pp.due).(dueSock)
			s, ok := pp.socks[d.fd]
			switch {
			case !ok || s.seq != d.seq:
			case d.detach:
				p.detachLocked(d.fd, s)
			default:
				pp.forgetLocked(d.fd)
				closeParked(d.fd, s)
			}
		}
		p.countLocked()
		// The next wait ends at the earliest deadline left (set under the lock, so
		// that schedule's earlier one is not overwritten).
		pp.waitsFor = 0
		var until time.Time
		if len(pp.due) > 0 {
			pp.waitsFor = pp.due[0].at
			until = time.Unix(0, pp.waitsFor)
		}
		pp.ep.SetReadDeadline(until) //nolint:errcheck // the loop's own file, open
		p.mu.Unlock()
	}
}

// forgetLocked takes a parked socket out of the epoll set; its descriptor is then the
// caller's.
func (pp *parkPoll) forgetLocked(fd int32) {
	if pp.socks[fd].c == nil {
		pp.detached--
	}
	delete(pp.socks, fd)
	syscall.EpollCtl(pp.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) //nolint:errcheck // closing it removes it anyway
}

// closeParked closes a parked socket for good.
func closeParked(fd int32, s parkedSock) {
	if s.c != nil {
		s.c.endParked()
		return
	}
	syscall.Close(int(fd))
	if s.live != nil {
		s.live.Add(-1)
	}
}

// closeWatchedLocked closes every socket in the epoll set.
func (p *Parking) closeWatchedLocked() {
	pp := p.poll
	if pp == nil {
		return
	}
	for fd, s := range pp.socks {
		pp.forgetLocked(fd)
		closeParked(fd, s)
	}
	pp.due = nil
}

// waitParked serves the next request of a parked connection that turned readable.
func (p *Parking) waitParked(c *lineConn) {
	first, ok := c.firstByte()
	p.serveWoken(c, first, ok)
}

// revive serves the next request of a detached socket that turned readable: it reads
// the first byte (or the client's close) and hands a new connection over the socket
// to fasthttp.
func (p *Parking) revive(fd int, s parkedSock) {
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f) // a duplicate of fd, in Go's poller
	f.Close()
	if err != nil {
		if s.live != nil {
			s.live.Add(-1)
		}
		return
	}
	c := &lineConn{Conn: nc, sock: newSockIO(nc), parking: p, live: s.live}
	c.park.Store(parked)
	if s.idle != 0 {
		c.idleDeadline = time.Unix(0, s.idle)
	}
	first, ok := c.firstByte()
	p.serveWoken(c, first, ok)
}

// unwatchAllLocked closes the parked sockets and ends the loop (Close).
func (p *Parking) unwatchAllLocked() {
	pp := p.poll
	if pp == nil || pp.failed || pp.stopped {
		return // the loop has ended, or is ending, and closes ep
	}
	p.closeWatchedLocked()
	pp.stopped = true
	pp.ep.SetReadDeadline(time.Unix(1, 0)) //nolint:errcheck // ep is open until the loop sees stopped
}
