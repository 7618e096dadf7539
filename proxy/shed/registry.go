package shed

import (
	"sync"
	"time"
)

// Registry keeps the state of caps and budgets across reloads: token buckets keyed by
// what they cap (the site, a route name, a region pair), and the counters of each route
// and pair. A [Gate] is built from it for each compiled config and binds that state, so
// a reload that leaves a cap unchanged leaves its bucket, tokens and ramp as they were,
// and counters never go backwards.
//
// A Registry is safe for concurrent use. Its methods are for the control plane; the
// request path uses the Gate.
type Registry struct {
	now func() time.Time

	share, budgetShare atomicFloat

	mu         sync.Mutex
	site       *bucket
	caps       map[string]*bucket
	budgets    map[pairKey]*bucket
	routeStats map[string]*routeStats
	pairStats  map[pairKey]*pairStats
}

type pairKey struct{ from, to string }

// NewRegistry returns an empty registry with shares of 1. now is the clock of the
// control plane (reloads, share changes, Stats); nil means time.Now. The request path
// passes its own time.
func NewRegistry(now func() time.Time) *Registry {
	if now == nil {
		now = time.Now
	}
	r := &Registry{
		now:        now,
		caps:       make(map[string]*bucket),
		budgets:    make(map[pairKey]*bucket),
		routeStats: make(map[string]*routeStats),
		pairStats:  make(map[pairKey]*pairStats),
	}
	r.share.Store(1)
	r.budgetShare.Store(1)
	return r
}

// New returns a gate for l with a registry of its own: for a process that never
// reloads, and for tests. now is as for NewRegistry.
func New(l Limits, now func() time.Time) *Gate {
	return NewRegistry(now).Gate(l)
}

// Gate builds the gate of l, binding the registry's state to it:
//
//   - a cap or budget whose rate is unchanged keeps its bucket as it is (tokens,
//     ramp in progress);
//   - a changed rate keeps the bucket's tokens and changes its rate: a lower rate, or
//     any change with no ramp, applies at once; a higher rate with a ramp climbs from
//     the rate in force to the new one over the ramp; a lifted cap with a ramp climbs
//     to a ceiling (see LiftCeiling) and then turns off;
//   - state for caps, budgets, routes and pairs that l no longer names is dropped
//     from the registry (gates already built keep what they hold).
//
// Gate changes the buckets that the gate in service shares, so call it for the config
// that is going into service, after it validated, and publish the result: it is the
// step "a new snapshot goes into service" for caps. Calls are serialised.
func (r *Registry) Gate(l Limits) *Gate {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()

	// A new share applies to every bucket, also those whose rate is unchanged and
	// which bind therefore leaves alone.
	if s := l.Share; s > 0 && s <= 1 && s != r.share.Load() {
		r.share.Store(s)
		r.applyAll(false, now)
	}
	if s := l.BudgetShare; s > 0 && s <= 1 && s != r.budgetShare.Load() {
		r.budgetShare.Store(s)
		r.applyAll(true, now)
	}

	g := &Gate{reg: r, nregions: len(l.Regions)}
	r.site = r.bind(r.site, rateOf(l.SiteRPS), l.SiteRamp, l.SiteResume, &r.share, CapBurst, MinCapBurst, now)
	g.site = r.site

	caps := make(map[string]*bucket, len(l.Routes))
	stats := make(map[string]*routeStats, len(l.Routes))
	g.routes = make([]routeSlot, len(l.Routes))
	for i, rt := range l.Routes {
		b := caps[rt.Name] // a duplicate name (Validate refuses it) shares the first's state
		if b == nil {
			b = r.bind(r.caps[rt.Name], rateOf(rt.RPS), rt.Ramp, rt.Resume, &r.share, CapBurst, MinCapBurst, now)
			if b != nil {
				caps[rt.Name] = b
			}
		}
		st := stats[rt.Name]
		if st == nil {
			if st = r.routeStats[rt.Name]; st == nil {
				st = new(routeStats)
			}
			stats[rt.Name] = st
		}
		prio := rt.Priority
		if prio > Low {
			prio = Normal
		}
		g.routes[i] = routeSlot{cap: b, stats: st, prio: prio, mode: rt.BudgetMode, name: rt.Name}
		g.caps = g.caps || b != nil
	}
	r.caps = caps
	r.routeStats = stats
	g.caps = g.caps || g.site != nil

	idx := make(map[string]int, len(l.Regions))
	for i, name := range l.Regions {
		if _, dup := idx[name]; !dup {
			idx[name] = i
		}
	}
	n := len(l.Regions)
	g.pairs = make([]pairSlot, n*n)
	pstats := make(map[pairKey]*pairStats, n*n)
	for i, from := range l.Regions {
		for j, to := range l.Regions {
			k := pairKey{from, to}
			st := pstats[k]
			if st == nil {
				if st = r.pairStats[k]; st == nil {
					st = &pairStats{from: from, to: to}
				}
				pstats[k] = st
			}
			g.pairs[i*n+j].stats = st
		}
	}
	r.pairStats = pstats

	budgets := make(map[pairKey]*bucket, len(l.Budgets))
	for _, bg := range l.Budgets {
		i, ok1 := idx[bg.From]
		j, ok2 := idx[bg.To]
		k := pairKey{bg.From, bg.To}
		if !ok1 || !ok2 || i == j || budgets[k] != nil {
			continue
		}
		b := r.bind(r.budgets[k], rateOf(bg.BytesPerSec), bg.Ramp, bg.Resume, &r.budgetShare, BudgetBurst, 1, now)
		if b == nil {
			continue
		}
		budgets[k] = b
		g.pairs[i*n+j].budget = b
		g.budgets = true
	}
	r.budgets = budgets
	return g
}

