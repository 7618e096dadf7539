package shed

import (
	"testing"
	"time"
)

func TestSiteCapOpenLoop(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cap     float64
		offered float64
		want    float64 // admitted per second
	}{
		{"just above", 1000, 1100, 1000},
		{"twice", 1000, 2000, 1000},
		{"five times", 1000, 5000, 1000},
		{"large cap", 20000, 60000, 20000},
		{"small cap", 50, 400, 50},
		{"below the cap", 1000, 800, 800},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			g := New(Limits{SiteRPS: tc.cap, Routes: []Route{{Name: "feed"}}}, c.now)
			off, adm, _ := offer(g, c, tc.offered, 10*time.Second, 0)
			within(t, "admitted/s", float64(adm[0])/10, tc.want, 0.10)
			st := g.Stats().Routes[0]
			if got := int(st.Refused.Site); got != off[0]-adm[0] {
				t.Errorf("refused.site = %d, want offered-admitted = %d", got, off[0]-adm[0])
			}
			if tc.offered <= tc.cap && adm[0] != off[0] {
				t.Errorf("below the cap: admitted %d of %d", adm[0], off[0])
			}
		})
	}
}

func TestRouteCap(t *testing.T) {
	c := newClock()
	g := New(Limits{
		SiteRPS: 3000,
		Routes:  []Route{{Name: "feed", RPS: 500}, {Name: "search"}},
	}, c.now)
	// 2000/s to each route: feed is held at its cap, search by what the site leaves.
	_, adm, _ := offer(g, c, 4000, 10*time.Second, 0, 1)
	within(t, "feed admitted/s", float64(adm[0])/10, 500, 0.10)
	within(t, "search admitted/s", float64(adm[1])/10, 2000, 0.10)
	st := g.Stats()
	if st.Routes[0].Refused.Route == 0 || st.Routes[0].Refused.Site != 0 {
		t.Errorf("feed refusals = %+v, want by route only", st.Routes[0].Refused)
	}
	if st.Routes[1].Refused != (Refusals{}) {
		t.Errorf("search refusals = %+v, want none", st.Routes[1].Refused)
	}
	if v := drain(g, 0, c.now()); v.Reason != ByRoute || v.Reason.String() != "route" {
		t.Errorf("a refusal by the route cap: %+v", v)
	}
}

func TestPriorityShedding(t *testing.T) {
	const capRPS = 1000
	limits := Limits{SiteRPS: capRPS, Routes: []Route{
		{Name: "prefetch", Priority: Low},
		{Name: "feed", Priority: Normal},
		{Name: "login", Priority: Critical},
	}}
	const low, normal, critical = 0, 1, 2

	t.Run("twice the cap", func(t *testing.T) {
		c := newClock()
		g := New(limits, c.now)
		// The first refusal must be of a low request.
		start := c.now()
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * time.Second / (2 * capRPS))
			if v := g.Admit(i%3, at); !v.OK() {
				if i%3 != low || v.Reason != BySite {
					t.Fatalf("first refusal: route %d, %v; want the low route, by site", i%3, v.Reason)
				}
				break
			}
		}
		c.set(start)
		off, adm, _ := offer(g, c, 2*capRPS, 10*time.Second, low, normal, critical)
		frac := func(r int) float64 { return float64(adm[r]) / float64(off[r]) }
		t.Logf("kept: low %.3f, normal %.3f, critical %.3f", frac(low), frac(normal), frac(critical))
		if frac(critical) < 0.95 {
			t.Errorf("critical kept %.1f%% of its offered rate, want >= 95%%", 100*frac(critical))
		}
		if !(frac(low) < frac(normal) && frac(normal) < frac(critical)) {
			t.Errorf("kept fractions low %.2f, normal %.2f, critical %.2f: want increasing",
				frac(low), frac(normal), frac(critical))
		}
		if frac(low) > 0.05 {
			t.Errorf("low kept %.1f%%, want it shed before normal is", 100*frac(low))
		}
		within(t, "admitted/s", float64(adm[low]+adm[normal]+adm[critical])/10, capRPS, 0.10)
	})

	t.Run("a little above the cap", func(t *testing.T) {
		// 1200/s: shedding low alone is enough; normal and critical keep it all.
		c := newClock()
		g := New(limits, c.now)
		off, adm, _ := offer(g, c, 1.2*capRPS, 10*time.Second, low, normal, critical)
		for _, r := range []int{normal, critical} {
			if float64(adm[r]) < 0.99*float64(off[r]) {
				t.Errorf("route %d kept %d of %d, want all", r, adm[r], off[r])
			}
		}
		within(t, "low admitted/s", float64(adm[low])/10, capRPS-0.8*capRPS, 0.10)
	})
}

