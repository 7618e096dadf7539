// Package breaker is the circuit breaker of one (route, region): it decides whether a
// request may be forwarded to the region, and learns from what the upstream answered.
//
// It wraps github.com/sony/gobreaker/v2 with what shiftgate needs around it: a
// failure-ratio trip over a rolling window, outcomes that can be excluded (a client that
// went away says nothing about the upstream), a status classification compiled once,
// a state that metrics read without a lock, and a [Set] that keeps breakers, with their
// history, across config reloads.
//
// The proxy uses it like this:
//
//	out, err := b.Do(func() breaker.Outcome {
//		err := client.Do(req, resp)
//		switch {
//		case clientGone:
//			return breaker.Excluded
//		case err != nil: // connection error, timeout
//			return breaker.Failure
//		}
//		return b.ClassifyStatus(resp.StatusCode())
//	})
//	if errors.Is(err, breaker.ErrOpen) {
//		// fail over, or serve a fallback
//	}
package breaker

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Outcome is what one forwarded request says about the upstream. The zero value is
// Success.
type Outcome uint8

// The outcomes. Any other value counts as Failure.
const (
	// Success: the upstream answered with a status that is not a failure status.
	Success Outcome = iota
	// Failure: connection error, timeout, or a failure status.
	Failure
	// Excluded: the request ended for a reason that says nothing about the upstream
	// (the client went away); it counts as neither success nor failure.
	Excluded
)

// String returns "success", "failure" or "excluded".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Excluded:
		return "excluded"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// State is the state of a breaker. Its values are those of gobreaker.State and are
// stable: metrics export them as numbers.
type State uint8

// The states.
const (
	Closed   State = 0 // requests flow; outcomes are counted
	HalfOpen State = 1 // a few probes flow; the rest fail fast
	Open     State = 2 // every request fails fast
)

const numStates = 3

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ErrOpen is returned by [Breaker.Do] when the breaker is open: the request was not
// forwarded.
var ErrOpen = errors.New("breaker: open")

// ErrTooManyProbes is returned by [Breaker.Do] when the breaker is half-open and all
// its probes are taken. errors.Is(ErrTooManyProbes, ErrOpen) is true, so callers that
// only care whether the request went out test for ErrOpen.
var ErrTooManyProbes = fmt.Errorf("breaker: half-open, all probes taken: %w", ErrOpen)

// The outcome reaches gobreaker as an error: these sentinels never leave the package.
var (
	errFailure  = errors.New("breaker: failure")
	errExcluded = errors.New("breaker: excluded")
)

func (o Outcome) err() error {
	switch o {
	case Success:
		return nil
	case Excluded:
		return errExcluded
	}
	return errFailure
}

// Breaker is the circuit breaker of one (route, region). It is safe for concurrent
// use; [Breaker.Do] and [Breaker.ClassifyStatus] do not allocate, and no method waits
// on the breaker beyond a short critical section: an open breaker fails fast.
type Breaker struct {
	cb       *gobreaker.CircuitBreaker[Outcome]
	settings Settings // normalised; immutable
	notify   func(from, to State)

	state       atomic.Uint32
	transitions [numStates][numStates]atomic.Uint64

	// slow is the in-flight view (nil without SlowCallThreshold); tripSlow asks the
	// next ReadyToTrip to open the breaker, for a trip on slow calls.
	slow      *slowCalls
	tripSlow  atomic.Bool
	slowTrips atomic.Uint64

	// waits are the requests that give up when the breaker opens (nil without
	// AbandonReads): see waiting.go.
	waits *waiters
}

// New returns a closed breaker. Zero fields of s take their defaults and invalid ones
// are replaced by them (see [Settings.WithDefaults]); callers that want to refuse bad
// settings call [Settings.Validate] first.
//
// notify, if not nil, is called on every state change. It runs under the breaker's
// lock, on the goroutine of the request that caused the change, so it must not block,
// do I/O, panic or call back into the breaker: store an atomic, or send on a buffered
// channel with select/default.
func New(s Settings, notify func(from, to State)) *Breaker {
	b := &Breaker{settings: s.WithDefaults(), notify: notify}
	st := b.settings
	b.cb = gobreaker.NewCircuitBreaker[Outcome](gobreaker.Settings{
		MaxRequests:   st.HalfOpenProbes,
		Interval:      st.Window,
		BucketPeriod:  bucketPeriod(st.Window),
		Timeout:       st.OpenFor,
		ReadyToTrip:   b.readyToTrip,
		OnStateChange: b.onStateChange,
		IsExcluded:    func(err error) bool { return err == errExcluded },
		// The default IsSuccessful (err == nil) makes errFailure and a panic failures.
	})
	if st.SlowCallThreshold > 0 {
		b.slow = newSlowCalls(st.SlowCallThreshold)
		if st.AbandonReads {
			b.waits = &waiters{}
		}
	}
	return b
}

