package plan

import (
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

var t0 = time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)

// testPlan is [1, 5, 25, 50, 100] with a 10 s hold, two failures to act.
func testPlan(onFail string) *conf.Plan {
	pl := &conf.Plan{Hold: conf.Duration{D: 10 * time.Second}, MinRequests: 100, Failures: 2, OnFail: onFail,
		RollbackOnFail: onFail == "rollback", RollbackRamp: conf.Duration{D: time.Minute}}
	for _, p := range []int{100, 500, 2500, 5000, 10000} {
		pl.Splits = append(pl.Splits, conf.SplitBP{Read: p, Write: p})
	}
	return pl
}

func gate(name string, o stats.Outcome) stats.Gate {
	return stats.Gate{Name: name, Outcome: o, Reason: string(o) + " reason"}
}

func running(step int, at time.Time) conf.PlanProgress {
	return conf.PlanProgress{State: conf.PlanRunning, Step: step, StepAt: at}
}

func TestDecide(t *testing.T) {
	pass, fail, unsure := gate("error_ratio", stats.Pass), gate("error_ratio", stats.Fail), gate("p99_latency", stats.Inconclusive)
	lat := gate("p99_latency", stats.Pass)
	for _, c := range []struct {
		name     string
		onFail   string
		p        conf.PlanProgress
		failures int
		at       time.Duration // since the step began
		gates    []stats.Gate
		want     Action
		wantF    int
		why      string
	}{
		{"pass after hold advances", "rollback", running(0, t0), 0, 10 * time.Second, []stats.Gate{pass, lat}, Advance, 0, "gates pass after the hold"},
		{"pass before hold holds", "rollback", running(0, t0), 0, 9 * time.Second, []stats.Gate{pass, lat}, Hold, 0, "holding 9s of 10s"},
		{"inconclusive holds after hold", "rollback", running(1, t0), 0, time.Hour, []stats.Gate{pass, unsure}, Hold, 0, "inconclusive, holding: p99_latency"},
		{"inconclusive never fails", "halt", running(1, t0), 1, time.Hour, []stats.Gate{unsure}, Hold, 0, "inconclusive"},
		{"first failure holds", "rollback", running(2, t0), 0, time.Second, []stats.Gate{fail, lat}, Hold, 1, "failed (1 of 2 in a row before rollback)"},
		{"second failure rolls back", "rollback", running(2, t0), 1, time.Second, []stats.Gate{fail, lat}, Rollback, 2, "failed 2 reading(s) in a row"},
		{"second failure halts", "halt", running(2, t0), 1, time.Second, []stats.Gate{fail}, Halt, 2, "failed 2 reading(s) in a row"},
		{"fail beats inconclusive", "halt", running(2, t0), 1, time.Second, []stats.Gate{fail, unsure}, Halt, 2, "error_ratio (fail reason)"},
		{"a pass ends a failing streak", "halt", running(2, t0), 1, time.Second, []stats.Gate{pass}, Hold, 0, "gates pass"},
		{"next step is the last: done", "rollback", running(3, t0), 0, time.Minute, []stats.Gate{pass}, Finish, 0, "the next step is the last"},
		{"no gates hold", "rollback", running(0, t0), 0, time.Minute, nil, Hold, 0, "no gate reading"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(testPlan(c.onFail), c.p, c.failures, t0.Add(c.at), c.gates)
			if d.Action != c.want || d.Failures != c.wantF || !strings.Contains(d.Why, c.why) {
				t.Errorf("got %+v, want %s with %d failures, why containing %q", d, c.want, c.wantF, c.why)
			}
		})
	}
}

