package shed

import "time"

// The floors of a byte budget, as fractions of its burst (one second of the budget).
// The budget's bucket is debited after the fact by the bytes that crossed, so it goes
// below zero (into debt) when they were more than it held. Before a request is
// forwarded across, its class is shed once the bucket's level is below its floor:
//
//   - low routes below BudgetLowFloor: shed first;
//   - reads with a cached fallback below BudgetFallbackFloor: answered from it;
//   - the rest of normal routes below BudgetNormalFloor (empty);
//   - the rest of critical routes below BudgetCriticalFloor (a quarter second of
//     debt): shed last.
//
// A shed request is answered from its cached fallback when it is a read that has one
// (whatever its priority), else paced when its route's BudgetMode is BudgetPace, else
// refused. A fallback comes before pacing because it costs the link nothing.
const (
	BudgetLowFloor      = 0.5
	BudgetFallbackFloor = 0.25
	BudgetNormalFloor   = 0.0
	BudgetCriticalFloor = -0.25
)

func budgetFloor(p Priority) float64 {
	switch p {
	case Low:
		return BudgetLowFloor
	case Critical:
		return BudgetCriticalFloor
	}
	return BudgetNormalFloor
}

// MaxPace is the longest a paced request is held back; one that would wait longer is
// refused.
const MaxPace = 5 * time.Second

// defaultResponseBytes is the size a pair's pacing assumes before it saw a response.
const defaultResponseBytes = 16 << 10

// Action is what AdmitCross decided. The zero value, Forward, lets the request cross.
type Action uint8

// The actions.
const (
	Forward     Action = iota // forward to the other region
	UseFallback               // answer from the cached fallback; forward nothing
	Pace                      // wait BudgetVerdict.Delay, then forward
	Refuse                    // 503, Retry-After, X-Shift-Shed: budget
)

// String returns "forward", "fallback", "pace" or "refuse".
func (a Action) String() string {
	switch a {
	case Forward:
		return "forward"
	case UseFallback:
		return "fallback"
	case Pace:
		return "pace"
	case Refuse:
		return "refuse"
	}
	return "action?"
}

// BudgetVerdict is what AdmitCross decided. The zero value forwards.
type BudgetVerdict struct {
	Action Action
	// Delay is, for Pace, how long to hold the request before forwarding.
	Delay time.Duration
	// RetryAfter is, for Refuse and UseFallback, the Retry-After in seconds (as in
	// Verdict): UseFallback carries it for a fallback that turns out to miss, which
	// the caller then answers as Refuse.
	RetryAfter int
}

// Bytes counts n bytes (request and response together) exchanged with an upstream of
// region to by an instance of region from, both indexes into Limits.Regions, and
// debits the pair's budget if it has one. Call it after the response, for upstreams
// not in this instance's own region. Indexes out of range and n <= 0 are ignored. It
// does not allocate.
//
// Bytes before the budget is known to be crossed cannot be refused, so a budget holds
// the pair's rate on average, not byte by byte: a response larger than the bucket puts
// it into debt that later requests repay.
func (g *Gate) Bytes(from, to int, n int64, now time.Time) {
	if g == nil || n <= 0 {
		return
	}
	ps := g.pair(from, to)
	if ps == nil {
		return
	}
	ps.stats.bytes.Add(uint64(n))
	ps.stats.responses.Add(1)
	if b := ps.budget; b != nil {
		b.refresh(now, now.UnixNano())
		if !b.off.Load() {
			b.debit(now, n)
		}
	}
}

// AdmitCross decides, before a request of route is forwarded from region from to
// region to, whether the pair's byte budget lets it cross (see the budget floors).
// isRead is true for GET, HEAD and OPTIONS; hasCachedFallback says whether a cached
// fallback could answer it (the route has one enabled, or a cheap lookup hit). With
// no budget on the pair it returns Forward at once; it does not allocate.
//
// Sheds are counted on the route: as budget refusals, fallbacks or paced requests.
// now is as for Admit.
func (g *Gate) AdmitCross(route, from, to int, isRead, hasCachedFallback bool, now time.Time) BudgetVerdict {
	if g == nil || !g.budgets {
		return BudgetVerdict{}
	}
	ps := g.pair(from, to)
	if ps == nil || ps.budget == nil {
		return BudgetVerdict{}
	}
	b := ps.budget
	b.refresh(now, now.UnixNano())
	if b.off.Load() {
		return BudgetVerdict{}
	}
	var rs *routeSlot
	prio, mode := Normal, BudgetRefuse
	if uint(route) < uint(len(g.routes)) {
		rs = &g.routes[route]
		prio, mode = rs.prio, rs.mode
	}
	fallback := isRead && hasCachedFallback
	floor := budgetFloor(prio)
	if fallback {
		floor = max(floor, BudgetFallbackFloor)
	}
	level, tokens := b.level(now)
	if level >= floor {
		return BudgetVerdict{}
	}

	// Slow path: the pair is over this request's part of the budget.
	wait := b.waitFor(floor*float64(b.burst.Load()) - tokens)
	switch {
	case fallback:
		if rs != nil {
			rs.stats.fallback.Add(1)
		}
		return BudgetVerdict{Action: UseFallback, RetryAfter: retryAfter(wait)}
	case mode == BudgetPace:
		if d, ok := ps.pace(now.UnixNano(), wait, b.rate.Load()); ok {
			if rs != nil {
				rs.stats.paced.Add(1)
			}
			return BudgetVerdict{Action: Pace, Delay: d}
		}
	}
	if rs != nil {
		rs.stats.refused[ByBudget].Add(1)
	}
	return BudgetVerdict{Action: Refuse, RetryAfter: retryAfter(wait)}
}

func (g *Gate) pair(from, to int) *pairSlot {
	if uint(from) >= uint(g.nregions) || uint(to) >= uint(g.nregions) {
		return nil
	}
	return &g.pairs[from*g.nregions+to]
}

// pace gives a paced request its slot: no earlier than wait from t, when the bucket is
// back at the floor, and no earlier than one average response's worth of the budget
// after the previous paced request, so that held requests are released at the rate the
// budget affords rather than all at once. It returns false when the slot is further
// than MaxPace.
func (ps *pairSlot) pace(t int64, wait time.Duration, rate float64) (time.Duration, bool) {
	st := ps.stats
	avg := float64(defaultResponseBytes)
	if n := st.responses.Load(); n > 0 {
		avg = float64(st.bytes.Load()) / float64(n)
	}
	slot := int64(maxWait)
	if rate > 0 {
		slot = int64(min(avg/rate*float64(time.Second), float64(maxWait)))
	}
	earliest := t + int64(wait)
	for {
		prev := st.paceAt.Load()
		start := max(prev, earliest)
		d := time.Duration(start - t)
		if d > MaxPace {
			return 0, false
		}
		if st.paceAt.CompareAndSwap(prev, start+slot) {
			return d, true
		}
	}
}
