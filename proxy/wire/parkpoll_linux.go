package wire

import (
	"syscall"
	"time"
)

// On Linux a parked connection has no goroutine at all: one epoll instance per
// Parking watches every parked socket, and one goroutine waits on it for all of them.
// A goroutine waiting in a read costs at least its 2 KiB stack and its g per idle
// client; here a parked client costs a map entry and its idle timer. The socket is
// also in Go's own poller, which sees the same readiness and, with no goroutine
// waiting, does nothing with it.
//
// When a parked socket turns readable (the next request, or the client's close) it
// leaves the epoll set and a goroutine is started for it (wait), which reads the
// first byte and hands the connection back to fasthttp as before. When its idle
// deadline comes first, its timer closes it.

// parkPoll is a Parking's epoll instance and what it watches; all under Parking.mu.
// Its descriptors belong to pollLoop, which closes them when it ends; once stopped is
// set nothing else touches them (a closed descriptor's number is soon another file's).
type parkPoll struct {
	epfd    int
	wake    [2]int // a pipe: Close writes to it to end the waiting goroutine
	byFD    map[int32]parkedConn
	seq     uint32
	failed  bool // the instance could not be made: connections wait in goroutines
	stopped bool // Close, or the loop failed: connections wait in goroutines
}

// parkedConn is a parked socket in the epoll set. seq tells it apart from a later
// connection that reuses its descriptor number.
type parkedConn struct {
	c     *lineConn
	seq   uint32
	timer *time.Timer // closes it at its idle deadline; nil without one
}

// watch puts parked connection c into the epoll set; false when c waits in a goroutine
// instead (no socket, or no epoll). Called under p.mu.
func (p *Parking) watch(c *lineConn) bool {
	if c.sock == nil || c.sock.raw == nil {
		return false
	}
	pp := p.pollLocked()
	if pp == nil {
		return false
	}
	pp.seq++
	seq := pp.seq
	var fd int32 = -1
	var err error
	if cerr := c.sock.raw.Control(func(s uintptr) {
		fd = int32(s)
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: fd, Pad: int32(seq)}
		err = syscall.EpollCtl(pp.epfd, syscall.EPOLL_CTL_ADD, int(s), &ev)
	}); cerr != nil || err != nil {
		return false
	}
	e := parkedConn{c: c, seq: seq}
	if !c.idleDeadline.IsZero() {
		e.timer = time.AfterFunc(time.Until(c.idleDeadline), func() { p.expire(fd, seq) })
	}
	pp.byFD[fd] = e
	return true
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
	pp := &parkPoll{epfd: epfd, byFD: map[int32]parkedConn{}}
	if err := syscall.Pipe2(pp.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(pp.wake[0])}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, pp.wake[0], &ev); err != nil {
		pp.closeFDs()
		return nil
	}
	p.poll = pp
	go p.pollLoop(pp)
	return pp
}

func (pp *parkPoll) closeFDs() {
	syscall.Close(pp.wake[0])
	syscall.Close(pp.wake[1])
	syscall.Close(pp.epfd)
}

// pollLoop waits for parked sockets to turn readable and starts a goroutine for each,
// until Close.
func (p *Parking) pollLoop(pp *parkPoll) {
	defer pp.closeFDs()
	var events [128]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(pp.epfd, events[:], -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			// Not expected. The parked connections wait in goroutines from now on.
			p.mu.Lock()
			pp.stopped = true
			for fd, e := range pp.byFD {
				pp.forgetLocked(fd, e)
				go p.wait(e.c)
			}
			p.mu.Unlock()
			return
		}
		stop := false
		p.mu.Lock()
		for _, ev := range events[:n] {
			if ev.Fd == int32(pp.wake[0]) {
				stop = true
				continue
			}
			e, ok := pp.byFD[ev.Fd]
			if !ok || e.seq != uint32(ev.Pad) {
				continue // expired or closed meanwhile
			}
			pp.forgetLocked(ev.Fd, e)
			go p.wait(e.c)
		}
		p.mu.Unlock()
		if stop {
			return
		}
	}
}

// forgetLocked takes a parked socket out of the epoll set.
func (pp *parkPoll) forgetLocked(fd int32, e parkedConn) {
	delete(pp.byFD, fd)
	if e.timer != nil {
		e.timer.Stop()
	}
	syscall.EpollCtl(pp.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) //nolint:errcheck // closing it removes it anyway
}

// expire closes a parked connection at its idle deadline, unless it woke first.
func (p *Parking) expire(fd int32, seq uint32) {
	p.mu.Lock()
	pp := p.poll
	e, ok := pp.byFD[fd]
	if !ok || e.seq != seq {
		p.mu.Unlock()
		return
	}
	pp.forgetLocked(fd, e)
	delete(p.conns, e.c)
	p.n.Store(int64(len(p.conns)))
	p.mu.Unlock()
	e.c.closeNow()
}

// unwatchAllLocked empties the epoll set and ends its goroutine (Close); the
// connections are closed by the caller.
func (p *Parking) unwatchAllLocked() {
	pp := p.poll
	if pp == nil || pp.failed || pp.stopped {
		return // a second Close must not write to descriptors the loop has closed
	}
	for fd, e := range pp.byFD {
		pp.forgetLocked(fd, e)
	}
	pp.stopped = true
	syscall.Write(pp.wake[1], []byte{1}) //nolint:errcheck // the pipe is empty and nonblocking
}
