package conf

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// planBase is base with feed at 0 % and a plan; cases append to the plan.
const planBase = `regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
  cloud: {upstreams: ["127.0.0.1:9002"]}
split: {from: idc, to: cloud, salt: s}
routes:
  - name: feed
    match: {path_prefix: /api/feed}
    percent: 0
    plan:
      hold: 10m
`

func TestPlanErrors(t *testing.T) {
	f := func(name, plan, want string) {
		t.Helper()
		_, err := Parse("c.yaml", []byte(planBase+plan))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: unexpected error: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
	}
	f("valid", "      steps: [1, 5, 25, 50, 100]\n", "")
	f("write percents", "      steps: [{percent: 1, write_percent: 0.5}, 5, {percent: 25, write_percent: 10}, 100]\n", "")
	f("no steps", "      min_requests: 5\n", "c.yaml:10: routes[0].plan.steps: a plan needs at least one step")
	f("falling", "      steps: [1, 25, 5]\n", "c.yaml:11: routes[0].plan.steps[2]: steps must rise: 5% does not rise above the step before (25%)")
	f("repeated", "      steps: [1, 5, 5]\n", "routes[0].plan.steps[2]: steps must rise")
	f("over 100", "      steps: [1, 120]\n", "routes[0].plan.steps[1]: want 0..100")
	f("zero step", "      steps: [0, 5]\n", "routes[0].plan.steps[0]: a step must move someone")
	f("writes lead", "      steps: [{percent: 5, write_percent: 6}]\n", "routes[0].plan.steps[0]: write_percent 6 is above percent 5")
	f("writes fall", "      steps: [{percent: 5, write_percent: 5}, {percent: 10, write_percent: 1}]\n", "routes[0].plan.steps[1]: write_percent 1 falls below")
	f("unknown step key", "      steps: [{percent: 5, weight: 1}]\n", "routes[0].plan.steps[0]: unknown key \"weight\"")
	f("step without percent", "      steps: [{write_percent: 1}]\n", "routes[0].plan.steps[0]: a step needs a percent")
	f("bad step", "      steps: [[1]]\n", "routes[0].plan.steps[0]: want a percent")
	f("bad on_fail", "      steps: [5]\n      on_fail: panic\n", "c.yaml:12: routes[0].plan.on_fail: want halt or rollback")
	f("bad failures", "      steps: [5]\n      failures: -1\n", "routes[0].plan.failures: want 1..100")
	f("bad interval", "      steps: [5]\n      interval: 10ms\n", "routes[0].plan.interval: want at least 100ms")
	f("bad min", "      steps: [5]\n      min_requests: -3\n", "routes[0].plan.min_requests: want >= 1")
	f("bad ramp", "      steps: [5]\n      rollback_ramp: soon\n", "routes[0].plan.rollback_ramp: want a duration")
	f("unknown plan key", "      steps: [5]\n      stepWeight: 5\n", "c.yaml:12: routes[0].plan.stepWeight: unknown key")
	f("all gates off", "      steps: [5]\n      gates: {error_ratio: {off: true}, latency: {off: true}}\n", "routes[0].plan.gates: every gate is off")
	f("one gate left", "      steps: [5]\n      gates: {error_ratio: {off: true}, latency: {off: true}, breaker_opens: {max: 0}}\n", "")
	f("bad confidence", "      steps: [5]\n      gates: {error_ratio: {confidence: 1.5}}\n", "routes[0].plan.gates.error_ratio: floor_points")
	f("bad fallback share", "      steps: [5]\n      gates: {fallbacks: {max_percent: 200}}\n", "routes[0].plan.gates.fallbacks.max_percent: want 0..100")
	f("stats off", "      steps: [5]\nstats: {off: true}\n", "routes[0].plan: a plan is judged from the per-cohort statistics")

	// A plan whose steps all lie at or below the route's split could never move anyone.
	above := strings.Replace(planBase, "percent: 0\n", "percent: 50\n", 1)
	if _, err := Parse("c.yaml", []byte(above+"      steps: [1, 5, 25]\n")); err == nil ||
		!strings.Contains(err.Error(), "c.yaml:11: routes[0].plan.steps[2]: the last step (25%) is not above the route's percent (50%)") {
		t.Errorf("unreachable last step: %v", err)
	}
	noHold := strings.Replace(planBase, "      hold: 10m\n", "", 1)
	if _, err := Parse("c.yaml", []byte(noHold+"      steps: [5]\n")); err == nil || !strings.Contains(err.Error(), "routes[0].plan.hold: a plan needs a positive hold") {
		t.Errorf("missing hold: %v", err)
	}
	sameRegion := strings.Replace(planBase, "percent: 0\n", "percent: 0\n    to: idc\n", 1)
	if _, err := Parse("c.yaml", []byte(sameRegion+"      steps: [5]\n")); err == nil || !strings.Contains(err.Error(), "nothing to ramp") {
		t.Errorf("from = to: %v", err)
	}
}