func TestNext(t *testing.T) {
	pl := testPlan("rollback")
	gates := []stats.Gate{gate("error_ratio", stats.Pass)}
	now := t0.Add(time.Minute)
	at := func(bp int) conf.SplitBP { return conf.SplitBP{Read: bp, Write: bp} }
	p := running(1, t0)
	p.PercentBP, p.WritePercentBP = 500, 500

	n, sp, ok := Next(pl, p, Decision{Action: Advance, Why: "w"}, gates, at(500), now, "plan@a")
	if !ok || n.State != conf.PlanRunning || n.Step != 2 || !n.StepAt.Equal(now) || n.PercentBP != 2500 || sp == nil || sp.SplitBP != at(2500) || sp.Ramp != 0 {
		t.Fatalf("advance: %+v %+v", n, sp)
	}
	if e := n.History[len(n.History)-1]; e.Event != "advance" || e.By != "plan@a" || len(e.Gates) != 1 || e.Gates[0].Outcome != "pass" {
		t.Errorf("advance event %+v", e)
	}
	if len(p.History) != 0 {
		t.Error("Next changed the progress it was given")
	}
	// Writes that lag: a step never lowers what is in force.
	n, sp, _ = Next(pl, p, Decision{Action: Advance}, gates, conf.SplitBP{Read: 3000, Write: 100}, now, "x")
	if sp == nil || sp.SplitBP != (conf.SplitBP{Read: 3000, Write: 2500}) {
		t.Errorf("advance from a higher split: %+v", sp)
	}
	p3 := running(3, t0)
	n, sp, _ = Next(pl, p3, Decision{Action: Finish}, gates, at(5000), now, "x")
	if n.State != conf.PlanDone || n.Step != 4 || sp == nil || sp.SplitBP != at(10000) {
		t.Errorf("finish: %+v %+v", n, sp)
	}
	n, sp, _ = Next(pl, p, Decision{Action: Halt, Why: "error_ratio failed"}, gates, at(500), now, "x")
	if n.State != conf.PlanHalted || n.Step != 1 || sp != nil || !strings.Contains(n.Reason, "error_ratio failed") {
		t.Errorf("halt: %+v %+v", n, sp)
	}
	n, sp, _ = Next(pl, p, Decision{Action: Rollback, Why: "error_ratio failed"}, gates, at(500), now, "x")
	if n.State != conf.PlanRolledBack || n.Step != 1 || n.PercentBP != 500 || sp == nil || sp.SplitBP != at(0) || sp.Ramp != time.Minute {
		t.Errorf("rollback: %+v %+v", n, sp)
	}
	if _, _, ok := Next(pl, p, Decision{Action: Hold}, gates, at(500), now, "x"); ok {
		t.Error("a hold stores something")
	}
}

