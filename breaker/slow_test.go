package breaker

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// hang runs n requests through b that hang until release is closed, each ending in
// a timeout failure then, and returns a WaitGroup for them.
func hang(b *Breaker, n int, release <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.Do(func() Outcome { <-release; return Failure }) //nolint:errcheck
		}()
	}
	return &wg
}

// healthy runs n quick successful requests, one every gap.
func healthy(b *Breaker, n int, gap time.Duration) {
	for range n {
		b.Do(func() Outcome { return Success }) //nolint:errcheck
		time.Sleep(gap)
	}
}

// TestSlowCallsTripHungRegion: after 9 s of healthy traffic (900 successes in the
// window), the region hangs: requests stay in flight and none completes until a 3 s
// timeout. With a 500 ms slow-call threshold the breaker opens about a threshold
// after the hang began, long before the first timeout ends a request; the classic
// breaker (the same settings without slow calls) is still closed when the first
// timeouts come back.
func TestSlowCallsTripHungRegion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		slow     time.Duration
		wantOpen bool // open before the first timeout (3 s) ends a request
	}{
		{"classic", 0, false},
		{"slow calls", 500 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := New(Settings{SlowCallThreshold: tc.slow}, nil)
				healthy(b, 900, 10*time.Millisecond)
				release := make(chan struct{})
				hangAt := time.Now()
				wg := hang(b, 20, release)
				synctest.Wait()
				// Nothing new arrives (every client waits on the hung region): only
				// the poller looks, every threshold/4.
				var openAt time.Time
				for time.Since(hangAt) < 3*time.Second {
					time.Sleep(125 * time.Millisecond)
					b.Poll(time.Now())
					if b.State() == Open && openAt.IsZero() {
						openAt = time.Now()
					}
				}
				close(release)
				wg.Wait()
				if got := !openAt.IsZero(); got != tc.wantOpen {
					t.Fatalf("open before the first timeout: %v, want %v", got, tc.wantOpen)
				}
				if tc.wantOpen {
					took := openAt.Sub(hangAt)
					t.Logf("hung region tripped %s after the hang began", took)
					if took > time.Second {
						t.Errorf("tripped %s after the hang began, want within a second", took)
					}
					if b.SlowTrips() != 1 || b.Transitions(Closed, Open) != 1 {
						t.Errorf("slow trips %d, closed->open %d, want 1 and 1", b.SlowTrips(), b.Transitions(Closed, Open))
					}
				}
			})
		})
	}
}

// TestSlowCallsNotForHealthyTail: a region that answers most requests fast and a few
// slowly is not tripped: the slow ones are a small share of what completes.
func TestSlowCallsNotForHealthyTail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Settings{SlowCallThreshold: 500 * time.Millisecond}, nil)
		release := make(chan struct{})
		wg := hang(b, 8, release) // eight slow calls, more than SlowCallMin
		for range 300 {           // while 100 fast ones complete every second
			b.Do(func() Outcome { return Success }) //nolint:errcheck
			time.Sleep(10 * time.Millisecond)
		}
		close(release)
		wg.Wait()
		if b.State() != Closed || b.SlowTrips() != 0 {
			t.Fatalf("state %v after %d slow trips, want closed", b.State(), b.SlowTrips())
		}
	})
}

// TestConsecutiveFailures: a region that dies after a long healthy spell trips after
// ConsecutiveFailures failures in a row; the classic ratio needs hundreds more.
func TestConsecutiveFailures(t *testing.T) {
	for _, tc := range []struct {
		consecutive uint32
		wantAfter   int // failures until open
	}{
		{0, 900}, // 50 % of the window's 1800 requests
		{5, 5},
	} {
		synctest.Test(t, func(t *testing.T) {
			b := New(Settings{ConsecutiveFailures: tc.consecutive}, nil)
			healthy(b, 900, 9*time.Millisecond) // 8.1 s, all in the 10 s window
			n := 0
			for b.State() == Closed && n < 5000 {
				b.Do(func() Outcome { return Failure }) //nolint:errcheck
				n++
			}
			if n != tc.wantAfter {
				t.Errorf("consecutive %d: open after %d failures, want %d", tc.consecutive, n, tc.wantAfter)
			}
		})
	}
}
