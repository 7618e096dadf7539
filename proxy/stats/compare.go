package stats

import "math"

// Criteria are the thresholds of the gates that comparisons and ramp plans apply.
type Criteria struct {
	Error   ErrorCriteria   `json:"error"`
	Latency LatencyCriteria `json:"latency"`
}

// Comparison sets two tallies side by side: A is the side under suspicion (moved, or
// stayed now), B its baseline (stayed at the same time, or stayed before). The deltas
// come with the sample counts in A and B; Verdict is the worse of the error and latency
// gates, so too few samples make it inconclusive, never pass.
type Comparison struct {
	Name string  `json:"name"`
	A    Reading `json:"a"`
	B    Reading `json:"b"`
	// ErrorDeltaPoints is A's error ratio minus B's, in percentage points.
	ErrorDeltaPoints float64 `json:"error_delta_points"`
	// P99Delta is A's p99 over B's, minus 1 (0.2 is 20 % slower); 0 when either is
	// unknown.
	P99Delta float64 `json:"p99_delta"`
	Verdict  Outcome `json:"verdict"`
	Gates    []Gate  `json:"gates"`
}

// The two comparisons of the dashboard.
const (
	// MovedVsStayed: the moved cohort in To against the stayed cohort in From, over
	// the same span, so time of day and load are the same for both.
	MovedVsStayed = "moved_vs_stayed"
	// StayedVsPast: the stayed cohort now against itself just before: when it
	// degrades too, From has trouble of its own and the move is not to blame.
	StayedVsPast = "stayed_vs_past"
)

// Compare applies c's gates to a against b. It keeps the tallies' histograms in the
// readings only when keepHist is set (for a fleet view to merge them).
func Compare(name string, c Criteria, a, b Tally, keepHist bool) Comparison {
	cmp := Comparison{
		Name: name,
		A:    readingOf(a, keepHist),
		B:    readingOf(b, keepHist),
		Gates: []Gate{
			ErrorGate(c.Error, a.Counts, b.Counts),
			LatencyGate(c.Latency, a, b),
		},
	}
	cmp.ErrorDeltaPoints = round6((a.ErrorRatio() - b.ErrorRatio()) * 100)
	if cmp.A.P99 > 0 && cmp.B.P99 > 0 {
		cmp.P99Delta = round6(cmp.A.P99/cmp.B.P99 - 1)
	}
	cmp.Verdict = Pass
	for _, g := range cmp.Gates {
		cmp.Verdict = worse(cmp.Verdict, g.Outcome)
	}
	return cmp
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }
