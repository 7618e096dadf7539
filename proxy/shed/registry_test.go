package shed

import (
	"math"
	"testing"
	"time"
)

func site(rps float64, ramp time.Duration) Limits {
	return Limits{SiteRPS: rps, SiteRamp: ramp, Routes: []Route{{Name: "feed", Priority: Critical}}}
}

func TestRampRaiseIsLinear(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	g := reg.Gate(site(1000, 0))
	offer(g, c, 5000, 2*time.Second, 0)

	g = reg.Gate(site(2000, 10*time.Second))
	if st := g.Stats().Site; !st.Ramping || st.Target != 2000 {
		t.Errorf("after the raise: %+v, want ramping to 2000", st)
	}
	_, _, perSec := offer(g, c, 5000, 12*time.Second, 0)
	for s := range 10 {
		// The rate climbs 100/s each second: second s averages 1000 + 100(s + ½).
		within(t, "admitted in ramp second "+itoa(s), float64(perSec[s]), 1000+100*(float64(s)+0.5), 0.10)
		if s > 0 && perSec[s] <= perSec[s-1] {
			t.Errorf("second %d admitted %d, not more than second %d (%d)", s, perSec[s], s-1, perSec[s-1])
		}
	}
	within(t, "admitted after the ramp", float64(perSec[11]), 2000, 0.10)
	if st := g.Stats().Site; st.Ramping || st.Rate != 2000 {
		t.Errorf("after the ramp: %+v, want 2000, not ramping", st)
	}
}

func TestRampLowerIsImmediate(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	g := reg.Gate(site(2000, 0))
	offer(g, c, 5000, time.Second, 0)
	g = reg.Gate(site(500, time.Minute))
	if st := g.Stats().Site; st.Ramping || st.Rate != 500 {
		t.Errorf("after lowering with a ramp: %+v, want 500 at once", st)
	}
	_, _, perSec := offer(g, c, 5000, 2*time.Second, 0)
	within(t, "first second after lowering", float64(perSec[0]), 500, 0.10)
}

func TestRampRaiseDuringRamp(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	reg.Gate(site(1000, 0))
	reg.Gate(site(2000, 10*time.Second))
	c.advance(5 * time.Second) // halfway: 1500
	g := reg.Gate(site(3000, 10*time.Second))
	if st := g.Stats().Site; !st.Ramping || math.Abs(st.Rate-1500) > 1 {
		t.Errorf("a new ramp starts from the rate in force: %+v, want 1500", st)
	}
	c.advance(5 * time.Second)
	if st := g.Stats().Site; math.Abs(st.Rate-2250) > 1 {
		t.Errorf("halfway through the second ramp: %+v, want 2250", st)
	}
}

func TestLiftWithRamp(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	g := reg.Gate(site(1000, 0))
	// 3000/s offered: 2000/s refused, so the ceiling is the 3000/s the cap held back.
	offer(g, c, 3000, 3*time.Second, 0)

	g = reg.Gate(site(0, 10*time.Second))
	if !g.Active() {
		t.Fatal("a cap lifted with a ramp is not Active while it ramps")
	}
	st := g.Stats().Site
	if !st.Ramping || st.Target != 0 {
		t.Errorf("lifting: %+v, want ramping to off", st)
	}
	_, _, perSec := offer(g, c, 5000, 12*time.Second, 0)
	for s := range 10 {
		within(t, "admitted in lift second "+itoa(s), float64(perSec[s]), 1000+200*(float64(s)+0.5), 0.10)
	}
	if perSec[11] != 5000 {
		t.Errorf("after the lift: %d of 5000 admitted, want all", perSec[11])
	}
	if st := g.Stats().Site; !math.IsInf(st.Rate, 1) || st.Ramping {
		t.Errorf("after the lift: %+v, want off", st)
	}
	// The next reload with the cap still off drops the bucket.
	if g = reg.Gate(site(0, 10*time.Second)); g.Active() || g.Stats().Site != (Cap{}) {
		t.Errorf("a finished lift is still there: %+v", g.Stats().Site)
	}
}

func TestLiftCeilingWithoutRefusals(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	g := reg.Gate(site(1000, 0))
	offer(g, c, 500, time.Second, 0) // never reached
	reg.Gate(site(0, 10*time.Second))
	c.advance(10*time.Second - time.Nanosecond)
	if got := g.Stats().Site.Rate; math.Abs(got-LiftCeiling*1000) > 1 {
		t.Errorf("end of a lift that refused nothing: %v, want %v", got, LiftCeiling*1000)
	}
}

