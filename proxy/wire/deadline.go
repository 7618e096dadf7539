package wire

import (
	"errors"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Deadlines of a raw socket (sockIO), armed in the poller only when they matter.
//
// Every request moves its connections' deadlines: fasthttp sets the client's idle, head
// and body read deadlines and its write deadline, the transport the upstream's write
// deadline and its wait for the answer's head. Each move of a net.Conn deadline is a
// timer update in the runtime's poller (a lock, a heap operation, a clock read): about
// 3 % of the proxy's CPU on a loopback bench, as much as its TLS record encryption. Yet
// a deadline matters only while a call waits, and a busy connection's calls rarely do:
// a request head is read in one go, an answer written in one go. nginx does the same
// sum: it keeps a connection's timer when the new value is near the old one.
//
// Reads: the deadline callers want is recorded; the poller's is moved only when the
// wanted one is earlier (a tighter timeout, or another goroutine cutting a read short,
// takes effect at once). A deadline that moves later leaves the poller's earlier one
// armed: when that fires, the read sees that the wanted deadline is still ahead, arms
// it exactly and waits on. A read thus times out when its callers' last deadline has
// passed, never earlier; a connection pays one timer update per firing of its earliest
// deadline instead of several per request.
//
// Writes: the write deadline is an idle timeout, as for idleWrites: a write must not
// wait more than that for the socket to take bytes. A write that has to wait arms
// now+idle before it does; one that does not wait arms nothing. A deadline armed by an
// earlier wait that fires later, between writes, is not the current write's: it is
// disarmed and the write goes on.

// noDeadline is the wanted or armed deadline of a socket that has none.
const noDeadline = math.MaxInt64

// unixNano is t as a deadline: noDeadline for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return noDeadline
	}
	return t.UnixNano()
}

// deadlineTime is the inverse of unixNano.
func deadlineTime(n int64) time.Time {
	if n == noDeadline {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// readDeadline is a socket's read deadline: the one callers want and the one the
// poller holds. Set may be called from any goroutine; early and arm by the reader.
type readDeadline struct {
	want  atomic.Int64 // Unix ns, or noDeadline
	armed atomic.Int64 // Unix ns, or noDeadline; written under mu
	mu    sync.Mutex
	c     interface{ SetReadDeadline(time.Time) error } // the socket
}

// Set records t and arms it at once when it is earlier than the armed one.
func (d *readDeadline) Set(t time.Time) error {
	w := unixNano(t)
	d.want.Store(w)
	if w >= d.armed.Load() {
		return nil // armed when the earlier one fires
	}
	return d.arm()
}

// arm gives the poller the wanted deadline. It reads the wanted one again after each
// arming, so that a deadline set meanwhile by another goroutine is not overwritten.
func (d *readDeadline) arm() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		w := d.want.Load()
		if w == d.armed.Load() {
			return nil
		}
		err := d.c.SetReadDeadline(deadlineTime(w))
		d.armed.Store(w)
		if err != nil {
			return err
		}
	}
}

// early reports, after a read timed out, whether the deadline that fired was an earlier
// one than the callers want (which is still ahead): then the read arms it and waits on.
func (d *readDeadline) early() bool {
	w := d.want.Load()
	if w == d.armed.Load() {
		return false
	}
	return w == noDeadline || w > time.Now().UnixNano()
}

// writeDeadline is a socket's write deadline, an idle timeout: how long one write may
// wait for the socket. Set may be called from any goroutine; the rest by the writer.
type writeDeadline struct {
	idle  atomic.Int64 // ns a write may wait; 0: no limit; cut: the deadline has passed
	armed atomic.Int64 // Unix ns, or noDeadline; written under mu
	mu    sync.Mutex
	c     interface{ SetWriteDeadline(time.Time) error } // the socket
	// waited is set when the current write armed its deadline before waiting: a
	// timeout then is the write's own.
	waited bool
}

// cut is the idle timeout of a write deadline that has already passed.
const cut = -1

// Set records the timeout from now to t. A deadline in the past cuts writes at once
// (a waiting one too).
func (d *writeDeadline) Set(t time.Time) error {
	if t.IsZero() {
		d.idle.Store(0)
		return nil // a deadline armed by a past wait is disarmed when it fires
	}
	idle := time.Until(t)
	if idle > 0 {
		d.idle.Store(int64(idle))
		return nil
	}
	d.idle.Store(cut)
	return d.arm(t.UnixNano(), true)
}

// arm gives the poller deadline n (Unix ns or noDeadline). Once writes are cut, only
// the cut itself arms: a writer that read the idle timeout just before does not undo it.
func (d *writeDeadline) arm(n int64, cutting bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !cutting && d.idle.Load() == cut {
		return nil
	}
	if n == d.armed.Load() {
		return nil
	}
	d.armed.Store(n)
	return d.c.SetWriteDeadline(deadlineTime(n))
}

// waiting is called when a write is about to wait for the socket: it arms now+idle.
func (d *writeDeadline) waiting() {
	d.armIdle()
	d.waited = true
}

// armIdle arms now+idle (nothing when writes have no timeout).
func (d *writeDeadline) armIdle() {
	switch idle := d.idle.Load(); idle {
	case cut:
	case 0:
		d.arm(noDeadline, false) //nolint:errcheck // a dead socket fails the wait
	default:
		d.arm(time.Now().UnixNano()+idle, false) //nolint:errcheck // as above
	}
}

// stale reports, after a write timed out, whether the deadline that fired was armed by
// an earlier write's wait, not the current one's: then it is disarmed and the write
// goes on.
func (d *writeDeadline) stale() bool {
	if d.waited || d.idle.Load() == cut {
		return false
	}
	d.arm(noDeadline, false) //nolint:errcheck // a dead socket fails the retry
	return true
}

// exact arms the deadline a plain net.Conn call must see (the raw path is busy with
// another goroutine's call): the wanted read deadline, now+idle for writes.
func (s *sockIO) exact(d *sockDir) {
	if d.wd != nil {
		d.wd.armIdle()
		return
	}
	s.rd.arm() //nolint:errcheck // a dead socket fails the call
}

// SetReadDeadline sets the read deadline (see readDeadline).
func (s *sockIO) SetReadDeadline(t time.Time) error { return s.rd.Set(t) }

// SetWriteDeadline sets the write deadline (see writeDeadline).
func (s *sockIO) SetWriteDeadline(t time.Time) error { return s.wd.Set(t) }

// SetDeadline sets both.
func (s *sockIO) SetDeadline(t time.Time) error {
	if err := s.wd.Set(t); err != nil {
		return err
	}
	return s.rd.Set(t)
}

// retry reports whether a call of d that failed with err should wait on: a timeout of a
// deadline that was not the callers' (see readDeadline and writeDeadline).
func (s *sockIO) retry(d *sockDir, err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	if d.wd != nil {
		return d.wd.stale()
	}
	if !s.rd.early() {
		return false
	}
	s.rd.arm() //nolint:errcheck // a dead socket fails the retry
	return true
}
