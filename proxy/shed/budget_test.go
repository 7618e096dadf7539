package shed

import (
	"container/heap"
	"math"
	"testing"
	"time"
)

const idc, cloud = 0, 1

func budgetLimits(bytesPerSec float64, routes ...Route) Limits {
	return Limits{
		Routes:  routes,
		Regions: []string{"idc", "cloud"},
		Budgets: []Budget{{From: "idc", To: "cloud", BytesPerSec: bytesPerSec}},
	}
}

func TestBudgetOrder(t *testing.T) {
	routes := []Route{
		{Name: "low", Priority: Low},
		{Name: "low-paced", Priority: Low, BudgetMode: BudgetPace},
		{Name: "normal"},
		{Name: "normal-paced", BudgetMode: BudgetPace},
		{Name: "critical", Priority: Critical},
	}
	const low, lowPaced, normal, normalPaced, critical = 0, 1, 2, 3, 4
	type req struct {
		route        int
		read, cached bool
	}
	// The budget is 1000 B/s, so its burst is 1000 B and a debit of n bytes from full
	// leaves the level at 1 - n/1000.
	for _, tc := range []struct {
		debit int64
		want  map[req]Action
	}{
		{0, map[req]Action{
			{low, false, false}: Forward, {normal, true, true}: Forward, {critical, false, false}: Forward,
		}},
		{600, map[req]Action{ // level 0.4: low is shed
			{low, false, false}:       Refuse,
			{low, true, false}:        Refuse,
			{low, true, true}:         UseFallback,
			{lowPaced, false, false}:  Pace,
			{normal, true, true}:      Forward,
			{normal, false, true}:     Forward, // a write never takes a fallback
			{normalPaced, true, true}: Forward,
			{critical, true, true}:    Forward,
		}},
		{900, map[req]Action{ // level 0.1: reads with a cached fallback take it
			{normal, true, true}:      UseFallback,
			{normalPaced, true, true}: UseFallback,
			{critical, true, true}:    UseFallback,
			{normal, true, false}:     Forward,
			{normal, false, false}:    Forward,
			{critical, false, false}:  Forward,
		}},
		{1100, map[req]Action{ // level -0.1: normal is shed
			{normal, false, false}:      Refuse,
			{normal, true, false}:       Refuse,
			{normalPaced, false, false}: Pace,
			{critical, false, false}:    Forward,
			{critical, true, false}:     Forward,
		}},
		{1300, map[req]Action{ // level -0.3: critical too
			{critical, false, false}: Refuse,
			{critical, true, true}:   UseFallback,
		}},
	} {
		c := newClock()
		g := New(budgetLimits(1000, routes...), c.now)
		g.Bytes(idc, cloud, tc.debit, c.now())
		for r, want := range tc.want {
			v := g.AdmitCross(r.route, idc, cloud, r.read, r.cached, c.now())
			if v.Action != want {
				t.Errorf("level %.1f, route %s, read %v, cached %v: %v, want %v",
					1-float64(tc.debit)/1000, routes[r.route].Name, r.read, r.cached, v.Action, want)
			}
			if (v.Action == Refuse || v.Action == UseFallback) && v.RetryAfter < 1 {
				t.Errorf("%v without Retry-After", v.Action)
			}
			if v.Action == Pace && !(v.Delay > 0 && v.Delay <= MaxPace) {
				t.Errorf("paced with delay %v", v.Delay)
			}
		}
		// The other direction and the same region have no budget.
		if v := g.AdmitCross(low, cloud, idc, false, false, c.now()); v.Action != Forward {
			t.Errorf("cloud→idc has no budget: %v", v.Action)
		}
	}
}