func (b *Breaker) readyToTrip(c Counts) bool {
	return b.tripSlow.Swap(false) || b.settings.readyToTrip(c)
}

// checkSlow opens a closed breaker whose calls in flight say the region hangs. The
// trip goes through gobreaker as one synthetic failure that ReadyToTrip accepts, so
// the state, its callbacks and the open period are gobreaker's own.
func (b *Breaker) checkSlow(now time.Time) {
	if State(b.state.Load()) != Closed {
		return
	}
	trip, _ := b.slow.evaluate(now, b.settings.SlowCallMin, b.settings.SlowCallRatio)
	if !trip {
		return
	}
	b.tripSlow.Store(true)
	b.cb.Execute(func() (Outcome, error) { return Failure, errFailure }) //nolint:errcheck // the trip is the point
	b.tripSlow.Store(false)
	b.slowTrips.Add(1)
}

// Poll evaluates the calls in flight at now (at most once per SlowCallThreshold/4;
// a no-op without slow-call settings). Requests evaluate them as they arrive; Poll is
// for a region whose clients are all stuck waiting on it, so that no new request
// comes to notice: call it from a ticker every SlowCallThreshold/4 or so.
func (b *Breaker) Poll(now time.Time) {
	if b.slow != nil {
		b.checkSlow(now)
	}
}

// SlowTrips returns how many times the breaker opened on slow calls in flight.
func (b *Breaker) SlowTrips() uint64 { return b.slowTrips.Load() }

// windowBuckets is how many buckets the rolling window has: failures leave the window
// in steps of window/10.
const windowBuckets = 10

func bucketPeriod(window time.Duration) time.Duration {
	if p := window / windowBuckets; p > 0 {
		return p
	}
	return window
}

// onStateChange runs under gobreaker's lock: atomics only, then the owner's notifier.
func (b *Breaker) onStateChange(_ string, from, to gobreaker.State) {
	f, t := State(from), State(to)
	b.state.Store(uint32(t))
	if f < numStates && t < numStates {
		b.transitions[f][t].Add(1)
	}
	if t == Open && b.waits != nil {
		b.waits.abandonAll()
	}
	if b.notify != nil {
		b.notify(f, t)
	}
}

// Do runs fn, the forwarding of one request, if the breaker lets it through, and counts
// the Outcome fn returns. It returns that outcome and a nil error. When the breaker is
// open, fn is not run and Do returns Failure with ErrOpen at once; when it is half-open
// with all probes taken, Failure with ErrTooManyProbes. If fn panics, the panic counts
// as a failure and goes on up.
//
// Do wraps the whole request rather than splitting it into allow and report steps
// because gobreaker's two-step Allow returns a closure that allocates on every request;
// fn here does not escape, so a closure the caller passes stays on its stack and Do
// allocates nothing.
func (b *Breaker) Do(fn func() Outcome) (Outcome, error) {
	var slot int64
	if b.slow != nil {
		now := time.Now()
		b.checkSlow(now)
		slot = b.slow.start(now)
	}
	out, err := b.cb.Execute(func() (Outcome, error) {
		o := fn()
		return o, o.err()
	})
	if b.slow != nil {
		b.slow.end(slot)
	}
	switch err {
	case nil, errFailure, errExcluded:
		return out, nil
	case gobreaker.ErrTooManyRequests:
		return Failure, ErrTooManyProbes
	}
	return Failure, ErrOpen
}

// ClassifyStatus returns Failure if status is one of the breaker's failure statuses and
// Success otherwise. It does not record anything.
func (b *Breaker) ClassifyStatus(status int) Outcome {
	if b.settings.FailureStatuses.Has(status) {
		return Failure
	}
	return Success
}

// State returns the state of the last transition, read without a lock. The breaker
// moves from open to half-open lazily, when a request (or [Breaker.Counts]) comes after
// OpenFor has passed; until then State reports Open, which is also what requests see.
func (b *Breaker) State() State {
	return State(b.state.Load())
}

// Counts are the counts of the current generation: the rolling window while closed,
// the probes while half-open, nothing while open. Requests includes requests still in
// flight and excluded ones.
type Counts = gobreaker.Counts

// Counts brings the breaker up to date with the clock (rolling the window; moving open
// to half-open once OpenFor has passed) and returns its counts. It takes the breaker's
// lock: call it when exporting metrics, not per request.
func (b *Breaker) Counts() Counts {
	b.cb.State() // advances time-based state; the transition, if any, updates b.state
	return b.cb.Counts()
}

// Transitions returns how many times the breaker went from one state to the other
// since it was built. Read without a lock.
func (b *Breaker) Transitions(from, to State) uint64 {
	if from >= numStates || to >= numStates {
		return 0
	}
	return b.transitions[from][to].Load()
}

// Settings returns the breaker's settings with defaults applied.
func (b *Breaker) Settings() Settings {
	return b.settings
}
