// Package shed holds the emergency levers on load: request caps (site-wide and per
// route) with priority shedding, warm ramps when a cap is raised or lifted, and
// cross-region byte budgets. It is a leaf: the standard library and
// golang.org/x/time/rate, whose token bucket every cap and budget is.
//
// # Request path
//
// The proxy loads its snapshot once per request; the snapshot holds a *Gate (nil when
// nothing is capped):
//
//	g := snap.shed
//	if g.Active() {
//		if v := g.Admit(routeIdx, time.Now()); !v.OK() {
//			// 503, Retry-After: v.RetryAfter, X-Shift-Shed: v.Reason.String()
//		}
//	}
//	// ... routing decided region; before forwarding to another region:
//	if region != self {
//		switch bv := g.AdmitCross(routeIdx, self, region, isRead, hasCachedFallback, time.Now()); bv.Action {
//		case shed.UseFallback: // serve the cached fallback; on a miss, as Refuse
//		case shed.Pace:        // wait bv.Delay (bounded by MaxPace), then forward
//		case shed.Refuse:      // 503, Retry-After: bv.RetryAfter, X-Shift-Shed: budget
//		}
//	}
//	// after the response, for an upstream in another region:
//	g.Bytes(self, region, requestBytes+responseBytes, time.Now())
//
// Admit, AdmitCross and Bytes do not allocate and are safe for concurrent use; a nil
// *Gate admits everything. With no cap, Admit is one flag test; with caps not reached
// it costs the lock of each bucket it consults.
//
// # Control plane
//
// One [Registry] lives as long as the process. Each compiled config maps its YAML keys
// (limits.site_rps, routes[i].limit_rps, routes[i].priority, budgets, plus the runtime
// overrides of `shiftgate limit` and `shiftgate budget`, which win over the file's
// values as splits do) onto a [Limits], and the function that puts a snapshot into
// service calls [Registry.Gate] with it. The registry keeps each bucket under a stable
// identity (the site, the route name, the region pair), so a reload that leaves a cap
// unchanged leaves its tokens and any ramp in progress alone, and counters keep
// counting. When the fleet's membership changes, call [Registry.SetShare] with
// [FleetShare] of the live instances (and [Registry.SetBudgetShare] with that of the
// live instances in this region): it takes effect on the next request, keeping each
// bucket's tokens. [Gate.Stats] reads everything for the admin API and metrics.
//
// # Caps and priorities
//
// A cap is a token bucket of rate × share per second with a burst of CapBurst seconds
// (at least MinCapBurst). A route's request takes a token from its route's bucket, then
// from the site bucket, where its priority sets a floor (LowFloor, NormalFloor,
// CriticalFloor): the ordered threshold curve. As load nears the cap the site bucket
// drains, low requests are refused once it is below half its burst, normal ones below
// a fifth, critical ones only when it is empty. With a steady overload, the bucket
// settles at the floor of the lowest class still admitted, which gets what the classes
// above leave; twice the cap offered in equal thirds keeps all of critical, half of
// normal and none of low.
//
// # Ramps
//
// A cap raised with a ramp climbs linearly, in RampStep steps, from the rate in force
// to the new one, so a cold region is not hit at once; a cap lowered applies at once,
// ramp or not (it is an emergency lever). A cap lifted with a ramp climbs to a ceiling
// and then turns off: the ceiling is the higher of LiftCeiling × the rate in force and
// that rate plus the peak refused per second while it was in force, an estimate of the
// offered load it held back. A ramp is relative to the gate built before; a first gate
// (a process start) applies its caps at once.
//
// # Byte budgets
//
// With self_region set, the proxy counts the bytes it exchanges with upstreams in each
// other region (Gate.Bytes). A budget on a pair is a token bucket in bytes, rate ×
// budget share per second with a burst of BudgetBurst seconds, debited after each
// response by the bytes that crossed, so it goes into debt by what was used; before a
// request crosses, its class is shed once the bucket is below its floor: low routes
// first, then reads that have a cached fallback (answered from it), then the rest,
// critical last (see the BudgetLowFloor family). A shed request that no fallback answers
// is refused, or paced if its route asks for that: held back until the bucket is at its
// floor, spaced by one average response's worth of the budget, at most MaxPace.
//
// How to set a budget: the safe rate of a link is link / 2 × 0.8 − used ([DeriveBudget]):
// half the link, so that either direction or either of a redundant pair can carry the
// load alone; 80 % of that, for the bursts that averages hide; minus what already runs
// on the link outside shiftgate's control (replication, offline transfers). A 10 Gbit/s
// line carrying 1 Gbit/s of replication gives 10/2 × 0.8 − 1 = 3 Gbit/s, written
// `shiftgate budget idc cloud 3Gbit` (conf.ParseRate reads it).
package shed