func TestBudgetDebt(t *testing.T) {
	c := newClock()
	g := New(budgetLimits(1000, Route{Name: "n"}, Route{Name: "c", Priority: Critical}, Route{Name: "l", Priority: Low}), c.now)
	// One response of 5 s of the budget: the bucket is 4 s in debt.
	g.Bytes(idc, cloud, 5000, c.now())
	if lv := g.Stats().Pairs[0].Level; math.Abs(lv-(-4)) > 1e-9 {
		t.Errorf("level after 5000 B = %v, want -4", lv)
	}
	// Retry-After is the time back to the class's floor: 4 s, 3.75 s, 4.5 s.
	for route, want := range []int{4, 4, 5} {
		if v := g.AdmitCross(route, idc, cloud, false, false, c.now()); v.Action != Refuse || v.RetryAfter != want {
			t.Errorf("route %d in debt: %+v, want refuse, Retry-After %d", route, v, want)
		}
	}
	// The debt is repaid at the budget's rate.
	c.advance(4 * time.Second)
	if v := g.AdmitCross(0, idc, cloud, false, false, c.now()); v.Action != Forward {
		t.Errorf("after 4 s: %v, want forward", v.Action)
	}
	// A huge response debits at most maxDebt seconds.
	g.Bytes(idc, cloud, 1<<40, c.now())
	if lv := g.Stats().Pairs[0].Level; lv < -maxDebt-1 {
		t.Errorf("level after 1 TiB = %v, want no lower than %d", lv, -maxDebt)
	}
	st := g.Stats()
	if st.Routes[0].Refused.Budget != 1 || st.Routes[1].Refused.Budget != 1 || st.Routes[2].Refused.Budget != 1 {
		t.Errorf("budget refusals by route: %+v", st.Routes)
	}
	if p := st.Pairs[0]; p.Bytes != 5000+1<<40 || p.Responses != 2 {
		t.Errorf("pair counters: %+v", p)
	}
}

func TestBudgetHoldsRate(t *testing.T) {
	const budget = 1e6 // bytes per second
	for _, tc := range []struct {
		name   string
		routes []Route
		flows  []flow
	}{
		{"refuse, twice the budget", []Route{{Name: "api"}},
			[]flow{{route: 0, rps: 2000, size: 1000}}},
		{"pace, twice the budget", []Route{{Name: "api", BudgetMode: BudgetPace}},
			[]flow{{route: 0, rps: 2000, size: 1000}}},
		{"large responses", []Route{{Name: "dl"}},
			[]flow{{route: 0, rps: 30, size: 100_000}}},
		{"mixed classes", []Route{{Name: "prefetch", Priority: Low}, {Name: "feed"}, {Name: "pay", Priority: Critical}},
			[]flow{
				{route: 0, rps: 400, size: 1000, read: true},
				{route: 1, rps: 400, size: 1000, read: true, cached: true},
				{route: 1, rps: 400, size: 1000},
				{route: 2, rps: 400, size: 1000},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			g := New(budgetLimits(budget, tc.routes...), c.now)
			res := crossLoad(g, c, 30*time.Second, 30*time.Millisecond, tc.flows)
			var steady int64
			for _, b := range res.bytesPerSec[5:30] {
				steady += b
			}
			t.Logf("bytes/s over seconds 5-30: %.0f (budget %.0f)", float64(steady)/25, budget)
			within(t, "bytes/s over seconds 5-30", float64(steady)/25, budget, 0.10)
			// All of it, up to the last paced request: the initial burst is in there.
			var all int64
			span := 0
			for s, b := range res.bytesPerSec {
				if all += b; b > 0 {
					span = s + 1
				}
			}
			within(t, "bytes/s over the whole run", float64(all)/float64(span), budget, 0.10)
			st := g.Stats()
			if tc.routes[0].BudgetMode == BudgetPace && st.Routes[0].Paced == 0 {
				t.Error("nothing paced")
			}
			if tc.name == "mixed classes" {
				kept := func(i int) float64 { return float64(res.actions[i][Forward]) / float64(res.offered[i]) }
				if kept(2) < 0.99 || kept(3) < 0.99 {
					t.Errorf("normal writes kept %.3f, critical %.3f: want all", kept(2), kept(3))
				}
				if kept(0) >= kept(1) {
					t.Errorf("low kept %.3f, normal reads %.3f: want low shed first", kept(0), kept(1))
				}
				// Writes and critical take 0.8 of the budget; the reads that have a
				// fallback get the 0.2 left, half their offer, and the fallback answers
				// the rest.
				within(t, "normal reads forwarded", kept(1), 0.5, 0.2)
				if fb := res.actions[1][UseFallback]; fb+res.actions[1][Forward] != res.offered[1] {
					t.Errorf("normal reads: %v, want forwarded or answered from the fallback", res.actions[1])
				}
				if kept(0) > 0.05 {
					t.Errorf("low kept %.3f, want it shed", kept(0))
				}
			}
		})
	}
}

