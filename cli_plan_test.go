package main

import (
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

func TestPlanUsage(t *testing.T) {
	for _, args := range [][]string{{"plan"}, {"plan", "jump", "feed"}, {"plan", "start"}, {"plan", "start", "a", "b"}, {"plan", "status", "feed"}} {
		if code, _, errs := runCLI(args...); code != 2 || !strings.Contains(errs, "usage: shiftgate plan") {
			t.Errorf("%v: exit %d, %q", args, code, errs)
		}
	}
}

func TestPrintPlans(t *testing.T) {
	at := time.Date(2026, 11, 22, 4, 12, 9, 0, time.UTC)
	ans := proxy.PlansAnswer{Driver: "gw-b", DriverAdmin: "127.0.0.1:9091", Plans: []proxy.PlanStatus{{
		Route: "feed", State: conf.PlanRunning, Step: 3, Steps: []float64{1, 5, 25, 50, 100}, Percent: 25, WritePercent: 10,
		StepStarted: at, HoldUntil: at.Add(10 * time.Minute), Reason: "step 3 of 5 (25%) since 2026-11-22T04:12:09Z",
		Gates: []stats.Gate{{Name: "error_ratio", Outcome: stats.Pass, Moved: 0.00118, Stayed: 0.00121, Unit: "ratio",
			Samples: stats.Samples{Moved: 8412, Stayed: 25103}, Reason: "below the floor"}},
		Live: &proxy.PlanLive{CheckedAt: at.Add(3 * time.Minute), Checks: 7, Decision: "hold", Why: "gates pass; holding 3m0s of 10m0s", Missing: []string{"gw-c"}},
		History: []conf.PlanEvent{{Event: "advance", Step: 2, PercentBP: 2500, At: at, By: "plan@gw-a", Readings: 4,
			Gates: []conf.PlanGateRecord{{Name: "p99_latency", Outcome: "pass", Moved: 41, Stayed: 38.9, MovedN: 300, StayedN: 900}}}},
	}, {Route: "search", State: conf.PlanIdle, Steps: []float64{5, 100}, Gates: []stats.Gate{}}}}
	var b strings.Builder
	printPlans(ans, true, at.Add(4*time.Minute), &b)
	out := b.String()
	for _, want := range []string{
		"plans driven by gw-b (127.0.0.1:9091)",
		"feed: RUNNING, step 3 of 5 (25%, writes 10%), steps 1 → 5 → [25] → 50 → 100 %",
		"held at least 6m0s more",
		"(7 this step): hold — gates pass; holding 3m0s of 10m0s",
		"instances not heard from: gw-c",
		"error_ratio  pass     0.118%  0.121%  8412/25103",
		"advance     step 3 (25%) by plan@gw-a (reading 4)",
		"p99_latency pass: moved 41.0ms n=300, stayed 38.9ms n=900",
		"search: IDLE, step 0 of 2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// TestPrintPlansWithoutDriver: with no instance driving (the fleet store down), a
// running plan is said not to move forward, the guard's readings are told apart from a
// driver's, and the levers that still work are named.
func TestPrintPlansWithoutDriver(t *testing.T) {
	ans := proxy.PlansAnswer{NoDriver: "etcd: context deadline exceeded", Plans: []proxy.PlanStatus{{
		Route: "feed", State: conf.PlanRunning, Step: 2, Steps: []float64{5, 50, 100}, Percent: 50, WritePercent: 50,
		Live: &proxy.PlanLive{Checks: 3, Guard: true, Decision: "advance", Why: "gates pass after the hold"}}}}
	var b strings.Builder
	printPlans(ans, false, time.Now(), &b)
	out := b.String()
	for _, want := range []string{"NO INSTANCE DRIVES THE PLANS (etcd: context deadline exceeded)", "no instance moves it forward",
		"may only roll it back on itself", "(3 this step, this instance's own statistics: acts only on a rollback): advance", "rollback -local on", "feed: RUNNING"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
