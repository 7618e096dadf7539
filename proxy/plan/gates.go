package plan

import (
	"fmt"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

// Window is what a route's cohorts did over a step's window, [From, To): the moved
// cohort (in to) and the stayed cohort (in from) at full detail, and the fallbacks
// served among all the route's requests. In a fleet it is the merge of every
// instance that answered (Instances); Missing did not.
type Window struct {
	From, To      time.Time
	Moved, Stayed stats.Tally
	// Fallbacks and Total count requests (every cohort) in the window; both are 0
	// when the reader was not asked for them.
	Fallbacks, Total uint64
	// Instances and Missing name the instances whose statistics were or were not
	// merged (empty for a single instance).
	Instances, Missing []string
}

// Judge reads a plan's gates over w. opens is how often the to region's breaker
// opened during the step (-1 when unknown). The error ratio and latency gates are the
// statistics' own (stats.ErrorGate, stats.LatencyGate: a concurrent baseline, a
// practical floor, inconclusive below min_requests per cohort).
func Judge(pl *conf.Plan, w Window, opens int64) []stats.Gate {
	minN := uint64(pl.MinRequests)
	var gates []stats.Gate
	if e := pl.Gates.ErrorRatio; e != nil && !e.Off {
		gates = append(gates, stats.ErrorGate(stats.ErrorCriteria{MinRequests: minN, FloorPoints: e.FloorPoints,
			FloorRatio: e.FloorRatio, Confidence: e.Confidence}, w.Moved.Counts, w.Stayed.Counts))
	}
	if l := pl.Gates.Latency; l != nil && !l.Off {
		gates = append(gates, stats.LatencyGate(stats.LatencyCriteria{Quantile: l.Quantile, Tolerance: l.Tolerance,
			Slack: l.Slack.D, MinRequests: minN, Confidence: l.Confidence}, w.Moved, w.Stayed))
	}
	if f := pl.Gates.Fallbacks; f != nil {
		gates = append(gates, fallbackGate(minN, f.MaxBP, w.Fallbacks, w.Total))
	}
	if b := pl.Gates.BreakerOpens; b != nil {
		gates = append(gates, breakerGate(b.Max, opens))
	}
	return gates
}

// fallbackGate fails when fallbacks answered more than maxBP basis points of the
// route's requests in the window; it is inconclusive below minN requests.
func fallbackGate(minN uint64, maxBP int, fallbacks, total uint64) stats.Gate {
	g := stats.Gate{Name: "fallbacks", Unit: "ratio", Stayed: float64(maxBP) / 10000,
		Samples: stats.Samples{Moved: fallbacks, Stayed: total}}
	if total > 0 {
		g.Moved = float64(fallbacks) / float64(total)
	}
	switch {
	case total < minN:
		g.Outcome, g.Reason = stats.Inconclusive, fmt.Sprintf("fewer than %d requests", minN)
	case fallbacks*10000 > uint64(maxBP)*total:
		g.Outcome, g.Reason = stats.Fail, fmt.Sprintf("%d fallbacks of %d requests, above %s%%", fallbacks, total, conf.FormatBP(maxBP))
	default:
		g.Outcome, g.Reason = stats.Pass, fmt.Sprintf("at most %s%% of requests", conf.FormatBP(maxBP))
	}
	return g
}

// breakerGate fails when the to region's breaker opened more than limit times during
// the step. Its Moved is the count, Stayed the allowance.
func breakerGate(limit int, opens int64) stats.Gate {
	g := stats.Gate{Name: "breaker_opens", Unit: "opens", Moved: float64(max(opens, 0)), Stayed: float64(limit)}
	switch {
	case opens < 0:
		g.Outcome, g.Reason = stats.Inconclusive, "breaker opens unknown"
	case opens > int64(limit):
		g.Outcome, g.Reason = stats.Fail, fmt.Sprintf("the to region's breaker opened %d times, more than %d", opens, limit)
	default:
		g.Outcome, g.Reason = stats.Pass, fmt.Sprintf("opened %d times, at most %d", opens, limit)
	}
	return g
}