func TestRetryAfter(t *testing.T) {
	// A cap of 0.5/s holds MinCapBurst tokens; drained, a critical request needs one
	// token (2 s), a normal one NormalFloor×10+1 = 3 tokens (6 s), a low one 6 (12 s).
	for _, tc := range []struct {
		prio Priority
		want int
	}{{Critical, 2}, {Normal, 6}, {Low, 12}} {
		t.Run(tc.prio.String(), func(t *testing.T) {
			c := newClock()
			g := New(Limits{SiteRPS: 0.5, Routes: []Route{{Name: "r", Priority: tc.prio}, {Name: "drain", Priority: Critical}}}, c.now)
			for range MinCapBurst {
				if v := g.Admit(1, c.now()); !v.OK() {
					t.Fatalf("draining: %+v", v)
				}
			}
			v := g.Admit(0, c.now())
			if v.Reason != BySite || v.RetryAfter != tc.want {
				t.Errorf("Admit on a drained bucket = %+v, want site, Retry-After %d", v, tc.want)
			}
		})
	}
	t.Run("at least one second", func(t *testing.T) {
		c := newClock()
		g := New(Limits{SiteRPS: 1000, Routes: []Route{{Name: "r"}}}, c.now)
		if v := drain(g, 0, c.now()); v.OK() || v.RetryAfter != 1 {
			t.Errorf("Admit = %+v, want a refusal with Retry-After 1", v)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		if got := retryAfter(time.Hour); got != MaxRetryAfter {
			t.Errorf("retryAfter(1h) = %d, want %d", got, MaxRetryAfter)
		}
	})
}

func TestNilAndInactiveGate(t *testing.T) {
	now := time.Now()
	for name, g := range map[string]*Gate{
		"nil":   nil,
		"empty": New(Limits{Routes: []Route{{Name: "a"}}, Regions: []string{"idc", "cloud"}}, nil),
	} {
		if g.Active() {
			t.Errorf("%s: Active", name)
		}
		if v := g.Admit(0, now); !v.OK() || v.Reason.String() != "" {
			t.Errorf("%s: Admit = %+v", name, v)
		}
		if v := g.AdmitCross(0, 0, 1, true, false, now); v != (BudgetVerdict{}) {
			t.Errorf("%s: AdmitCross = %+v", name, v)
		}
		g.Bytes(0, 1, 100, now)
	}
	if s := (*Gate)(nil).Stats(); s.Routes != nil || s.Pairs != nil {
		t.Errorf("nil Stats = %+v", s)
	}
	g := New(Limits{Routes: []Route{{Name: "a"}}, Regions: []string{"idc", "cloud"}}, nil)
	g.Bytes(0, 1, 100, now)
	g.Bytes(5, 1, 100, now) // out of range: ignored
	if p := g.Stats().Pairs; len(p) != 1 || p[0].From != "idc" || p[0].To != "cloud" || p[0].Bytes != 100 || p[0].Responses != 1 {
		t.Errorf("pairs without a budget still count bytes: %+v", p)
	}
	if !New(Limits{SiteRPS: 1}, nil).Active() || !New(Limits{Routes: []Route{{Name: "a", RPS: 1}}}, nil).Active() {
		t.Error("a gate with a cap is not Active")
	}
}

func TestUnknownRoute(t *testing.T) {
	c := newClock()
	g := New(Limits{SiteRPS: 100, Routes: []Route{{Name: "a", RPS: 1}}}, c.now)
	// Out of range: no route cap, normal priority, under the site cap.
	_, adm, _ := offer(g, c, 500, 10*time.Second, -1, 7)
	within(t, "admitted/s", float64(adm[-1]+adm[7])/10, 100, 0.10)
}

// drain admits requests of route at one instant until one is refused, and returns
// that refusal (or the last verdict, if a thousand were admitted).
func drain(g *Gate, route int, at time.Time) Verdict {
	var v Verdict
	for range 1000 {
		if v = g.Admit(route, at); !v.OK() {
			break
		}
	}
	return v
}

// TestStaleTimes: under lock contention a request's time.Now can be older than the
// time the bucket last saw. Handed to the limiter as is, such times would credit the
// same interval twice; the bucket must count them as the latest time instead.
func TestStaleTimes(t *testing.T) {
	const capRPS = 1000
	c := newClock()
	g := New(Limits{SiteRPS: capRPS, Routes: []Route{{Name: "a", Priority: Critical}}}, c.now)
	drain(g, 0, c.now())
	start := c.now()
	admitted := 0
	// Every 2 ms, one request stamped now and four stamped 5 ms ago (they read the
	// clock, then waited for the lock): 2500/s offered.
	for i := range 5000 {
		at := start.Add(time.Duration(i) * 2 * time.Millisecond)
		for k := range 5 {
			stamp := at
			if k > 0 {
				stamp = at.Add(-5 * time.Millisecond)
			}
			if g.Admit(0, stamp).OK() {
				admitted++
			}
		}
	}
	within(t, "admitted/s with stale times", float64(admitted)/10, capRPS, 0.10)
}
