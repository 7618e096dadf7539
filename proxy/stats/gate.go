package stats

import (
	"fmt"
	"math"
	"time"
)

// Outcome is a gate's verdict. Too little data is Inconclusive, never Pass: a ramp
// holds on it, and neither advances nor fails.
type Outcome string

// The outcomes, as CONTRACT.md spells them.
const (
	Pass         Outcome = "pass"
	Fail         Outcome = "fail"
	Inconclusive Outcome = "inconclusive"
)

// worse returns the worse of two outcomes: fail, then inconclusive, then pass.
func worse(a, b Outcome) Outcome {
	rank := func(o Outcome) int {
		switch o {
		case Fail:
			return 2
		case Inconclusive:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// Samples are the sample counts behind a gate reading.
type Samples struct {
	Moved  uint64 `json:"moved"`
	Stayed uint64 `json:"stayed"`
}

// Gate is one gate reading. It encodes as CONTRACT.md's gate shape {name, outcome,
// moved, stayed, samples} plus the unit, confidence intervals and the reason. Moved and
// Stayed are error ratios (0..1) or latencies in ms; for a comparison of a cohort with
// its own past, Moved is now and Stayed is before.
type Gate struct {
	Name     string     `json:"name"`
	Outcome  Outcome    `json:"outcome"`
	Moved    float64    `json:"moved"`
	Stayed   float64    `json:"stayed"`
	Samples  Samples    `json:"samples"`
	Unit     string     `json:"unit"`
	MovedCI  [2]float64 `json:"moved_ci"`
	StayedCI [2]float64 `json:"stayed_ci"`
	Reason   string     `json:"reason"`
}

// ErrorCriteria configure ErrorGate. Zero fields take the defaults noted.
type ErrorCriteria struct {
	// MinRequests per side below which the gate is inconclusive. Default 1000.
	MinRequests uint64 `json:"min_requests"`
	// FloorPoints: moved must exceed stayed by at least this many percentage points to
	// fail. Default 0.5.
	FloorPoints float64 `json:"floor_points"`
	// FloorRatio: moved must also be at least this multiple of stayed. Default 1.5.
	FloorRatio float64 `json:"floor_ratio"`
	// Confidence of the one-sided two-proportion z-test that must find moved worse
	// (and of the two-sided Wilson intervals reported). Default 0.95.
	Confidence float64 `json:"confidence"`
}

func (c ErrorCriteria) withDefaults() ErrorCriteria {
	if c.MinRequests == 0 {
		c.MinRequests = 1000
	}
	if c.FloorPoints == 0 {
		c.FloorPoints = 0.5
	}
	if c.FloorRatio == 0 {
		c.FloorRatio = 1.5
	}
	if c.Confidence <= 0 || c.Confidence >= 1 {
		c.Confidence = 0.95
	}
	return c
}

// LatencyCriteria configure LatencyGate. Zero fields take the defaults noted.
type LatencyCriteria struct {
	// Quantile compared. Default 0.99.
	Quantile float64 `json:"quantile"`
	// Tolerance: moved fails above stayed × Tolerance + Slack. Default 1.25.
	Tolerance float64 `json:"tolerance"`
	// Slack is an absolute allowance, e.g. the known extra round trip to To.
	Slack time.Duration `json:"slack"`
	// MinRequests per side below which the gate is inconclusive. Default 1000.
	MinRequests uint64 `json:"min_requests"`
	// Confidence of the order-statistic intervals that must separate. Default 0.95.
	Confidence float64 `json:"confidence"`
}

func (c LatencyCriteria) withDefaults() LatencyCriteria {
	if c.Quantile <= 0 || c.Quantile >= 1 {
		c.Quantile = 0.99
	}
	if c.Tolerance <= 0 {
		c.Tolerance = 1.25
	}
	if c.MinRequests == 0 {
		c.MinRequests = 1000
	}
	if c.Confidence <= 0 || c.Confidence >= 1 {
		c.Confidence = 0.95
	}
	return c
}

// zOneSided returns the standard normal quantile at conf (1.645 at 0.95).
func zOneSided(conf float64) float64 { return math.Sqrt2 * math.Erfinv(2*conf-1) }

// Wilson returns the two-sided Wilson score interval at confidence conf for errors out
// of n trials; [0, 1] when n is 0.
func Wilson(errors, n uint64, conf float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	z := zOneSided(1 - (1-conf)/2)
	nf, p := float64(n), float64(errors)/float64(n)
	d := 1 + z*z/nf
	mid := (p + z*z/(2*nf)) / d
	half := z / d * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf))
	lo, hi = max(0, mid-half), min(1, mid+half)
	// The bounds are exact at the ends; keep rounding from moving them inside.
	if errors == 0 {
		lo = 0
	}
	if errors >= n {
		hi = 1
	}
	return lo, hi
}

// TwoProportionZ returns the pooled two-proportion z statistic of moved's error ratio
// over stayed's: positive when moved is worse. 0 when either side is empty or neither
// differs; ±Inf when both ratios are 0 or 1 on either side but differ.
func TwoProportionZ(movedErr, movedN, stayedErr, stayedN uint64) float64 {
	if movedN == 0 || stayedN == 0 {
		return 0
	}
	pm, ps := float64(movedErr)/float64(movedN), float64(stayedErr)/float64(stayedN)
	pool := float64(movedErr+stayedErr) / float64(movedN+stayedN)
	se := math.Sqrt(pool * (1 - pool) * (1/float64(movedN) + 1/float64(stayedN)))
	if se == 0 {
		switch {
		case pm > ps:
			return math.Inf(1)
		case pm < ps:
			return math.Inf(-1)
		}
		return 0
	}
	return (pm - ps) / se
}

// geq compares ratios built from integer counts, forgiving float rounding.
func geq(a, b float64) bool { return a >= b-1e-12 }

// ErrorGate compares moved's error ratio with stayed's over the same span. It fails only
// when all three hold: moved ≥ stayed + FloorPoints, moved ≥ stayed × FloorRatio, and a
// one-sided two-proportion z-test finds moved worse at Confidence. It is inconclusive
// below MinRequests on either side, or when the floors hold without significance; it
// passes otherwise.
func ErrorGate(c ErrorCriteria, moved, stayed Counts) Gate {
	c = c.withDefaults()
	g := Gate{
		Name: "error_ratio", Unit: "ratio",
		Moved: moved.ErrorRatio(), Stayed: stayed.ErrorRatio(),
		Samples: Samples{Moved: moved.Requests, Stayed: stayed.Requests},
	}
	g.MovedCI[0], g.MovedCI[1] = Wilson(moved.Errors, moved.Requests, c.Confidence)
	g.StayedCI[0], g.StayedCI[1] = Wilson(stayed.Errors, stayed.Requests, c.Confidence)
	if moved.Requests < c.MinRequests || stayed.Requests < c.MinRequests {
		g.Outcome, g.Reason = Inconclusive, fmt.Sprintf("fewer than %d requests on a side", c.MinRequests)
		return g
	}
	if !geq(g.Moved, g.Stayed+c.FloorPoints/100) || !geq(g.Moved, g.Stayed*c.FloorRatio) {
		g.Outcome, g.Reason = Pass, fmt.Sprintf("below the floor of +%g points and ×%g", c.FloorPoints, c.FloorRatio)
		return g
	}
	z := TwoProportionZ(moved.Errors, moved.Requests, stayed.Errors, stayed.Requests)
	if zc := zOneSided(c.Confidence); z >= zc {
		g.Outcome, g.Reason = Fail, fmt.Sprintf("z=%.2f ≥ %.2f", z, zc)
	} else {
		g.Outcome, g.Reason = Inconclusive, fmt.Sprintf("above the floor but z=%.2f < %.2f", z, zc)
	}
	return g
}

// quantileCI returns the bounds in µs of a distribution-free confidence interval of
// quantile q of h: the buckets holding ranks n·q ∓ z·√(n·q·(1−q)), and their outer
// edges, so the bucket width counts against the test, never for it.
func quantileCI(h *Histogram, q, z float64) (lo, hi uint64) {
	n := float64(h.Count())
	sd := z * math.Sqrt(n*q*(1-q))
	rlo := uint64(max(1, math.Floor(n*q-sd)))
	rhi := uint64(min(n, math.Ceil(n*q+sd)))
	blo, bhi := h.bucketAtRank(rlo), h.bucketAtRank(rhi)
	lo, _ = h.bounds(blo)
	_, hi = h.bounds(bhi)
	return lo, hi
}

// LatencyGate compares moved's latency at Quantile with stayed's over the same span.
// It passes when moved ≤ stayed × Tolerance + Slack; it fails when even the low end of
// moved's confidence interval lies above the high end of stayed's × Tolerance + Slack;
// otherwise, or below MinRequests latencies on a side, it is inconclusive.
func LatencyGate(c LatencyCriteria, moved, stayed Tally) Gate {
	c = c.withDefaults()
	nm, ns := moved.Hist.Count(), stayed.Hist.Count()
	qm, qs := moved.Hist.Quantile(c.Quantile), stayed.Hist.Quantile(c.Quantile)
	g := Gate{
		Name: fmt.Sprintf("p%g_latency", c.Quantile*100), Unit: "ms",
		Moved: durMs(qm), Stayed: durMs(qs),
		Samples: Samples{Moved: nm, Stayed: ns},
	}
	z := zOneSided(c.Confidence)
	var mlo, slo, mhi, shi uint64
	if nm > 0 {
		mlo, mhi = quantileCI(&moved.Hist, c.Quantile, z)
		g.MovedCI = [2]float64{float64(mlo) / 1000, float64(mhi) / 1000}
	}
	if ns > 0 {
		slo, shi = quantileCI(&stayed.Hist, c.Quantile, z)
		g.StayedCI = [2]float64{float64(slo) / 1000, float64(shi) / 1000}
	}
	if nm < c.MinRequests || ns < c.MinRequests {
		g.Outcome, g.Reason = Inconclusive, fmt.Sprintf("fewer than %d latencies on a side", c.MinRequests)
		return g
	}
	limit := func(d float64) float64 { return d*c.Tolerance + float64(c.Slack) }
	if float64(qm) <= limit(float64(qs)) {
		g.Outcome, g.Reason = Pass, fmt.Sprintf("within ×%g + %s", c.Tolerance, c.Slack)
		return g
	}
	if float64(mlo)*1e3 > limit(float64(shi)*1e3) {
		g.Outcome, g.Reason = Fail, fmt.Sprintf("interval above ×%g + %s", c.Tolerance, c.Slack)
	} else {
		g.Outcome, g.Reason = Inconclusive, "above the tolerance but the intervals overlap"
	}
	return g
}