// TestLiftCeilingForgetsEarlierCaps: a lift climbs by the refusals of the cap in
// force, not by an overload an earlier cap refused. Before, the peak was never reset:
// a 50 rps cap that refused nothing, lifted after a 100 rps cap had refused 2000/s,
// climbed toward 2050 instead of 100.
func TestLiftCeilingForgetsEarlierCaps(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	g := reg.Gate(site(1000, 0))
	offer(g, c, 3000, 3*time.Second, 0) // 2000/s refused under the 1000 cap
	g = reg.Gate(site(500, 0))          // a new cap, then no load
	c.advance(3 * time.Second)
	reg.Gate(site(0, 10*time.Second))
	c.advance(10*time.Second - time.Nanosecond)
	if got := g.Stats().Site.Rate; math.Abs(got-LiftCeiling*500) > 1 {
		t.Errorf("end of the lift of a cap that refused nothing: %v, want %v (the earlier cap's refusals forgotten)", got, LiftCeiling*500)
	}
}

func TestReloadKeepsBuckets(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	limits := Limits{SiteRPS: 1000, Routes: []Route{{Name: "feed", RPS: 100}, {Name: "search"}}}
	g := reg.Gate(limits)
	if v := drain(g, 0, c.now()); v.Reason != ByRoute {
		t.Fatalf("draining feed: %+v", v)
	}
	refused := g.Stats().Routes[0].Refused.Route

	// Same caps, a route added in front: feed's bucket and counters follow its name.
	limits.Routes = append([]Route{{Name: "new"}}, limits.Routes...)
	g2 := reg.Gate(limits)
	if v := g2.Admit(1, c.now()); v.Reason != ByRoute {
		t.Errorf("after a reload that kept feed's cap: %+v, want still drained", v)
	}
	if got := g2.Stats().Routes[1].Refused.Route; got != refused+1 {
		t.Errorf("feed's refusals after the reload = %d, want %d", got, refused+1)
	}

	// A ramp in progress survives a reload that does not touch it.
	limits.SiteRPS = 2000
	limits.SiteRamp = 10 * time.Second
	reg.Gate(limits)
	c.advance(5 * time.Second)
	limits.Routes = limits.Routes[1:]
	g3 := reg.Gate(limits)
	if st := g3.Stats().Site; !st.Ramping || math.Abs(st.Rate-1500) > 1 {
		t.Errorf("ramp after an unrelated reload: %+v, want 1500, ramping", st)
	}

	// A route that goes away loses its counters; one that comes back starts afresh.
	g4 := reg.Gate(Limits{SiteRPS: 2000, Routes: []Route{{Name: "search"}}})
	g5 := reg.Gate(limits)
	if got := g5.Stats().Routes[0].Refused; got != (Refusals{}) || len(g4.Stats().Routes) != 1 {
		t.Errorf("feed came back with counters %+v", got)
	}

	// A fresh registry knows nothing: the bucket is full again.
	if v := New(limits, c.now).Admit(0, c.now()); !v.OK() {
		t.Errorf("a new registry's gate: %+v", v)
	}
}

