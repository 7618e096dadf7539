package shed

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	good := func() Limits {
		return Limits{
			SiteRPS: 20000,
			Routes:  []Route{{Name: "feed", RPS: 5000, Priority: Low}, {Name: "login", Priority: Critical, BudgetMode: BudgetPace}},
			Regions: []string{"idc", "cloud"},
			Budgets: []Budget{{From: "idc", To: "cloud", BytesPerSec: 100e6}, {From: "cloud", To: "idc", BytesPerSec: 100e6}},
			Share:   0.5,
		}
	}
	f := func(mod func(*Limits), wantErr string) {
		t.Helper()
		l := good()
		mod(&l)
		err := l.Validate()
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("unexpected error: %v", err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("error %v, want one with %q", err, wantErr)
		}
	}
	f(func(l *Limits) {}, "")
	f(func(l *Limits) { *l = Limits{} }, "")
	f(func(l *Limits) { l.SiteRPS = -1 }, "site_rps: want a finite rate >= 0, got -1")
	f(func(l *Limits) { l.SiteRPS = math.NaN() }, "site_rps")
	f(func(l *Limits) { l.SiteRPS = math.Inf(1) }, "site_rps")
	f(func(l *Limits) { l.SiteRamp = -time.Second }, "site_rps: negative ramp")
	f(func(l *Limits) { l.Routes[1].RPS = -5 }, "routes[1].limit_rps")
	f(func(l *Limits) { l.Routes[1].Name = "feed" }, `routes[1].name: "feed" used twice`)
	f(func(l *Limits) { l.Routes[0].Name = "" }, "routes[0].name: empty")
	f(func(l *Limits) { l.Routes[0].Priority = 9 }, "routes[0].priority")
	f(func(l *Limits) { l.Routes[0].BudgetMode = 9 }, "routes[0].budget_mode")
	f(func(l *Limits) { l.Regions = append(l.Regions, "idc") }, `regions[2]: "idc" used twice`)
	f(func(l *Limits) { l.Budgets[0].From = "moon" }, `budgets[0].from: unknown region "moon"`)
	f(func(l *Limits) { l.Budgets[1].To = "moon" }, `budgets[1].to: unknown region "moon"`)
	f(func(l *Limits) { l.Budgets[0].To = "idc" }, `budgets[0]: from and to are both "idc"`)
	f(func(l *Limits) { l.Budgets[1] = l.Budgets[0] }, `budgets[1]: a second budget from "idc" to "cloud"`)
	f(func(l *Limits) { l.Budgets[0].BytesPerSec = -1 }, "budgets[0].rate")
	f(func(l *Limits) { l.Share = 1.5 }, "share: want 0..1")
	f(func(l *Limits) { l.BudgetShare = math.NaN() }, "budget_share")
}

// TestGateToleratesInvalidLimits: what Validate refuses, Gate treats as off.
func TestGateToleratesInvalidLimits(t *testing.T) {
	g := New(Limits{
		SiteRPS: math.NaN(),
		Routes:  []Route{{Name: "a", RPS: -1, Priority: 7}, {Name: "a", RPS: math.Inf(1)}},
		Regions: []string{"idc", "cloud", "idc"},
		Budgets: []Budget{
			{From: "idc", To: "moon", BytesPerSec: 1}, {From: "idc", To: "idc", BytesPerSec: 1},
			{From: "idc", To: "cloud", BytesPerSec: -1},
		},
		Share: 7,
	}, nil)
	if g.Active() {
		t.Errorf("invalid caps are in force: %+v", g.Stats())
	}
	if s := g.Stats(); s.Share != 1 || s.Routes[0].Priority != Normal {
		t.Errorf("share %v, priority %v; want 1, normal", s.Share, s.Routes[0].Priority)
	}
}

func TestParsePriorityAndMode(t *testing.T) {
	for _, p := range []Priority{Normal, Critical, Low} {
		if got, err := ParsePriority(p.String()); got != p || err != nil {
			t.Errorf("ParsePriority(%q) = %v, %v", p, got, err)
		}
	}
	if got, err := ParsePriority(""); got != Normal || err != nil {
		t.Errorf(`ParsePriority("") = %v, %v; want normal`, got, err)
	}
	if _, err := ParsePriority("urgent"); err == nil {
		t.Error(`ParsePriority("urgent"): no error`)
	}
	for _, m := range []BudgetMode{BudgetRefuse, BudgetPace} {
		if got, err := ParseBudgetMode(m.String()); got != m || err != nil {
			t.Errorf("ParseBudgetMode(%q) = %v, %v", m, got, err)
		}
	}
	if got, err := ParseBudgetMode(""); got != BudgetRefuse || err != nil {
		t.Errorf(`ParseBudgetMode("") = %v, %v; want refuse`, got, err)
	}
	if _, err := ParseBudgetMode("queue"); err == nil {
		t.Error(`ParseBudgetMode("queue"): no error`)
	}
}