// bind returns the bucket for a cap of rate c (0 is off) given the bucket b that the
// registry held for it, or nil when there is no cap to enforce. See Registry.Gate.
func (r *Registry) bind(b *bucket, c float64, ramp time.Duration, res Resume, share *atomicFloat, window float64, minBurst int, now time.Time) *bucket {
	t := now.UnixNano()
	if b == nil {
		if p := resumed(c, ramp, res, t); p != nil {
			return newBucket(share, window, minBurst, p, now)
		}
		if c == 0 {
			return nil
		}
		// From no cap to a cap is a lowering: at once.
		return newBucket(share, window, minBurst, &plan{from: c, to: c, start: t, end: t}, now)
	}
	p := b.plan.Load()
	if c == p.target() {
		if c == 0 && t >= p.end {
			return nil // a finished lift
		}
		return b
	}
	cur, off := p.at(t)
	switch {
	case c == 0 && (ramp <= 0 || off):
		return nil
	case c == 0:
		b.replan(&plan{from: cur, to: b.liftTo(cur), start: t, end: t + int64(ramp), lift: true}, now)
	case off || c <= cur || ramp <= 0:
		b.resetRefusals()
		b.replan(&plan{from: c, to: c, start: t, end: t}, now)
	default:
		b.resetRefusals()
		b.replan(&plan{from: cur, to: c, start: t, end: t + int64(ramp)}, now)
	}
	return b
}

// resumed returns the plan of a ramp to c that began before the registry held the cap
// (see Resume), or nil when there is none to resume at t. A start later than t (the
// writer's clock ahead of this one) is taken as t, so a skewed clock cannot hold the
// cap at From for longer than the ramp.
func resumed(c float64, ramp time.Duration, res Resume, t int64) *plan {
	from := rateOf(res.From)
	if ramp <= 0 || from == 0 || res.Start.IsZero() {
		return nil
	}
	start := min(res.Start.UnixNano(), t)
	end := start + int64(ramp)
	switch {
	case t >= end:
		return nil
	case c == 0:
		// Byte budgets have no refusal peak and a new bucket has none either: the
		// ceiling is LiftCeiling × the rate, as liftTo gives an unrefused bucket.
		return &plan{from: from, to: from * LiftCeiling, start: start, end: end, lift: true}
	case c > from:
		return &plan{from: from, to: c, start: start, end: end}
	}
	return nil
}

// SetShare sets this instance's fraction of every request cap, 1/live instances
// ([FleetShare]), and applies it at once to every cap of the registry. Tokens carry
// over: the bucket's history is kept, only its rate and burst change. Values outside
// (0, 1] are ignored. Gates built later keep this share unless their Limits.Share
// names one.
func (r *Registry) SetShare(share float64) {
	r.setShare(&r.share, share, false)
}

// SetBudgetShare is SetShare for the byte budgets: 1/live instances in this instance's
// region.
func (r *Registry) SetBudgetShare(share float64) {
	r.setShare(&r.budgetShare, share, true)
}

func (r *Registry) setShare(f *atomicFloat, share float64, budgets bool) {
	if !(share > 0 && share <= 1) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	f.Store(share)
	r.applyAll(budgets, r.now())
}

// applyAll re-applies the budgets' or the caps' buckets after a share change. r.mu is
// held.
func (r *Registry) applyAll(budgets bool, now time.Time) {
	if budgets {
		for _, b := range r.budgets {
			b.apply(now)
		}
		return
	}
	if r.site != nil {
		r.site.apply(now)
	}
	for _, b := range r.caps {
		b.apply(now)
	}
}

// Share returns this instance's fraction of the request caps.
func (r *Registry) Share() float64 { return r.share.Load() }

// BudgetShare returns this instance's fraction of the byte budgets.
func (r *Registry) BudgetShare() float64 { return r.budgetShare.Load() }

// SiteRate, RouteRate and BudgetRate return the fleet-wide rate that the site cap, the
// cap of a route, or the byte budget from one region to another has in force now,
// ramp included (before this instance's share), and false when none is in force (no
// cap, or a lift that has ended). A change that ramps up records it as its Resume.From.
func (r *Registry) SiteRate() (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rateNow(r.site)
}

// RouteRate is as SiteRate, for the cap of the route named name.
func (r *Registry) RouteRate(name string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rateNow(r.caps[name])
}

// BudgetRate is as SiteRate, for the byte budget from region from to region to.
func (r *Registry) BudgetRate(from, to string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rateNow(r.budgets[pairKey{from, to}])
}

func (r *Registry) rateNow(b *bucket) (float64, bool) {
	if b == nil {
		return 0, false
	}
	rate, off := b.plan.Load().at(r.now().UnixNano())
	return rate, !off
}
