package shed

import (
	"math"
	"sync/atomic"
	"time"
)

// routeStats are the counters of one route, kept in the registry under its name.
type routeStats struct {
	refused  [ByBudget + 1]atomic.Uint64 // by Reason; [NotShed] unused
	paced    atomic.Uint64
	fallback atomic.Uint64
}

// pairStats are the counters of one region pair, kept in the registry under its names.
type pairStats struct {
	from, to  string
	bytes     atomic.Uint64
	responses atomic.Uint64
	paceAt    atomic.Int64 // Unix ns of the next free pacing slot
}

// Stats is a reading of a gate's caps, budgets and counters. Counters are cumulative
// since the registry first saw the route or pair, across reloads.
type Stats struct {
	// Share and BudgetShare are the registry's shares (see Limits).
	Share, BudgetShare float64
	// Site is the site-wide cap.
	Site Cap
	// Routes are in the order of Limits.Routes.
	Routes []RouteStats
	// Pairs are the region pairs that have a budget or saw bytes, from-major in the
	// order of Limits.Regions.
	Pairs []PairStats
}

// Cap is the reading of one cap or budget.
type Cap struct {
	// Rate is what this instance enforces now, with its share and any ramp (which it
	// follows in RampStep steps): requests or bytes per second. 0 is no cap; +Inf is
	// a lifted cap, off since its ramp ended.
	Rate float64
	// Target is the fleet-wide rate the cap was set to (0 while a lift ramps).
	Target float64
	// Ramping is true while Rate climbs to a new value.
	Ramping bool
}

// Refusals counts refused requests by reason.
type Refusals struct {
	Site, Route, Budget uint64
}

// RouteStats is the reading of one route.
type RouteStats struct {
	Name       string
	Priority   Priority
	BudgetMode BudgetMode
	Cap        Cap
	Refused    Refusals
	// Paced and Fallback count requests a budget paced or sent to the cached fallback.
	Paced, Fallback uint64
}

// PairStats is the reading of one region pair.
type PairStats struct {
	From, To string
	// Bytes and Responses are what Gate.Bytes counted.
	Bytes, Responses uint64
	// Budget is the pair's byte budget, in bytes per second.
	Budget Cap
	// Level is the budget's bucket as a fraction of its burst: 1 full, below 0 in
	// debt (see the budget floors). 0 without a budget.
	Level float64
}

// Stats reads g. It allocates and is meant for the admin API and metrics, not the
// request path. A nil gate reads as empty.
func (g *Gate) Stats() Stats {
	if g == nil {
		return Stats{}
	}
	now := g.reg.now()
	s := Stats{
		Share:       g.reg.share.Load(),
		BudgetShare: g.reg.budgetShare.Load(),
		Site:        readCap(g.site, now),
		Routes:      make([]RouteStats, len(g.routes)),
	}
	for i, rs := range g.routes {
		st := rs.stats
		s.Routes[i] = RouteStats{
			Name:       rs.name,
			Priority:   rs.prio,
			BudgetMode: rs.mode,
			Cap:        readCap(rs.cap, now),
			Refused: Refusals{
				Site:   st.refused[BySite].Load(),
				Route:  st.refused[ByRoute].Load(),
				Budget: st.refused[ByBudget].Load(),
			},
			Paced:    st.paced.Load(),
			Fallback: st.fallback.Load(),
		}
	}
	for _, ps := range g.pairs {
		st := ps.stats
		p := PairStats{
			From: st.from, To: st.to,
			Bytes: st.bytes.Load(), Responses: st.responses.Load(),
			Budget: readCap(ps.budget, now),
		}
		if ps.budget == nil && p.Responses == 0 {
			continue
		}
		if ps.budget != nil && !ps.budget.off.Load() {
			p.Level, _ = ps.budget.level(now)
		}
		s.Pairs = append(s.Pairs, p)
	}
	return s
}

func readCap(b *bucket, now time.Time) Cap {
	if b == nil {
		return Cap{}
	}
	t := now.UnixNano()
	b.refresh(now, t) // a ramp step that is due, as a request would take it
	p := b.plan.Load()
	c := Cap{Target: p.target(), Ramping: t < p.end}
	if _, off := p.at(t); off || b.off.Load() {
		c.Rate = math.Inf(1)
		return c
	}
	c.Rate = b.rate.Load()
	return c
}
