package shed

import (
	"testing"
	"time"
)

// benchLimits caps the site and route 0, with a budget on idc→cloud; route 1 has no cap
// of its own.
func benchLimits(siteRPS, routeRPS, budget float64) Limits {
	return Limits{
		SiteRPS: siteRPS,
		Routes: []Route{
			{Name: "feed", RPS: routeRPS, Priority: Low},
			{Name: "login", Priority: Critical, BudgetMode: BudgetPace},
		},
		Regions: []string{"idc", "cloud"},
		Budgets: []Budget{{From: "idc", To: "cloud", BytesPerSec: budget}},
	}
}

func TestAllocs(t *testing.T) {
	c := newClock()
	now := c.now()
	noCaps := New(Limits{Routes: []Route{{Name: "feed"}}}, c.now)
	roomy := New(benchLimits(1e12, 1e12, 1e15), c.now)
	tight := New(benchLimits(1, 1, 1), c.now)
	drain(tight, 0, now)
	drain(tight, 1, now)
	tight.Bytes(idc, cloud, 1000, now)
	ramping := NewRegistry(c.now)
	ramping.Gate(benchLimits(1000, 1000, 1000))
	up := benchLimits(1e6, 1e6, 1e6)
	up.SiteRamp = time.Hour
	ramp := ramping.Gate(up)
	if !ramp.Stats().Site.Ramping {
		t.Fatal("not ramping")
	}
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"Admit, nil gate", func() { (*Gate)(nil).Admit(0, now) }},
		{"Admit, no caps", func() { noCaps.Admit(0, now) }},
		{"Admit, caps not reached", func() { mustOK(t, roomy.Admit(0, now)) }},
		{"Admit, route cap reached", func() { mustRefuse(t, tight.Admit(0, now)) }},
		{"Admit, site cap reached", func() { mustRefuse(t, tight.Admit(1, now)) }},
		{"Admit, ramping", func() { c.advance(RampStep); ramp.Admit(1, c.now()) }},
		{"Bytes, no budget", func() { noCaps.Bytes(idc, cloud, 1000, now) }},
		{"Bytes, budget", func() { roomy.Bytes(idc, cloud, 1000, now) }},
		{"Bytes, budget in debt", func() { tight.Bytes(idc, cloud, 1000, now) }},
		{"AdmitCross, under budget", func() { roomy.AdmitCross(0, idc, cloud, true, true, now) }},
		{"AdmitCross, refused", func() { tight.AdmitCross(0, idc, cloud, false, false, now) }},
		{"AdmitCross, fallback", func() { tight.AdmitCross(0, idc, cloud, true, true, now) }},
		{"AdmitCross, pace mode", func() { tight.AdmitCross(1, idc, cloud, false, false, now) }},
	} {
		if allocs := testing.AllocsPerRun(1000, tc.fn); allocs != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tc.name, allocs)
		}
	}
}

func mustOK(t *testing.T, v Verdict) {
	if !v.OK() {
		t.Fatalf("refused: %+v", v)
	}
}

func mustRefuse(t *testing.T, v Verdict) {
	if v.OK() {
		t.Fatal("admitted")
	}
}

func BenchmarkAdmit(b *testing.B) {
	for _, bc := range []struct {
		name  string
		l     Limits
		route int
	}{
		{"no caps", Limits{Routes: []Route{{Name: "feed"}}}, 0},
		{"site cap not reached", benchLimits(1e12, 0, 0), 1},
		{"site and route caps not reached", benchLimits(1e12, 1e12, 0), 0},
		{"site cap reached", benchLimits(1, 0, 0), 1},
		{"route cap reached", benchLimits(1e12, 1, 0), 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := New(bc.l, nil)
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				g.Admit(bc.route, now)
			}
		})
	}
}

func BenchmarkAdmitParallel(b *testing.B) {
	g := New(benchLimits(1e12, 1e12, 0), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g.Admit(0, time.Now())
		}
	})
}

func BenchmarkBytes(b *testing.B) {
	for _, bc := range []struct {
		name   string
		budget float64
	}{{"no budget", 0}, {"budget", 1e12}} {
		b.Run(bc.name, func(b *testing.B) {
			g := New(benchLimits(0, 0, bc.budget), nil)
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				g.Bytes(idc, cloud, 4096, now)
			}
		})
	}
}

func BenchmarkAdmitCross(b *testing.B) {
	g := New(benchLimits(0, 0, 1e12), nil)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		g.AdmitCross(0, idc, cloud, true, false, now)
	}
}