func TestPlanDefaults(t *testing.T) {
	c := mustParse(t, planBase+"      steps: [1, {percent: 25, write_percent: 5}, 100]\n")
	pl := c.Routes[0].Plan
	if pl.MinRequests != DefaultPlanMinRequests || pl.Failures != DefaultPlanFailures || !pl.RollbackOnFail ||
		pl.OnFail != "rollback" || pl.RollbackRamp.D != DefaultPlanRollbackRamp || pl.Interval.D != time.Minute/2 {
		t.Errorf("defaults: %+v", pl)
	}
	want := []SplitBP{{100, 100}, {2500, 500}, {10000, 10000}}
	if len(pl.Splits) != 3 || pl.Splits[0] != want[0] || pl.Splits[1] != want[1] || pl.Splits[2] != want[2] {
		t.Errorf("splits %v, want %v", pl.Splits, want)
	}
	if pl.Gates.ErrorRatio == nil || pl.Gates.ErrorRatio.Off || pl.Gates.Latency == nil || pl.Gates.Fallbacks != nil {
		t.Errorf("gates: %+v", pl.Gates)
	}
	short := mustParse(t, strings.Replace(planBase, "hold: 10m", "hold: 2s", 1)+"      steps: [5]\n      on_fail: halt\n")
	if pl := short.Routes[0].Plan; pl.Interval.D != time.Second || pl.RollbackOnFail {
		t.Errorf("short hold: interval %s, rollback %v", pl.Interval.D, pl.RollbackOnFail)
	}
}

func TestPlanFingerprint(t *testing.T) {
	a := mustParse(t, planBase+"      steps: [1, 5, 25]\n").Routes[0].PlanFingerprint()
	if b := mustParse(t, planBase+"      steps: [1, 5, 25]\n").Routes[0].PlanFingerprint(); a != b {
		t.Errorf("same config, fingerprints %s and %s", a, b)
	}
	for name, edited := range map[string]string{
		"steps": planBase + "      steps: [1, 5, 50]\n",
		"hold":  strings.Replace(planBase, "hold: 10m", "hold: 5m", 1) + "      steps: [1, 5, 25]\n",
		"salt":  strings.Replace(planBase, "salt: s", "salt: t", 1) + "      steps: [1, 5, 25]\n",
		"gates": planBase + "      steps: [1, 5, 25]\n      gates: {latency: {slack: 5ms}}\n",
	} {
		if b := mustParse(t, edited).Routes[0].PlanFingerprint(); a == b {
			t.Errorf("%s changed, fingerprint did not", name)
		}
	}
}

// TestRouteRamp follows a ramped override (a plan's rollback) from 25 % down to 0.
func TestRouteRamp(t *testing.T) {
	c := mustParse(t, base)
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	ov := Overrides{Routes: map[string]RouteOverride{"feed": {PercentBP: 0, WritePercentBP: 0,
		Ramp: SplitRamp{FromBP: 2500, FromWriteBP: 500, Start: t0, For: 10 * time.Second}}}}
	for _, tc := range []struct {
		at          time.Duration
		read, write int
		ramping     bool
	}{
		{-time.Second, 2500, 500, true}, {0, 2500, 500, true}, {time.Second, 2250, 450, true},
		{5 * time.Second, 1250, 250, true}, {10 * time.Second, 0, 0, false}, {time.Hour, 0, 0, false},
	} {
		s, _, err := ov.Effective(c, t0.Add(tc.at))
		if err != nil {
			t.Fatal(err)
		}
		if s[0].Read != tc.read || s[0].Write != tc.write || ov.RampingAny(t0.Add(tc.at)) != tc.ramping {
			t.Errorf("at %v: %+v ramping %v, want %d/%d %v", tc.at, s[0], ov.RampingAny(t0.Add(tc.at)), tc.read, tc.write, tc.ramping)
		}
	}
	// The ramp survives a store's JSON, and an override without one reads as before.
	b, _ := json.Marshal(ov)
	var back Overrides
	if err := json.Unmarshal(b, &back); err != nil || back.Routes["feed"].Ramp != ov.Routes["feed"].Ramp {
		t.Fatalf("round trip: %v %+v", err, back.Routes["feed"])
	}
	if b, _ := json.Marshal(RouteOverride{PercentBP: 1}); strings.Contains(string(b), "ramp") {
		t.Errorf("an override without a ramp encodes one: %s", b)
	}
}

func TestPlanProgressHistory(t *testing.T) {
	var p PlanProgress
	for i := 0; i < PlanHistoryMax+10; i++ {
		q := p.WithEvent(PlanEvent{Event: "advance", Step: i})
		if len(p.History) == len(q.History) && len(p.History) > 0 && &p.History[0] == &q.History[0] {
			t.Fatal("WithEvent shares the history it extends")
		}
		p = q
	}
	if len(p.History) != PlanHistoryMax || p.History[0].Step != 10 || p.History[PlanHistoryMax-1].Step != PlanHistoryMax+9 {
		t.Errorf("history kept %d, first step %d", len(p.History), p.History[0].Step)
	}
	ov := Overrides{Plans: map[string]PlanProgress{"feed": p}}
	c := ov.Clone()
	c.Plans["feed"].History[0].Step = -1
	if ov.Plans["feed"].History[0].Step == -1 {
		t.Error("Clone shares a plan's history")
	}
	paused := p.Paused(time.Unix(5, 0), "ops", "manual split")
	if paused.State != PlanPaused || paused.History[len(paused.History)-1].Event != "paused" || p.State == PlanPaused {
		t.Errorf("paused: %+v", paused.State)
	}
}
