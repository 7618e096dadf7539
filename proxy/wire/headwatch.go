package wire

import (
	"errors"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// HeadWatch is told when a request starts and stops waiting for its answer's head,
// and may cut that wait (a breaker that gave up on the region: see
// breaker.Waiter, which implements it).
type HeadWatch interface {
	// HeadLimit is the longest the head may take (0: the transport's own timeout).
	HeadLimit() time.Duration
	// HeadWait is called with the connection once the request is written and the
	// read deadline set; false means the wait is abandoned before it starts.
	HeadWait(conn net.Conn) bool
	// HeadDone is called when the head read ends; true means it was abandoned
	// meanwhile (the connection's read deadline may have been moved to the past).
	HeadDone() (abandoned bool)
}

// ErrAbandoned is returned for a request whose wait for its answer's head was cut
// by its HeadWatch, or ended at the watch's HeadLimit. Nothing from the answer, if
// one came, was used: like a timeout, the request may go elsewhere if it is safe to
// replay.
var ErrAbandoned = errors.New("upstream answer abandoned: the region's breaker gave up on it")

// The transport is called by fasthttp with the request alone, so a watch is found by
// the request's address in a fixed table, claimed by CAS: no allocation, no lock,
// and, while nothing is watched, one atomic load per request. A request whose
// probes find no free slot is simply not watched (it waits its full timeout).
const (
	watchBits   = 12
	watchSlots  = 1 << watchBits
	watchProbes = 16
)

type watchSlot struct {
	req atomic.Pointer[fasthttp.Request]
	// w is written by the goroutine that claimed the slot, and read only by the
	// goroutine forwarding req: the same one.
	w HeadWatch
}

var watches struct {
	active atomic.Int32
	slots  [watchSlots]watchSlot
}

func watchHash(req *fasthttp.Request) uint64 {
	return uint64(uintptr(unsafe.Pointer(req))) * 0x9E3779B97F4A7C15 >> (64 - watchBits)
}

// Watch has the upstream transport tell w about req's wait for its answer's head,
// until Unwatch is called with the slot it returns (-1: the table is full, req is
// not watched; Unwatch ignores it). Both run on the goroutine forwarding req, around
// the client call.
func Watch(req *fasthttp.Request, w HeadWatch) int {
	h := watchHash(req)
	for i := uint64(0); i < watchProbes; i++ {
		n := int((h + i) & (watchSlots - 1))
		s := &watches.slots[n]
		if s.req.Load() == nil && s.req.CompareAndSwap(nil, req) {
			s.w = w
			watches.active.Add(1)
			return n
		}
	}
	return -1
}

// Unwatch releases the slot Watch returned.
func Unwatch(slot int) {
	if slot < 0 {
		return
	}
	s := &watches.slots[slot]
	s.w = nil
	s.req.Store(nil)
	watches.active.Add(-1)
}

// watching returns req's watch, or nil.
func watching(req *fasthttp.Request) HeadWatch {
	if watches.active.Load() == 0 {
		return nil
	}
	h := watchHash(req)
	for i := uint64(0); i < watchProbes; i++ {
		s := &watches.slots[(h+i)&(watchSlots-1)]
		if s.req.Load() == req {
			return s.w
		}
	}
	return nil
}
