package stats

import (
	"math"
	"runtime"
	"sync/atomic"
)

// slotCounts are one cohort's counts in one second.
type slotCounts struct {
	reqErr            atomic.Uint64 // requests in the low 32 bits, errors in the high
	bytesIn, bytesOut atomic.Uint64
}

// slot1 is one second of a route's history. epoch is the unix second it holds,
// unused before its first second, claimed while it is being cleared for a new second.
type slot1 struct {
	epoch atomic.Int64
	c     [numCohorts]slotCounts
	h     [Stayed + 1][coarseBucket]atomic.Uint32 // moved and stayed latencies
}

const (
	claimed = math.MinInt64
	unused  = math.MinInt64 + 1 // all counts still zero: taking it needs no clearing
	// maxYields bounds how long a request waits for another to finish clearing a slot
	// (a few hundred nanoseconds of stores) before leaving itself out of the ring.
	maxYields = 64
)

// ring1 is the 1 s history. Recording rotates it: the first request of a second finds
// its slot already cleared by a request of the second before, and clears the next one.
// After a quiet spell the first request clears its own slot, and requests arriving in
// that instant yield until it is done; only if the clearing request is descheduled for
// all of maxYields are they left out of the ring (never out of the cumulative counts).
// No locks.
type ring1 struct {
	keep  int64   // seconds kept: n complete ones and the current one
	slots []slot1 // keep + 1: one more for the next second, prepared ahead
}

func newRing1(n int) ring1 {
	g := ring1{keep: int64(n) + 1, slots: make([]slot1, n+2)}
	for i := range g.slots {
		g.slots[i].epoch.Store(unused)
	}
	return g
}

// yield lets the clearing request run; tests replace it to stand in for that request.
var yield = runtime.Gosched

func (g *ring1) at(sec int64) *slot1 { return &g.slots[sec%int64(len(g.slots))] }

// slot returns the slot of second sec ready for adding, or nil.
func (g *ring1) slot(sec int64) *slot1 {
	if sec < 0 {
		return nil
	}
	s := g.at(sec)
	// Fast path: the slot holds sec and the next second's slot is prepared.
	if s.epoch.Load() != sec && !s.take(sec, true) {
		return nil // a later second owns the slot: this request's clock read is stale
	}
	if n := g.at(sec + 1); n != s && n.epoch.Load() < sec+1 {
		n.take(sec+1, false)
	}
	return s
}

// take makes s hold second sec, clearing it if it held an earlier one; it reports
// whether s holds sec. If another request is clearing s, take waits for it when wait
// is set, and gives up otherwise.
func (s *slot1) take(sec int64, wait bool) bool {
	for yields := 0; ; yields++ {
		switch e := s.epoch.Load(); {
		case e == sec:
			return true
		case e > sec:
			return false
		case e == claimed:
			if !wait || yields >= maxYields {
				return false
			}
			yield()
		case e == unused:
			if s.epoch.CompareAndSwap(unused, sec) {
				return true
			}
		case s.epoch.CompareAndSwap(e, claimed):
			s.clear()
			s.epoch.Store(sec)
			return true
		}
	}
}

func (s *slot1) clear() {
	for i := range s.c {
		s.c[i].reqErr.Store(0)
		s.c[i].bytesIn.Store(0)
		s.c[i].bytesOut.Store(0)
	}
	for c := range s.h {
		for i := range s.h[c] {
			s.h[c][i].Store(0)
		}
	}
}

// read returns cohort c's counts in second sec, and adds its latencies to h (when h
// is not nil and the cohort keeps them). ok is false if the ring no longer (or not
// yet) holds sec.
func (g *ring1) read(sec int64, c Cohort, h *Histogram) (cnt Counts, ok bool) {
	if sec < 0 {
		return Counts{}, false
	}
	s := g.at(sec)
	if s.epoch.Load() != sec {
		return Counts{}, false
	}
	re := s.c[c].reqErr.Load()
	cnt = Counts{
		Requests: re & math.MaxUint32,
		Errors:   re >> 32,
		BytesIn:  s.c[c].bytesIn.Load(),
		BytesOut: s.c[c].bytesOut.Load(),
	}
	if h != nil && c.compared() && cnt.Requests != 0 {
		h.coarsen(coarseShift)
		for i := range s.h[c] {
			if n := s.h[c][i].Load(); n != 0 {
				h.addFine(i<<coarseShift, uint64(n))
			}
		}
	}
	// A slot cleared for a new second while it was read is not sec's.
	return cnt, s.epoch.Load() == sec
}

// slot10 is one 10-second block of the 24 h ring, written by rollUp under the route's
// roll lock. Bytes are float32 (24 bits of precision is plenty for a chart) to keep
// 24 h of blocks small; latencies keep only three quantiles, as coarse bucket numbers.
type slot10 struct {
	block int64 // unix second / 10; 0 when empty
	c     [numCohorts]struct {
		req, err uint32
		in, out  float32
	}
	q [Stayed + 1][3]uint8 // p50, p95, p99 coarse bucket + 1; 0 when no requests
}

var rolledQuantiles = [3]float64{0.50, 0.95, 0.99}

// rollUp copies every 10 s block that ended at least two seconds before sec, and is
// still in the 1 s ring, into the 10 s ring. The two seconds let late requests of the
// block's last second land first. Idempotent; control plane only.
func (r *Route) rollUp(sec int64) {
	last := (sec-2)/10 - 1           // the newest block wholly before sec-2
	first := (sec-r.sec.keep)/10 + 1 // the oldest block wholly in the 1 s ring
	rs := &r.roll
	rs.mu.Lock()
	defer rs.mu.Unlock()
	first = max(first, rs.done+1)
	for b := first; b <= last; b++ {
		r.rollBlock(b)
	}
	if last > rs.done {
		rs.done = last
	}
}

func (r *Route) rollBlock(b int64) {
	var out slot10
	out.block = b
	seen := false
	for _, c := range allCohorts {
		h := NewHistogram(coarseShift)
		hp := &h
		if !c.compared() {
			hp = nil
		}
		var t Counts
		for sec := b * 10; sec < b*10+10; sec++ {
			cnt, ok := r.sec.read(sec, c, hp)
			if ok {
				t.add(cnt)
			}
		}
		if t.Requests == 0 {
			continue
		}
		seen = true
		oc := &out.c[c]
		oc.req, oc.err = uint32(min(t.Requests, math.MaxUint32)), uint32(min(t.Errors, math.MaxUint32))
		oc.in, oc.out = float32(t.BytesIn), float32(t.BytesOut)
		if hp != nil {
			for qi, q := range rolledQuantiles {
				out.q[c][qi] = uint8(h.bucketAtRank(rankOf(q, h.Count())) + 1)
			}
		}
	}
	if !seen {
		return
	}
	rs := &r.roll
	if rs.ring == nil {
		rs.ring = make([]slot10, rs.slots)
	}
	rs.ring[b%int64(len(rs.ring))] = out
}

// block10 returns the rolled 10 s block b, if the ring holds it. Caller holds the lock.
func (rs *rollState) block10(b int64) (*slot10, bool) {
	if rs.ring == nil || b <= 0 {
		return nil, false
	}
	s := &rs.ring[b%int64(len(rs.ring))]
	return s, s.block == b
}

// coarseMidpoint returns the midpoint in ms of a coarse bucket number + 1 as rollBlock
// stores it, or NaN for 0.
func coarseMidpoint(q uint8) float64 {
	if q == 0 {
		return math.NaN()
	}
	h := Histogram{shift: coarseShift}
	lo, hi := h.bounds(int(q) - 1)
	return float64(lo+hi) / 2 / 1000
}
