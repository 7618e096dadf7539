package shed

import (
	"math"
	"time"
)

// Reason says why a request was refused. The zero value, NotShed, means it was not.
type Reason uint8

// The reasons; their strings are the values of the X-Shift-Shed header.
const (
	NotShed  Reason = iota // admitted
	BySite                 // the site-wide cap
	ByRoute                // the route's cap
	ByBudget               // a cross-region byte budget
)

// String returns "site", "route", "budget", or "" for NotShed. It does not allocate.
func (r Reason) String() string {
	switch r {
	case BySite:
		return "site"
	case ByRoute:
		return "route"
	case ByBudget:
		return "budget"
	}
	return ""
}

// The priority floors of the site cap: a request takes a token from the site bucket
// only while at least floor × burst tokens would be left after it. As load nears the
// cap the bucket drains, so low requests stop first (at half the burst), normal ones
// next (at a fifth) and critical ones only when it is empty. Under a steady overload
// the bucket settles at the floor of the lowest class still admitted, and that class
// gets what the classes above it leave of the cap.
//
// A route's own cap has no floors: its requests share one priority.
const (
	LowFloor      = 0.5
	NormalFloor   = 0.2
	CriticalFloor = 0.0
)

func capFloor(p Priority) float64 {
	switch p {
	case Low:
		return LowFloor
	case Critical:
		return CriticalFloor
	}
	return NormalFloor
}

// MaxRetryAfter bounds the Retry-After of a refusal, in seconds.
const MaxRetryAfter = 60

// Verdict is what Admit decided. The zero value admits.
type Verdict struct {
	// Reason is NotShed when the request was admitted, else what refused it.
	Reason Reason
	// RetryAfter is, on a refusal, the Retry-After header in seconds: how long until
	// the bucket that refused has the tokens this request needs, rounded up, at least
	// 1 and at most MaxRetryAfter.
	RetryAfter int
}

// OK reports whether the request was admitted.
func (v Verdict) OK() bool { return v.Reason == NotShed }

func retryAfter(wait time.Duration) int {
	s := math.Ceil(wait.Seconds())
	switch {
	case s < 1:
		return 1
	case s > MaxRetryAfter:
		return MaxRetryAfter
	}
	return int(s)
}

// Gate enforces the caps and budgets of one compiled config. It is immutable once
// built and safe for concurrent use; the buckets and counters it binds belong to its
// [Registry] and outlive it.
//
// A nil *Gate is valid and caps nothing: every method admits, forwards or does
// nothing.
type Gate struct {
	reg      *Registry
	caps     bool // a site cap or a route cap
	budgets  bool // a byte budget
	site     *bucket
	routes   []routeSlot
	nregions int
	pairs    []pairSlot // [from*nregions + to]
}

type routeSlot struct {
	cap   *bucket
	stats *routeStats
	prio  Priority
	mode  BudgetMode
	name  string
}

type pairSlot struct {
	stats  *pairStats
	budget *bucket
}

// Active reports whether g caps or budgets anything. When it does not, the request
// path may skip Admit and AdmitCross; Bytes still counts bytes per region pair, which
// the stats want whenever self_region is set.
func (g *Gate) Active() bool { return g != nil && (g.caps || g.budgets) }

// Admit decides whether a request of route (an index into Limits.Routes) may go on,
// under the route's cap and then the site cap with the floor of the route's priority.
// A route index out of range has no route cap and normal priority, and its refusals
// are not counted. It does not allocate; with no request cap it returns at once.
//
// now is the current time (time.Now). A time older than one a bucket has already seen
// counts as that one, so callers racing for a bucket never credit an interval twice.
//
// A request the route cap admits and the site cap refuses has used a token of its route
// (a limiter cannot give one back): a route falls short of its own cap only while the
// site cap holds it below it anyway.
func (g *Gate) Admit(route int, now time.Time) Verdict {
	if g == nil || !g.caps {
		return Verdict{}
	}
	// Fast path: a cap not reached costs a lock of each bucket.
	t := now.UnixNano()
	var rs *routeSlot
	prio := Normal
	if uint(route) < uint(len(g.routes)) {
		rs = &g.routes[route]
		prio = rs.prio
		if b := rs.cap; b != nil {
			if ok, wait := b.take(now, t, 0); !ok {
				// Slow path: a refusal.
				b.noteRefusal(t)
				rs.stats.refused[ByRoute].Add(1)
				return Verdict{Reason: ByRoute, RetryAfter: retryAfter(wait)}
			}
		}
	}
	if b := g.site; b != nil {
		if ok, wait := b.take(now, t, capFloor(prio)); !ok {
			b.noteRefusal(t)
			if rs != nil {
				rs.stats.refused[BySite].Add(1)
			}
			return Verdict{Reason: BySite, RetryAfter: retryAfter(wait)}
		}
	}
	return Verdict{}
}

// SetShare is Registry.SetShare of g's registry: it changes every gate built from it.
func (g *Gate) SetShare(share float64) {
	if g != nil {
		g.reg.SetShare(share)
	}
}

// SetBudgetShare is Registry.SetBudgetShare of g's registry.
func (g *Gate) SetBudgetShare(share float64) {
	if g != nil {
		g.reg.SetBudgetShare(share)
	}
}

// Registry returns the registry g was built from.
func (g *Gate) Registry() *Registry {
	if g == nil {
		return nil
	}
	return g.reg
}