type flow struct {
	route        int
	rps          float64
	size         int64 // bytes per request and response together
	read, cached bool
}

type crossResult struct {
	offered     []int
	actions     [][Refuse + 1]int // per flow, by Action
	bytesPerSec []int64           // by the second Bytes was called in
}

// crossLoad plays open-loop flows across idc→cloud for d: each request asks
// AdmitCross, and one that crosses (at once or paced) reports its bytes latency after
// it left.
func crossLoad(g *Gate, c *clock, d, latency time.Duration, flows []flow) crossResult {
	res := crossResult{
		offered:     make([]int, len(flows)),
		actions:     make([][Refuse + 1]int, len(flows)),
		bytesPerSec: make([]int64, int(d/time.Second)+int(MaxPace/time.Second)+2),
	}
	start := c.now()
	var arrivals []event
	for i, f := range flows {
		for k := range int(f.rps * d.Seconds()) {
			arrivals = append(arrivals, event{at: start.Add(time.Duration(float64(k) / f.rps * float64(time.Second))), flow: i})
		}
	}
	var q events
	for _, e := range arrivals {
		heap.Push(&q, e)
	}
	for q.Len() > 0 {
		e := heap.Pop(&q).(event)
		c.set(e.at)
		f := flows[e.flow]
		if e.done {
			g.Bytes(idc, cloud, f.size, e.at)
			res.bytesPerSec[int(e.at.Sub(start)/time.Second)] += f.size
			continue
		}
		res.offered[e.flow]++
		v := g.AdmitCross(f.route, idc, cloud, f.read, f.cached, e.at)
		res.actions[e.flow][v.Action]++
		switch v.Action {
		case Forward:
			heap.Push(&q, event{at: e.at.Add(latency), flow: e.flow, done: true})
		case Pace:
			heap.Push(&q, event{at: e.at.Add(v.Delay + latency), flow: e.flow, done: true})
		}
	}
	return res
}

type event struct {
	at   time.Time
	flow int
	done bool
}

type events []event

func (q events) Len() int           { return len(q) }
func (q events) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q events) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *events) Push(x any)        { *q = append(*q, x.(event)) }
func (q *events) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func TestBudgetShareAndRamp(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	l := budgetLimits(1e6)
	g := reg.Gate(l)
	g.SetBudgetShare(FleetShare(4))
	if r := g.Stats().Pairs[0].Budget.Rate; r != 250_000 {
		t.Errorf("budget at a share of 1/4: %v, want 250000", r)
	}
	if reg.Share() != 1 {
		t.Errorf("the budget share moved the cap share to %v", reg.Share())
	}
	l.Budgets[0].BytesPerSec = 2e6
	l.Budgets[0].Ramp = 10 * time.Second
	g = reg.Gate(l)
	c.advance(5 * time.Second)
	if b := g.Stats().Pairs[0].Budget; !b.Ramping || math.Abs(b.Rate-375_000) > 1 {
		t.Errorf("budget halfway up its ramp: %+v, want 375000", b)
	}
	l.Budgets = nil
	if g = reg.Gate(l); g.Active() {
		t.Error("a gate without budgets is Active")
	}
}