func TestChangedCapKeepsTokens(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	g := reg.Gate(site(1000, 0))
	drain(g, 0, c.now())
	// Raising the cap without a ramp changes the rate, not the tokens: a drained
	// bucket stays drained until it refills at the new rate.
	g = reg.Gate(site(5000, 0))
	if v := g.Admit(0, c.now()); v.OK() {
		t.Error("raising a cap refilled its bucket")
	}
	c.advance(10 * time.Millisecond) // 50 tokens at 5000/s
	n := 0
	for g.Admit(0, c.now()).OK() {
		n++
	}
	if n < 45 || n > 55 {
		t.Errorf("after 10 ms at 5000/s: %d admitted, want about 50", n)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + itoa(i%10)
}

// TestResumeRampInNewRegistry: a registry that holds no bucket for a cap (a process
// that started during a ramp) resumes a ramp up where it has got to, and applies
// everything else as a registry without history does.
func TestResumeRampInNewRegistry(t *testing.T) {
	begun := epoch.Add(-5 * time.Second) // a 10 s ramp from 1000, half done
	cases := []struct {
		name    string
		rps     float64
		ramp    time.Duration
		res     Resume
		want    float64 // the rate in force now; 0 with wantOff
		ramping bool
		wantOff bool // no cap in force
	}{
		{"raise halfway", 2000, 10 * time.Second, Resume{From: 1000, Start: begun}, 1500, true, false},
		{"raise ended", 2000, 4 * time.Second, Resume{From: 1000, Start: begun}, 2000, false, false},
		{"raise not begun by this clock", 2000, 10 * time.Second, Resume{From: 1000, Start: epoch.Add(time.Hour)}, 1000, true, false},
		{"lift halfway: to 2 × 1000", 0, 10 * time.Second, Resume{From: 1000, Start: begun}, 1500, true, false},
		{"lift ended", 0, 4 * time.Second, Resume{From: 1000, Start: begun}, 0, false, true},
		{"lowering applies at once", 500, 10 * time.Second, Resume{From: 1000, Start: begun}, 500, false, false},
		{"no ramp", 2000, 0, Resume{From: 1000, Start: begun}, 2000, false, false},
		{"nothing to resume", 2000, 10 * time.Second, Resume{}, 2000, false, false},
		{"no start", 2000, 10 * time.Second, Resume{From: 1000}, 2000, false, false},
		{"from off", 2000, 10 * time.Second, Resume{Start: begun}, 2000, false, false},
		{"from not finite", 2000, 10 * time.Second, Resume{From: math.Inf(1), Start: begun}, 2000, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, kind := range []string{"site", "route", "budget"} {
				c := newClock()
				reg := NewRegistry(c.now)
				l := Limits{Regions: []string{"idc", "cloud"}, Routes: []Route{{Name: "feed"}}}
				switch kind {
				case "site":
					l.SiteRPS, l.SiteRamp, l.SiteResume = tc.rps, tc.ramp, tc.res
				case "route":
					l.Routes[0].RPS, l.Routes[0].Ramp, l.Routes[0].Resume = tc.rps, tc.ramp, tc.res
				case "budget":
					l.Budgets = []Budget{{From: "idc", To: "cloud", BytesPerSec: tc.rps, Ramp: tc.ramp, Resume: tc.res}}
				}
				if err := l.Validate(); err != nil && !math.IsInf(tc.res.From, 0) {
					t.Fatal(err)
				}
				st := reg.Gate(l).Stats()
				var got Cap
				var rate float64
				var inForce bool
				switch kind {
				case "site":
					got = st.Site
					rate, inForce = reg.SiteRate()
				case "route":
					got = st.Routes[0].Cap
					rate, inForce = reg.RouteRate("feed")
				case "budget":
					for _, p := range st.Pairs {
						if p.From == "idc" && p.To == "cloud" {
							got = p.Budget
						}
					}
					rate, inForce = reg.BudgetRate("idc", "cloud")
				}
				if tc.wantOff {
					if inForce || got.Target != 0 || got.Ramping {
						t.Errorf("%s: %+v, in force %v, want no cap", kind, got, inForce)
					}
					continue
				}
				if !inForce || math.Abs(rate-tc.want) > 1 || math.Abs(got.Rate-tc.want) > 1 || got.Ramping != tc.ramping {
					t.Errorf("%s: %+v, rate in force %v (%v), want %v, ramping %v", kind, got, rate, inForce, tc.want, tc.ramping)
				}
			}
		})
	}
}

// TestResumedRampFinishes: a resumed ramp climbs to its target and ends there; a
// resumed lift ends with no cap.
func TestResumedRampFinishes(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	res := Resume{From: 1000, Start: epoch.Add(-2 * time.Second)}
	g := reg.Gate(Limits{SiteRPS: 3000, SiteRamp: 4 * time.Second, SiteResume: res})
	_, _, perSec := offer(g, c, 5000, 3*time.Second, 0)
	// Seconds 2..4 of the ramp: 2000 + 500(s + ½) on average.
	for s := range 2 {
		within(t, "admitted in resumed second "+itoa(s), float64(perSec[s]), 2000+500*(float64(s)+0.5), 0.10)
	}
	within(t, "admitted after the ramp", float64(perSec[2]), 3000, 0.10)

	c = newClock()
	reg = NewRegistry(c.now)
	g = reg.Gate(Limits{SiteRPS: 0, SiteRamp: 4 * time.Second, SiteResume: res})
	if st := g.Stats().Site; !st.Ramping || math.Abs(st.Rate-1500) > 1 {
		t.Fatalf("resumed lift: %+v, want 1500 climbing to 2000", st)
	}
	c.advance(3 * time.Second)
	_, admitted, _ := offer(g, c, 5000, time.Second, 0)
	if admitted[0] != 5000 {
		t.Errorf("after the resumed lift: %d of 5000 admitted, want all", admitted[0])
	}
	if g := reg.Gate(Limits{SiteRPS: 0, SiteRamp: 4 * time.Second, SiteResume: res}); g.Active() {
		t.Errorf("a reload after the lift ended still caps: %+v", g.Stats().Site)
	}
}
