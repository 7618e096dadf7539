package shed

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// The shape of the token buckets.
const (
	// CapBurst is how many seconds of its rate a request cap's bucket holds: a short
	// burst keeps the fleet's sum of bursts small and the rate over any second close
	// to the cap.
	CapBurst = 0.1
	// MinCapBurst is the least burst of a request cap, so that the priority floors
	// (LowFloor, NormalFloor) still fall between whole tokens on small caps.
	MinCapBurst = 10
	// BudgetBurst is how many seconds of its rate a byte budget's bucket holds.
	BudgetBurst = 1.0

	// RampStep is how often the rate in force follows a ramp: the climb is linear in
	// steps of RampStep.
	RampStep = 50 * time.Millisecond
	// LiftCeiling is the least multiple of its last rate that a cap lifted with a
	// ramp climbs to before it turns off (see plan).
	LiftCeiling = 2.0
)

// plan is where a bucket's rate goes: from a rate to a rate over [start, end). Rates
// are fleet-wide (before the share); times are Unix nanoseconds. A plan is immutable
// once published.
//
// A lift plan ends with the cap off. It climbs to a ceiling first so that a lifted cap
// does not let the whole backlog in at once: the ceiling is the higher of LiftCeiling ×
// the rate in force and that rate plus the peak refused per second while it was in
// force (an estimate of the offered load the cap held back). Byte budgets count no
// refusals per bucket: theirs is LiftCeiling × the rate.
type plan struct {
	from, to   float64
	start, end int64
	lift       bool
}

// at returns the rate of the plan at t, and whether the cap is off (a finished lift).
func (p *plan) at(t int64) (r float64, off bool) {
	switch {
	case t >= p.end:
		return p.to, p.lift
	case t <= p.start:
		return p.from, false
	}
	f := float64(t-p.start) / float64(p.end-p.start)
	return p.from + (p.to-p.from)*f, false
}

// target is the rate the plan was made for: what a config that does not change it
// asks for. A lift is made for "off", zero.
func (p *plan) target() float64 {
	if p.lift {
		return 0
	}
	return p.to
}

// bucket is one token bucket (of requests or bytes) with the ramp and the share that set
// its rate. It lives in a Registry and is shared by the gates built from it, so a reload
// that keeps the cap keeps the tokens.
//
// Every use of the limiter goes through mu, for two reasons. The limiter takes the time
// from its caller and moves its notion of "last update" back when handed a time older
// than the last one, which credits the same interval twice: under lock contention a
// caller's time.Now is routinely older than its predecessor's (8 goroutines on 2 cores
// at 100k/s were measured admitting 1.2 times the rate). Under mu, a time older than the latest seen is
// replaced by it. And the priority floor's look-then-take happens as one step. The
// limiter's own lock is then never contended.
type bucket struct {
	lim      *rate.Limiter
	share    *atomicFloat // the registry's share for this kind of bucket
	window   float64      // seconds of rate in the burst
	minBurst int

	plan  atomic.Pointer[plan]
	next  atomic.Int64 // Unix ns when the rate must follow the plan again; MaxInt64 when steady
	off   atomic.Bool  // a finished lift: everything passes
	rate  atomicFloat  // the rate in force on this instance
	burst atomic.Int64 // the limiter's burst

	mu   sync.Mutex
	seen time.Time // the latest time the limiter was given; guarded by mu

	// Refusals per whole second, for the ceiling of a lift.
	refSec, refCount, refPeak atomic.Int64
}

func newBucket(share *atomicFloat, window float64, minBurst int, p *plan, now time.Time) *bucket {
	b := &bucket{share: share, window: window, minBurst: minBurst}
	b.plan.Store(p)
	r, burst := b.shape(p, now.UnixNano())
	// A new bucket starts full, like a cap that has not been reached.
	b.lim = rate.NewLimiter(rate.Limit(r), burst)
	b.apply(now)
	return b
}

// shape is the rate in force and the burst at t under p and the current share.
func (b *bucket) shape(p *plan, t int64) (float64, int) {
	base, _ := p.at(t)
	r := base * b.share.Load()
	burst := math.Ceil(r * b.window)
	if burst < float64(b.minBurst) || math.IsNaN(burst) {
		burst = float64(b.minBurst)
	}
	if burst > math.MaxInt32 {
		burst = math.MaxInt32
	}
	return r, int(burst)
}

// apply sets the limiter to the plan and share in force at now. Tokens carry over: a
// changed rate neither refills nor drains the bucket.
func (b *bucket) apply(now time.Time) {
	now = b.lock(now)
	defer b.mu.Unlock()
	t := now.UnixNano()
	p := b.plan.Load()
	if _, off := p.at(t); off {
		b.off.Store(true)
		b.next.Store(math.MaxInt64)
		return
	}
	r, burst := b.shape(p, t)
	b.lim.SetLimitAt(now, rate.Limit(r))
	b.lim.SetBurstAt(now, burst)
	b.rate.Store(r)
	b.burst.Store(int64(burst))
	b.off.Store(false)
	next := int64(math.MaxInt64)
	if t < p.end {
		next = min(t+int64(RampStep), p.end)
	}
	b.next.Store(next)
}

