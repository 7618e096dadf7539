package breaker

import (
	"fmt"
	"math"
	"time"
)

// Settings configures a breaker. The zero value of every field means its default, so
// Settings{} is the classic breaker: trip at 50 % failures of at least 20 requests in
// the last 10 s, stay open 5 s, then let 3 probes through.
//
// Settings is comparable, but compare with [Settings.Equal], which sees a zero field
// and its default as the same setting.
type Settings struct {
	// MinRequests is how many counted (successful or failed, not excluded) requests the
	// window must hold before the breaker may trip. Zero means DefaultMinRequests.
	MinRequests uint32
	// FailureRatio trips the breaker when failures / counted requests >= FailureRatio.
	// It is in (0, 1]; zero means DefaultFailureRatio.
	FailureRatio float64
	// Window is how far back the closed breaker counts. It rolls in steps of
	// Window/10: a failure leaves the count between 0.9 and 1 Window after it happened.
	// Zero means DefaultWindow.
	Window time.Duration
	// OpenFor is how long the breaker stays open before it lets probes through. Zero
	// means DefaultOpenFor.
	OpenFor time.Duration
	// HalfOpenProbes is how many requests the half-open breaker lets through; it closes
	// when that many have succeeded and opens again on the first failure. Zero means
	// DefaultHalfOpenProbes.
	HalfOpenProbes uint32
	// FailureStatuses are the response statuses that count as failures. The zero value
	// means every 5xx status; build others with [NewStatusSet].
	FailureStatuses StatusSet
	// ConsecutiveFailures, when not zero, also trips the breaker after that many
	// failures in a row, whatever the window holds: a region that died after a long
	// healthy spell trips at once instead of after half a window of failures.
	ConsecutiveFailures uint32
	// SlowCallThreshold, when not zero, makes requests in flight for that long slow:
	// the breaker opens as soon as at least SlowCallMin of them are in flight and they
	// are SlowCallRatio or more of them plus the requests that ended meanwhile. A
	// hung region then trips within about a threshold, not one timeout late.
	SlowCallThreshold time.Duration
	// SlowCallRatio is in (0, 1]; zero means DefaultSlowCallRatio.
	SlowCallRatio float64
	// SlowCallMin is the fewest slow calls that may trip; zero means
	// DefaultSlowCallMin.
	SlowCallMin uint32
	// AbandonReads, with SlowCallThreshold, cuts the requests registered with
	// [Breaker.Wait] when the breaker opens, and limits a half-open probe's wait
	// to SlowCallThreshold (see waiting.go). It is ignored without a threshold.
	AbandonReads bool
}

// The defaults of the zero Settings fields.
const (
	DefaultMinRequests    = 20
	DefaultFailureRatio   = 0.5
	DefaultWindow         = 10 * time.Second
	DefaultOpenFor        = 5 * time.Second
	DefaultHalfOpenProbes = 3
	DefaultSlowCallRatio  = 0.5
	DefaultSlowCallMin    = 5
)

// defaultFailureStatuses is what the zero FailureStatuses stands for.
var defaultFailureStatuses = mustStatusSet([2]int{500, 599})

// WithDefaults returns s with zero fields set to their defaults. Invalid fields (see
// [Settings.Validate]) are set to their defaults too, so the result always works.
func (s Settings) WithDefaults() Settings {
	if s.MinRequests == 0 {
		s.MinRequests = DefaultMinRequests
	}
	if !(s.FailureRatio > 0 && s.FailureRatio <= 1) { // also catches NaN
		s.FailureRatio = DefaultFailureRatio
	}
	if s.Window <= 0 {
		s.Window = DefaultWindow
	}
	if s.OpenFor <= 0 {
		s.OpenFor = DefaultOpenFor
	}
	if s.HalfOpenProbes == 0 {
		s.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if s.FailureStatuses.empty() {
		s.FailureStatuses = defaultFailureStatuses
	}
	if s.SlowCallThreshold < 0 {
		s.SlowCallThreshold = 0
	}
	if s.SlowCallThreshold == 0 {
		s.AbandonReads = false
	}
	if !(s.SlowCallRatio > 0 && s.SlowCallRatio <= 1) {
		s.SlowCallRatio = DefaultSlowCallRatio
	}
	if s.SlowCallMin == 0 {
		s.SlowCallMin = DefaultSlowCallMin
	}
	return s
}

// Equal reports whether s and o configure the same breaker once defaults are applied.
// A [Set] keeps a breaker, and its history, across a reload when they are equal.
func (s Settings) Equal(o Settings) bool {
	return s.WithDefaults() == o.WithDefaults()
}

// Validate returns an error naming the first field that [Settings.WithDefaults] would
// have to replace rather than fill in.
func (s Settings) Validate() error {
	switch {
	case math.IsNaN(s.FailureRatio) || s.FailureRatio < 0 || s.FailureRatio > 1:
		return fmt.Errorf("breaker: failure_ratio: want 0..1, got %v", s.FailureRatio)
	case s.Window < 0:
		return fmt.Errorf("breaker: window: want a positive duration, got %v", s.Window)
	case s.OpenFor < 0:
		return fmt.Errorf("breaker: open_for: want a positive duration, got %v", s.OpenFor)
	case s.SlowCallThreshold < 0:
		return fmt.Errorf("breaker: slow_call.threshold: want a positive duration, got %v", s.SlowCallThreshold)
	case math.IsNaN(s.SlowCallRatio) || s.SlowCallRatio < 0 || s.SlowCallRatio > 1:
		return fmt.Errorf("breaker: slow_call.ratio: want 0..1, got %v", s.SlowCallRatio)
	case s.AbandonReads && s.SlowCallThreshold == 0:
		return fmt.Errorf("breaker: slow_call.abandon_reads: needs slow_call.threshold")
	}
	return nil
}

// readyToTrip is gobreaker's ReadyToTrip, called under its lock after each failure
// while closed. It counts completed requests only: in-flight and excluded requests say
// nothing yet about the upstream.
func (s Settings) readyToTrip(c Counts) bool {
	if s.ConsecutiveFailures > 0 && c.ConsecutiveFailures >= s.ConsecutiveFailures {
		return true
	}
	n := c.TotalSuccesses + c.TotalFailures
	// Dividing (rather than multiplying the ratio) keeps exact ratios exact: 3/10 is
	// the same float64 as 0.3.
	return n >= s.MinRequests && float64(c.TotalFailures)/float64(n) >= s.FailureRatio
}
