package breaker

import (
	"sync/atomic"
	"time"
)

// A hung region answers nothing: its requests neither succeed nor fail until each
// reaches its timeout, so a breaker that learns only from completed requests trips
// one timeout late, after every request of that time has waited in full. slowCalls
// counts the requests still in flight by when they started, so the breaker sees the
// hang while it happens: once at least SlowCallMin requests have been in flight for
// SlowCallThreshold or more, and they are at least SlowCallRatio of those plus the
// requests that completed meanwhile, the breaker opens (Resilience4j's slow-call rate,
// taken over calls in flight).

// slowSlots is the ring of start-time slots; a slot is SlowCallThreshold/slotsPerThreshold
// long, so the ring spans 64 thresholds (32 s for 500 ms). A call in flight longer
// than that shares its slot with newer ones and may stop counting as slow; by then
// every upstream timeout has long ended it.
const (
	slowSlots         = 256
	slotsPerThreshold = 4
)

// slowCalls is the in-flight view of one breaker. Its counters are atomics: a request
// adds one at its start and removes it at its end; the evaluation, at most once a
// slot, sums the slots old enough to be slow.
type slowCalls struct {
	slot      time.Duration
	epoch     time.Time
	inFlight  [slowSlots]atomic.Int64
	completed atomic.Int64 // requests ended, for the ratio
	lastEval  atomic.Int64 // the slot of the last evaluation
	lastDone  int64        // completed at the last evaluation; written under evalMu
	evalMu    atomic.Bool
}

func newSlowCalls(threshold time.Duration) *slowCalls {
	s := &slowCalls{slot: max(threshold/slotsPerThreshold, time.Millisecond), epoch: time.Now()}
	s.lastEval.Store(-1)
	return s
}

// at returns the slot number of t (absolute, not wrapped).
func (s *slowCalls) at(t time.Time) int64 { return int64(t.Sub(s.epoch) / s.slot) }

// start records a request starting now and returns its slot for end.
func (s *slowCalls) start(now time.Time) int64 {
	n := s.at(now)
	s.inFlight[n%slowSlots].Add(1)
	return n
}

// end records the end of a request that started in slot n.
func (s *slowCalls) end(n int64) {
	s.inFlight[n%slowSlots].Add(-1)
	s.completed.Add(1)
}

// evaluate reports, at most once per slot (false otherwise), whether the requests in
// flight for a threshold or longer are at least minSlow and at least ratio of them
// plus the requests that ended since the last evaluation.
func (s *slowCalls) evaluate(now time.Time, minSlow uint32, ratio float64) (trip bool, slow int64) {
	cur := s.at(now)
	last := s.lastEval.Load()
	if cur == last || !s.lastEval.CompareAndSwap(last, cur) {
		return false, 0
	}
	if !s.evalMu.CompareAndSwap(false, true) {
		return false, 0
	}
	defer s.evalMu.Store(false)
	// Slots that started a threshold or more ago, back to the ring's reach.
	for n := cur - slotsPerThreshold; n > cur-slowSlots && n >= 0; n-- {
		slow += s.inFlight[n%slowSlots].Load()
	}
	done := s.completed.Load()
	ended := done - s.lastDone
	s.lastDone = done
	if slow < int64(minSlow) || slow <= 0 {
		return false, slow
	}
	return float64(slow)/float64(slow+ended) >= ratio, slow
}
