package breaker

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Abandoning reads. An open breaker stops new requests from going to a hung region,
// but the requests already waiting on it when it opens keep waiting, each until its
// own timeout: with a response-header timeout of seconds and a trip in half a
// second, those are the users who wait longest. With [Settings.AbandonReads], the
// requests that may be sent elsewhere (the caller decides which: reads the route may
// fail over, never a request whose loss or replay would matter) register while they
// wait for the head of their answer. When the breaker opens, every registered request
// is cut at once: one blocked on its connection has the read deadline moved into the
// past, one not yet reading gives up when it gets there. The caller then treats the
// request as timed out and sends it to the other region.
//
// A half-open probe is registered with a limit, the slow-call threshold: a probe to a
// region that still hangs fails after that long instead of the full timeout, and
// the breaker opens again.
//
// Registration costs one short critical section and no allocation: nodes come from
// a free list the breaker keeps (as many as requests ever waited at once).

// The states of a Waiter. Only the transitions armed -> head -> answered (by the
// request) and armed/head -> abandoned (by the breaker) happen, each by CAS, so a
// request either got its head before the cut or is cut, never both.
const (
	waitArmed     uint32 = iota // registered; not yet reading the answer
	waitHead                    // reading the answer's head on conn
	waitAnswered                // the head read ended (with or without a head) uncut
	waitAbandoned               // cut by the breaker
)

// Waiter is one request registered with [Breaker.Wait]. Its methods are called by
// the goroutine forwarding the request, in this order: HeadLimit and HeadWait before
// reading the answer's head, HeadDone after, then [Breaker.Done].
type Waiter struct {
	state      atomic.Uint32
	conn       net.Conn      // written before state becomes waitHead
	limit      time.Duration // a half-open probe's longest wait; 0 for none
	prev, next *Waiter
}

// HeadLimit is how long the request may wait for the answer's head at most (0: its
// own timeout): the slow-call threshold for a half-open probe.
func (w *Waiter) HeadLimit() time.Duration { return w.limit }

// HeadWait says the request is about to read its answer's head from conn, whose read
// deadline is set. It returns false if the request was abandoned already: it must
// not wait.
func (w *Waiter) HeadWait(conn net.Conn) bool {
	w.conn = conn
	return w.state.CompareAndSwap(waitArmed, waitHead)
}

// HeadDone says the head read ended. It returns true if the request was abandoned
// meanwhile: whatever the read returned, the request gives up on this region (its
// connection has a deadline in the past and must be closed).
func (w *Waiter) HeadDone() (abandoned bool) {
	return !w.state.CompareAndSwap(waitHead, waitAnswered)
}

// waiters is the list of a breaker's registered requests, with its free nodes.
type waiters struct {
	mu    sync.Mutex
	head  *Waiter // registered, doubly linked
	free  *Waiter // spare nodes, linked by next
	nodes int     // nodes ever made
	cut   atomic.Uint64
}

// longAgo is a read deadline in the past: it wakes a blocked read at once.
var longAgo = time.Unix(1, 0)

func (ws *waiters) add() *Waiter {
	ws.mu.Lock()
	w := ws.free
	if w != nil {
		ws.free = w.next
	} else {
		w = new(Waiter)
		ws.nodes++
	}
	w.prev, w.next = nil, ws.head
	if ws.head != nil {
		ws.head.prev = w
	}
	ws.head = w
	ws.mu.Unlock()
	return w
}

func (ws *waiters) remove(w *Waiter) {
	ws.mu.Lock()
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		ws.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	}
	w.conn, w.limit, w.prev = nil, 0, nil
	w.state.Store(waitArmed)
	w.next = ws.free
	ws.free = w
	ws.mu.Unlock()
}

// abandonAll cuts every registered request and returns how many it cut.
func (ws *waiters) abandonAll() (n int) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := ws.head; w != nil; w = w.next {
		if w.state.CompareAndSwap(waitArmed, waitAbandoned) {
			n++
			continue
		}
		if w.state.CompareAndSwap(waitHead, waitAbandoned) {
			// The request holds its node (and so conn) until Done, which needs
			// ws.mu: conn is not reused while this runs. An error means the
			// connection is closed already: nothing to wake.
			w.conn.SetReadDeadline(longAgo) //nolint:errcheck // see above
			n++
		}
	}
	ws.cut.Add(uint64(n))
	return n
}

// Wait registers a request that may give up on this region when the breaker opens,
// and returns its Waiter; nil (at the cost of one pointer check) when the breaker
// does not abandon reads. Call it once the breaker has let the request through
// (inside the function given to [Breaker.Do]), and [Breaker.Done] when the request
// is done with the region.
func (b *Breaker) Wait() *Waiter {
	ws := b.waits
	if ws == nil {
		return nil
	}
	w := ws.add()
	switch b.State() {
	case HalfOpen:
		w.limit = b.settings.SlowCallThreshold
	case Open:
		// The breaker opened between letting the request through and its
		// registration, so the cut missed it.
		if w.state.CompareAndSwap(waitArmed, waitAbandoned) {
			ws.cut.Add(1)
		}
	}
	return w
}

// Done unregisters w, which must not be used afterwards, and reports whether it was
// abandoned.
func (b *Breaker) Done(w *Waiter) (abandoned bool) {
	abandoned = w.state.Load() == waitAbandoned
	b.waits.remove(w)
	return abandoned
}

// Abandoned returns how many registered requests the breaker cut when it opened.
func (b *Breaker) Abandoned() uint64 {
	if b.waits == nil {
		return 0
	}
	return b.waits.cut.Load()
}

// WaitNodes returns how many Waiter nodes the breaker has made: the most requests
// that were registered at once.
func (b *Breaker) WaitNodes() int {
	if b.waits == nil {
		return 0
	}
	b.waits.mu.Lock()
	defer b.waits.mu.Unlock()
	return b.waits.nodes
}