// lock takes mu and returns the time to give the limiter: now, or the latest time it
// was given if now is older.
func (b *bucket) lock(now time.Time) time.Time {
	b.mu.Lock()
	if now.Before(b.seen) {
		return b.seen
	}
	b.seen = now
	return now
}

// replan publishes p and applies it.
func (b *bucket) replan(p *plan, now time.Time) {
	b.plan.Store(p)
	b.apply(now)
}

// refresh follows a ramp: the first request that finds a step due applies it.
func (b *bucket) refresh(now time.Time, t int64) {
	n := b.next.Load()
	if t < n {
		return
	}
	if b.next.CompareAndSwap(n, math.MaxInt64) {
		b.apply(now)
	}
}

// take takes one token if at least floor × burst tokens would be left, and otherwise
// says how long until there would be. floor 0 is the limiter's plain Allow.
func (b *bucket) take(now time.Time, t int64, floor float64) (bool, time.Duration) {
	b.refresh(now, t)
	if b.off.Load() {
		return true, 0
	}
	now = b.lock(now)
	var ok bool
	var tok float64
	need := 1.0
	if floor > 0 {
		need += floor * float64(b.burst.Load())
		tok = b.lim.TokensAt(now)
		ok = tok >= need && b.lim.AllowN(now, 1)
	} else if ok = b.lim.AllowN(now, 1); !ok {
		// Each look at the tokens costs as much as the take: only on a refusal.
		tok = b.lim.TokensAt(now)
	}
	b.mu.Unlock()
	if ok {
		return true, 0
	}
	return false, b.waitFor(need - tok)
}

// waitFor is how long the bucket takes to refill tokens: the delay a reservation of
// them would be given.
func (b *bucket) waitFor(tokens float64) time.Duration {
	r := b.rate.Load()
	if !(r > 0) {
		return maxWait
	}
	w := tokens / r * float64(time.Second)
	if w > float64(maxWait) {
		return maxWait
	}
	if w < 0 {
		return 0
	}
	return time.Duration(w)
}

const maxWait = time.Hour

// debit takes n tokens after the fact: the bucket goes into debt when they were not
// there. One call debits at most maxDebt seconds of the rate: a debt that long already
// sheds everything the budget controls.
func (b *bucket) debit(now time.Time, n int64) {
	now = b.lock(now)
	defer b.mu.Unlock()
	burst := b.burst.Load() // apply sets it with the limiter's, under mu
	n = min(n, burst*maxDebt)
	for n > 0 {
		k := min(n, burst)
		// ReserveN with no wait limit always succeeds for k <= burst, going negative.
		b.lim.ReserveN(now, int(k))
		n -= k
	}
}

const maxDebt = 60

// level is the tokens as a fraction of the burst: 1 full, 0 empty, below 0 in debt.
func (b *bucket) level(now time.Time) (level, tokens float64) {
	now = b.lock(now)
	tokens = b.lim.TokensAt(now)
	b.mu.Unlock()
	return tokens / float64(b.burst.Load()), tokens
}

// noteRefusal counts a refusal in the current whole second and keeps the peak of the
// seconds before. The fold is racy by a few counts: it only sets a lift's ceiling.
func (b *bucket) noteRefusal(t int64) {
	sec := t / int64(time.Second)
	if s := b.refSec.Load(); s != sec && b.refSec.CompareAndSwap(s, sec) {
		b.foldPeak(b.refCount.Swap(0))
	}
	b.refCount.Add(1)
}

func (b *bucket) foldPeak(n int64) {
	for {
		p := b.refPeak.Load()
		if n <= p || b.refPeak.CompareAndSwap(p, n) {
			return
		}
	}
}

// resetRefusals forgets the refusals counted so far: a new cap starts its own count,
// so that a later lift climbs by what the cap in force refused, not by an overload
// an earlier cap saw.
func (b *bucket) resetRefusals() {
	b.refPeak.Store(0)
	b.refCount.Store(0)
}

// liftTo is the ceiling a lift ramp climbs to from the fleet-wide rate cur.
func (b *bucket) liftTo(cur float64) float64 {
	peak := float64(max(b.refPeak.Load(), b.refCount.Load()))
	offered := cur + peak/b.share.Load()
	return max(cur*LiftCeiling, offered)
}

// atomicFloat is a float64 read and written atomically.
type atomicFloat struct{ bits atomic.Uint64 }

func (f *atomicFloat) Load() float64   { return math.Float64frombits(f.bits.Load()) }
func (f *atomicFloat) Store(v float64) { f.bits.Store(math.Float64bits(v)) }
