package breaker

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Inside synctest.Test the clock is fake: gobreaker's time.Now reads it, and
// time.Sleep advances it at once. Breakers must be built inside the bubble.

type transition struct{ from, to State }

// recorder collects state changes the way owners are told to: a send that never
// blocks. A full buffer fails the test rather than hiding a transition.
type recorder struct {
	t  *testing.T
	ch chan transition
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, ch: make(chan transition, 64)}
}

func (r *recorder) notify(from, to State) {
	select {
	case r.ch <- transition{from, to}:
	default:
		r.t.Error("notifier buffer full: a transition was dropped")
	}
}

// expect asserts the transitions since the last call, in order.
func (r *recorder) expect(want ...transition) {
	r.t.Helper()
	var got []transition
	for len(r.ch) > 0 {
		got = append(got, <-r.ch)
	}
	if len(got) != len(want) {
		r.t.Fatalf("transitions = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			r.t.Fatalf("transitions = %v, want %v", got, want)
		}
	}
}

var (
	closedToOpen   = transition{Closed, Open}
	openToHalfOpen = transition{Open, HalfOpen}
	halfOpenToOpen = transition{HalfOpen, Open}
	halfOpenToClos = transition{HalfOpen, Closed}
)

// outcomes expands "S10 F2 X1" into ten successes, two failures, one exclusion.
func outcomes(t *testing.T, spec string) []Outcome {
	t.Helper()
	var out []Outcome
	for _, f := range strings.Fields(spec) {
		n, err := strconv.Atoi(f[1:])
		if err != nil {
			t.Fatalf("bad spec %q", f)
		}
		o := map[byte]Outcome{'S': Success, 'F': Failure, 'X': Excluded}[f[0]]
		for range n {
			out = append(out, o)
		}
	}
	return out
}

// pass runs one request that the breaker must let through.
func pass(t *testing.T, b *Breaker, o Outcome) {
	t.Helper()
	ran := false
	got, err := b.Do(func() Outcome { ran = true; return o })
	if err != nil || !ran || got != o {
		t.Fatalf("Do(%v) = %v, %v (ran %v); want %v, nil (ran)", o, got, err, ran, o)
	}
}

// reject asserts that the breaker fails fast with want, without running fn.
func reject(t *testing.T, b *Breaker, want error) {
	t.Helper()
	ran := false
	got, err := b.Do(func() Outcome { ran = true; return Success })
	if err != want || !errors.Is(err, ErrOpen) || ran || got != Failure {
		t.Fatalf("Do = %v, %v (ran %v); want Failure, %v (not run)", got, err, ran, want)
	}
}

func TestTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		s      Settings
		seq    string
		tripAt int // index in seq of the request that opens the breaker; -1: never
	}{
		{"half failures at min requests", Settings{}, "S10 F10", 19},
		{"all failures trip at min requests", Settings{}, "F20", 19},
		{"below min requests", Settings{}, "F19", -1},
		{"below ratio", Settings{}, "S11 F9", -1},
		// Only a failure can trip: the ratio is checked when one is counted.
		{"trips on the next failure", Settings{}, "F10 S10 F1", 20},
		{"excluded count for nothing", Settings{}, "X30 F19 X5 F1", 54},
		{"exact ratio", Settings{MinRequests: 5, FailureRatio: 0.3}, "S7 F3", 9},
		{"ratio one", Settings{MinRequests: 5, FailureRatio: 1}, "S1 F10", -1},
		{"ratio one trips", Settings{MinRequests: 5, FailureRatio: 1}, "F5", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newRecorder(t)
				b := New(tc.s, rec.notify)
				for i, o := range outcomes(t, tc.seq) {
					pass(t, b, o)
					want := Closed
					if tc.tripAt >= 0 && i >= tc.tripAt {
						want = Open
					}
					if got := b.State(); got != want {
						t.Fatalf("after request %d (%v): state %v, want %v", i, o, got, want)
					}
					if want == Open {
						break
					}
				}
				if tc.tripAt < 0 {
					rec.expect()
					return
				}
				rec.expect(closedToOpen)
				reject(t, b, ErrOpen)
				if c := b.Counts(); c != (Counts{}) {
					t.Errorf("open breaker counts = %+v, want zero", c)
				}
			})
		})
	}
}

func TestLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(t)
		b := New(Settings{MinRequests: 4, OpenFor: 5 * time.Second}, rec.notify)
		trip := func() {
			t.Helper()
			for range 4 {
				pass(t, b, Failure)
			}
			rec.expect(closedToOpen)
		}

		trip()
		reject(t, b, ErrOpen)
		time.Sleep(5 * time.Second)
		// Open for at least OpenFor: at exactly OpenFor it still rejects.
		reject(t, b, ErrOpen)
		rec.expect()

		time.Sleep(time.Nanosecond)
		if got := b.State(); got != Open {
			t.Fatalf("before any request after OpenFor: state %v, want open (half-open is entered lazily)", got)
		}
		pass(t, b, Success) // probe 1
		rec.expect(openToHalfOpen)
		if got := b.State(); got != HalfOpen {
			t.Fatalf("after one good probe: state %v, want half-open", got)
		}
		pass(t, b, Success) // probe 2
		rec.expect()
		pass(t, b, Success) // probe 3 closes
		rec.expect(halfOpenToClos)
		if got := b.State(); got != Closed {
			t.Fatalf("after three good probes: state %v, want closed", got)
		}
		if c := b.Counts(); c != (Counts{}) {
			t.Errorf("counts after closing = %+v, want a fresh window", c)
		}

		trip()
		time.Sleep(5*time.Second + time.Nanosecond)
		b.Counts() // brings the state up to date without a request
		rec.expect(openToHalfOpen)
		if got := b.State(); got != HalfOpen {
			t.Fatalf("after Counts past OpenFor: state %v, want half-open", got)
		}
		pass(t, b, Success)
		pass(t, b, Failure) // one failed probe reopens
		rec.expect(halfOpenToOpen)
		reject(t, b, ErrOpen)

		for _, tc := range []struct {
			from, to State
			want     uint64
		}{
			{Closed, Open, 2}, {Open, HalfOpen, 2}, {HalfOpen, Closed, 1}, {HalfOpen, Open, 1},
			{Closed, HalfOpen, 0}, {Open, Closed, 0}, {Closed, Closed, 0}, {Open, State(7), 0},
		} {
			if got := b.Transitions(tc.from, tc.to); got != tc.want {
				t.Errorf("Transitions(%v, %v) = %d, want %d", tc.from, tc.to, got, tc.want)
			}
		}
	})
}

func TestProbeLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(t)
		b := New(Settings{MinRequests: 1, HalfOpenProbes: 3, OpenFor: time.Second}, rec.notify)
		pass(t, b, Failure)
		time.Sleep(2 * time.Second)

		// Three probes in flight take every slot.
		release := make(chan struct{})
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				b.Do(func() Outcome { <-release; return Success })
			})
		}
		synctest.Wait()
		reject(t, b, ErrTooManyProbes)
		close(release)
		wg.Wait()
		rec.expect(closedToOpen, openToHalfOpen, halfOpenToClos)
	})
}

func TestExcludedProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(t)
		b := New(Settings{MinRequests: 1, HalfOpenProbes: 2, OpenFor: time.Second}, rec.notify)
		pass(t, b, Failure)
		time.Sleep(2 * time.Second)

		// An excluded probe neither closes nor reopens, and gives its slot back.
		pass(t, b, Excluded)
		pass(t, b, Excluded)
		pass(t, b, Success)
		if got := b.State(); got != HalfOpen {
			t.Fatalf("after excluded probes and one success: state %v, want half-open", got)
		}
		pass(t, b, Success)
		rec.expect(closedToOpen, openToHalfOpen, halfOpenToClos)
	})
}

func TestWindowRolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder(t)
		b := New(Settings{Window: 10 * time.Second}, rec.notify)
		for range 10 {
			pass(t, b, Failure)
		}
		time.Sleep(9 * time.Second)
		if c := b.Counts(); c.TotalFailures != 10 {
			t.Fatalf("9s later: %d failures in the window, want 10", c.TotalFailures)
		}
		time.Sleep(time.Second)
		if c := b.Counts(); c != (Counts{}) {
			t.Fatalf("one window later: counts %+v, want the old failures gone", c)
		}

		// With the old failures still counted, the 10th failure here would trip (20/29).
		for _, o := range outcomes(t, "S10 F9") {
			pass(t, b, o)
		}
		if got := b.State(); got != Closed {
			t.Fatalf("state %v, want closed: failures from a past window tripped it", got)
		}
		if c := b.Counts(); c.TotalSuccesses != 10 || c.TotalFailures != 9 {
			t.Fatalf("counts %+v, want 10 successes and 9 failures", c)
		}
		rec.expect()
	})
}

func TestPanicCountsAsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Settings{}, nil)
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("recovered %v, want the panic to go on up", r)
				}
			}()
			b.Do(func() Outcome { panic("boom") })
		}()
		if c := b.Counts(); c.TotalFailures != 1 {
			t.Errorf("counts %+v, want the panic counted as one failure", c)
		}
	})
}

func TestUnknownOutcomeIsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Settings{}, nil)
		if _, err := b.Do(func() Outcome { return Outcome(9) }); err != nil {
			t.Fatal(err)
		}
		if c := b.Counts(); c.TotalFailures != 1 {
			t.Errorf("counts %+v, want one failure", c)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Settings{}, nil)
		const workers, each = 8, 500
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range each {
					b.Do(func() Outcome { return Success })
					_ = b.State()
					_ = b.Transitions(Closed, Open)
				}
			})
		}
		wg.Go(func() {
			for range each {
				b.Counts()
			}
		})
		wg.Wait()
		if c := b.Counts(); c.Requests != workers*each || c.TotalSuccesses != workers*each {
			t.Errorf("counts %+v, want %d requests and successes", c, workers*each)
		}
	})
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Success.String(), "success"}, {Failure.String(), "failure"},
		{Excluded.String(), "excluded"}, {Outcome(9).String(), "outcome(9)"},
		{Closed.String(), "closed"}, {HalfOpen.String(), "half-open"},
		{Open.String(), "open"}, {State(9).String(), "state(9)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