func TestVerbs(t *testing.T) {
	pl := testPlan("rollback")
	at := func(bp int) conf.SplitBP { return conf.SplitBP{Read: bp, Write: bp} }
	idle := conf.PlanProgress{}
	for _, c := range []struct {
		name      string
		verb      string
		p         conf.PlanProgress
		cur       conf.SplitBP
		wantState conf.PlanState
		wantStep  int
		wantSplit *conf.SplitBP // nil: no change
		wantRamp  bool
		wantErr   string
	}{
		{"start from 0 raises to the first step", "start", idle, at(0), conf.PlanRunning, 0, &conf.SplitBP{Read: 100, Write: 100}, false, ""},
		{"start at a step judges it first", "start", idle, at(500), conf.PlanRunning, 1, nil, false, ""},
		{"start between steps holds the split", "start", idle, at(3000), conf.PlanRunning, 2, nil, false, ""},
		// Writes lagging reads: the step at or below both is judged first, nothing moves.
		{"start with lagging writes holds them", "start", idle, conf.SplitBP{Read: 500, Write: 100}, conf.PlanRunning, 0, nil, false, ""},
		{"start with writes far behind", "start", idle, conf.SplitBP{Read: 7000, Write: 2500}, conf.PlanRunning, 2, nil, false, ""},
		{"start with writes below the first step raises them", "start", idle, conf.SplitBP{Read: 500, Write: 0}, conf.PlanRunning, 0, &conf.SplitBP{Read: 500, Write: 100}, false, ""},
		{"resume with lagging writes holds them", "resume", conf.PlanProgress{State: conf.PlanHalted, Step: 3}, conf.SplitBP{Read: 5000, Write: 500}, conf.PlanRunning, 1, nil, false, ""},
		{"start at the last step is done", "start", idle, at(10000), conf.PlanDone, 4, nil, false, ""},
		{"start again after a rollback", "start", conf.PlanProgress{State: conf.PlanRolledBack, Step: 2}, at(0), conf.PlanRunning, 0, &conf.SplitBP{Read: 100, Write: 100}, false, ""},
		{"start a running plan", "start", running(1, t0), at(500), "", 0, nil, false, "cannot start a plan that is running"},
		{"start a paused plan", "start", conf.PlanProgress{State: conf.PlanPaused}, at(500), "", 0, nil, false, "resume it"},
		{"pause", "pause", running(1, t0), at(500), conf.PlanPaused, 1, nil, false, ""},
		{"pause a halted plan", "pause", conf.PlanProgress{State: conf.PlanHalted}, at(500), "", 0, nil, false, "cannot pause a plan that is halted"},
		{"resume a paused plan where a human left it", "resume", conf.PlanProgress{State: conf.PlanPaused, Step: 1}, at(4000), conf.PlanRunning, 2, nil, false, ""},
		{"resume a halted plan", "resume", conf.PlanProgress{State: conf.PlanHalted, Step: 2}, at(2500), conf.PlanRunning, 2, nil, false, ""},
		{"resume an idle plan", "resume", idle, at(0), "", 0, nil, false, "cannot resume a plan that is idle: start it"},
		{"abort a running plan rolls back", "abort", running(2, t0), at(2500), conf.PlanRolledBack, 2, &conf.SplitBP{}, true, ""},
		{"abort a paused plan", "abort", conf.PlanProgress{State: conf.PlanPaused, Step: 1}, at(500), conf.PlanRolledBack, 1, &conf.SplitBP{}, true, ""},
		{"abort a finished plan", "abort", conf.PlanProgress{State: conf.PlanDone, Step: 4}, at(10000), "", 0, nil, false, "cannot abort a plan that is done"},
	} {
		t.Run(c.name, func(t *testing.T) {
			now := t0.Add(time.Hour)
			var (
				n   conf.PlanProgress
				sp  *proxy.PlanSplit
				err error
			)
			switch c.verb {
			case "start":
				n, sp, err = Start("feed", pl, c.p, c.cur, now, "ops")
			case "pause":
				n, err = Pause("feed", c.p, now, "ops")
			case "resume":
				n, sp, err = Resume("feed", pl, c.p, c.cur, now, "ops")
			case "abort":
				n, sp, err = Abort("feed", pl, c.p, now, "ops")
			}
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || proxy.StatusOf(err) != 409 {
					t.Fatalf("err %v (status %d), want %q and 409", err, proxy.StatusOf(err), c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.State != c.wantState || n.Step != c.wantStep {
				t.Errorf("state %s step %d, want %s step %d", n.State, n.Step, c.wantState, c.wantStep)
			}
			switch {
			case c.wantSplit == nil && sp != nil:
				t.Errorf("split %+v, want none", sp)
			case c.wantSplit != nil && (sp == nil || sp.SplitBP != *c.wantSplit || (sp.Ramp > 0) != c.wantRamp):
				t.Errorf("split %+v, want %+v (ramp %v)", sp, c.wantSplit, c.wantRamp)
			}
			if n.State == conf.PlanRunning && (!n.StepAt.Equal(now) || n.PercentBP < c.cur.Read) {
				t.Errorf("running from %v at %d bp", n.StepAt, n.PercentBP)
			}
			if len(n.History) == 0 || n.History[len(n.History)-1].By != "ops" {
				t.Errorf("history %+v", n.History)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	pl := testPlan("rollback")
	pl.Gates = conf.PlanGates{ErrorRatio: &conf.PlanErrorGate{}, Latency: &conf.PlanLatencyGate{Slack: conf.Duration{D: 5 * time.Millisecond}},
		Fallbacks: &conf.PlanFallbackGate{MaxBP: 100}, BreakerOpens: &conf.PlanBreakerGate{Max: 0}}
	tally := func(n, errs uint64, lat time.Duration) stats.Tally {
		t := stats.Tally{Counts: stats.Counts{Requests: n, Errors: errs}, Hist: stats.NewHistogram(0)}
		for i := uint64(0); i < n; i++ {
			t.Hist.Observe(lat)
		}
		return t
	}
	outcomes := func(gs []stats.Gate) string {
		var s []string
		for _, g := range gs {
			s = append(s, g.Name+"="+string(g.Outcome))
		}
		return strings.Join(s, " ")
	}
	healthy := Window{Moved: tally(500, 0, time.Millisecond), Stayed: tally(5000, 5, time.Millisecond), Total: 5500}
	if got := outcomes(Judge(pl, healthy, 0)); got != "error_ratio=pass p99_latency=pass fallbacks=pass breaker_opens=pass" {
		t.Errorf("healthy: %s", got)
	}
	few := Window{Moved: tally(20, 10, time.Millisecond), Stayed: tally(5000, 5, time.Millisecond), Total: 50}
	if got := outcomes(Judge(pl, few, 0)); got != "error_ratio=inconclusive p99_latency=inconclusive fallbacks=inconclusive breaker_opens=pass" {
		t.Errorf("too few: %s", got)
	}
	// Nothing at all is inconclusive, never a pass (no "no values found" read as 0).
	if got := outcomes(Judge(pl, Window{}, -1)); got != "error_ratio=inconclusive p99_latency=inconclusive fallbacks=inconclusive breaker_opens=inconclusive" {
		t.Errorf("empty: %s", got)
	}
	sick := Window{Moved: tally(500, 100, 50*time.Millisecond), Stayed: tally(5000, 5, time.Millisecond), Fallbacks: 200, Total: 5500}
	if got := outcomes(Judge(pl, sick, 3)); got != "error_ratio=fail p99_latency=fail fallbacks=fail breaker_opens=fail" {
		t.Errorf("sick: %s", got)
	}
}
