package plan

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

// This file is the plan's state machine as pure functions of the plan, its stored
// progress, the route's split, the gate readings and the time: what a reading
// decides (Decide), what a decision or a human's verb stores (Next, Start, Pause,
// Resume, Abort). The controller only reads, calls these and writes.

// Action is what a gate reading decides.
type Action string

// The actions.
const (
	// Hold keeps the step: its hold has not passed, a gate is inconclusive, or a
	// gate failed fewer times in a row than the plan's failures.
	Hold Action = "hold"
	// Advance moves to the next step.
	Advance Action = "advance"
	// Finish moves to the last step (or stays there) and ends the plan: at the last
	// step there is no one left to compare with, or nothing further to do.
	Finish Action = "done"
	// Halt stops the plan at the step: the split stays; a human decides.
	Halt Action = "halt"
	// Rollback stops the plan and ramps the route's split down to 0.
	Rollback Action = "rollback"
)

// Decision is a reading's verdict: the action, the failing streak after it, and why.
type Decision struct {
	Action   Action
	Failures int
	Why      string
}

// Decide judges one reading of a running step. failures is the failing streak before
// it. Any failing gate extends the streak, and at the plan's failures it halts or
// rolls back; an inconclusive gate (too few samples) holds and neither passes nor
// fails; when every gate passes and the step has been held for the plan's hold, the
// plan advances (or finishes, when the next step is the last).
func Decide(pl *conf.Plan, p conf.PlanProgress, failures int, now time.Time, gates []stats.Gate) Decision {
	var failed, unsure []string
	for _, g := range gates {
		switch g.Outcome {
		case stats.Fail:
			failed = append(failed, g.Name+" ("+g.Reason+")")
		case stats.Inconclusive:
			unsure = append(unsure, g.Name+" ("+g.Reason+")")
		case stats.Pass:
		default:
			unsure = append(unsure, g.Name+" (no outcome)")
		}
	}
	if len(failed) > 0 {
		failures++
		what := strings.Join(failed, ", ")
		if failures >= pl.Failures {
			act := Halt
			if pl.RollbackOnFail {
				act = Rollback
			}
			return Decision{Action: act, Failures: failures, Why: fmt.Sprintf("%s failed %d reading(s) in a row", what, failures)}
		}
		return Decision{Action: Hold, Failures: failures, Why: fmt.Sprintf("%s failed (%d of %d in a row before %s)", what, failures, pl.Failures, pl.OnFail)}
	}
	if len(unsure) > 0 {
		return Decision{Action: Hold, Why: "inconclusive, holding: " + strings.Join(unsure, ", ")}
	}
	if len(gates) == 0 {
		return Decision{Action: Hold, Why: "no gate reading"}
	}
	if held := now.Sub(p.StepAt); held < pl.Hold.D {
		return Decision{Action: Hold, Why: fmt.Sprintf("gates pass; holding %s of %s", held.Truncate(time.Second), pl.Hold.D)}
	}
	if p.Step+1 >= len(pl.Splits)-1 {
		return Decision{Action: Finish, Why: "gates pass after the hold; the next step is the last"}
	}
	return Decision{Action: Advance, Why: "gates pass after the hold"}
}

// Records turns gate readings into the form a plan's history keeps.
func Records(gates []stats.Gate) []conf.PlanGateRecord {
	out := make([]conf.PlanGateRecord, 0, len(gates))
	for _, g := range gates {
		out = append(out, conf.PlanGateRecord{Name: g.Name, Outcome: string(g.Outcome), Moved: g.Moved, Stayed: g.Stayed,
			MovedN: g.Samples.Moved, StayedN: g.Samples.Stayed})
	}
	return out
}

// raise returns the split to step to from cur: never lower than cur (a plan never
// moves anyone back on its way up), writes never above reads.
func raise(cur, step conf.SplitBP) conf.SplitBP {
	out := conf.SplitBP{Read: max(cur.Read, step.Read), Write: max(cur.Write, step.Write)}
	out.Write = min(out.Write, out.Read)
	return out
}

// Position is where a plan (re)starts from the route's split cur: the highest step
// at or below cur in reads and in writes, so the split in force is judged before
// anything moves (writes lagging reads stay until the step that raises them is
// reached by the gates), or the first step when cur is below them all; and the
// split that step needs.
func Position(pl *conf.Plan, cur conf.SplitBP) (int, conf.SplitBP) {
	i := 0
	for j, s := range pl.Splits {
		if s.Read <= cur.Read && s.Write <= cur.Write {
			i = j
		}
	}
	return i, raise(cur, pl.Splits[i])
}

// enter puts p at step i with split sp from now.
func enter(p conf.PlanProgress, i int, sp conf.SplitBP, now time.Time) conf.PlanProgress {
	p.Step, p.StepAt, p.PercentBP, p.WritePercentBP = i, now, sp.Read, sp.Write
	return p
}

func event(name string, p conf.PlanProgress, now time.Time, by, why string, gates []stats.Gate) conf.PlanEvent {
	e := conf.PlanEvent{Event: name, Step: p.Step, PercentBP: p.PercentBP, WritePercentBP: p.WritePercentBP, At: now, By: by, Reason: why}
	if gates != nil {
		e.Gates = Records(gates)
	}
	return e
}

func splitChange(cur, next conf.SplitBP) *proxy.PlanSplit {
	if next == cur {
		return nil
	}
	return &proxy.PlanSplit{SplitBP: next}
}

// Next is what a decision stores: the progress and the route's split (nil: the split
// stays). A Hold stores nothing (ok false). by names the driver.
func Next(pl *conf.Plan, p conf.PlanProgress, d Decision, gates []stats.Gate, cur conf.SplitBP, now time.Time, by string) (conf.PlanProgress, *proxy.PlanSplit, bool) {
	switch d.Action {
	case Advance, Finish:
		i := min(p.Step+1, len(pl.Splits)-1)
		sp := raise(cur, pl.Splits[i])
		p = enter(p, i, sp, now)
		p.State, p.Reason = conf.PlanRunning, fmt.Sprintf("step %d of %d (%s%%) since %s", i+1, len(pl.Splits), conf.FormatBP(sp.Read), now.Format(time.RFC3339))
		name := "advance"
		if d.Action == Finish {
			p.State, p.Reason, name = conf.PlanDone, fmt.Sprintf("done: the last step (%s%%) reached", conf.FormatBP(sp.Read)), "done"
		}
		return p.WithEvent(event(name, p, now, by, d.Why, gates)), splitChange(cur, sp), true
	case Halt:
		p.State, p.Reason = conf.PlanHalted, "halted: "+d.Why
		return p.WithEvent(event("halted", p, now, by, d.Why, gates)), nil, true
	case Rollback:
		p.State, p.Reason = conf.PlanRolledBack, fmt.Sprintf("rolled back over %s: %s", pl.RollbackRamp.D, d.Why)
		return p.WithEvent(event("rolled_back", p, now, by, d.Why, gates)),
			&proxy.PlanSplit{Ramp: pl.RollbackRamp.D}, true
	}
	return p, nil, false
}

// verbError is a verb refused in the plan's state: a conflict.
func verbError(route string, p conf.PlanProgress, verb, hint string) error {
	st := p.State
	if st == "" {
		st = conf.PlanIdle
	}
	return proxy.Errorf(http.StatusConflict, "route %s: cannot %s a plan that is %s%s", route, verb, st, hint)
}

// Start (re)starts a plan that is idle, halted, rolled back or done at Position: the
// step at or below the route's split, raising the split only when it is below the
// first step. A split already at the last step finishes the plan at once.
func Start(route string, pl *conf.Plan, p conf.PlanProgress, cur conf.SplitBP, now time.Time, who string) (conf.PlanProgress, *proxy.PlanSplit, error) {
	switch p.State {
	case conf.PlanRunning:
		return p, nil, verbError(route, p, "start", "")
	case conf.PlanPaused:
		return p, nil, verbError(route, p, "start", ": resume it")
	}
	i, sp := Position(pl, cur)
	p = enter(p, i, sp, now)
	p.State, p.Reason = conf.PlanRunning, fmt.Sprintf("started by %s at step %d of %d (%s%%)", who, i+1, len(pl.Splits), conf.FormatBP(sp.Read))
	name := "start"
	if i == len(pl.Splits)-1 {
		p.State, p.Reason, name = conf.PlanDone, fmt.Sprintf("done: the split (%s%%) is already at the last step", conf.FormatBP(sp.Read)), "done"
	}
	return p.WithEvent(event(name, p, now, who, "", nil)), splitChange(cur, sp), nil
}

// Pause stops a running plan where it stands; the split stays.
func Pause(route string, p conf.PlanProgress, now time.Time, who string) (conf.PlanProgress, error) {
	if p.State != conf.PlanRunning {
		return p, verbError(route, p, "pause", "")
	}
	return p.Paused(now, who, "paused by "+who), nil
}

// Resume continues a paused or halted plan from the split in force: the step at or
// below it is held and judged afresh from now, so a window never spans the pause.
func Resume(route string, pl *conf.Plan, p conf.PlanProgress, cur conf.SplitBP, now time.Time, who string) (conf.PlanProgress, *proxy.PlanSplit, error) {
	if p.State != conf.PlanPaused && p.State != conf.PlanHalted {
		hint := ""
		if p.State != conf.PlanRunning {
			hint = ": start it"
		}
		return p, nil, verbError(route, p, "resume", hint)
	}
	i, sp := Position(pl, cur)
	p = enter(p, i, sp, now)
	p.State, p.Reason = conf.PlanRunning, fmt.Sprintf("resumed by %s at step %d of %d (%s%%)", who, i+1, len(pl.Splits), conf.FormatBP(sp.Read))
	return p.WithEvent(event("resumed", p, now, who, "", nil)), splitChange(cur, sp), nil
}

// Abort stops a running, paused or halted plan and rolls its route back to 0 over the
// plan's rollback_ramp.
func Abort(route string, pl *conf.Plan, p conf.PlanProgress, now time.Time, who string) (conf.PlanProgress, *proxy.PlanSplit, error) {
	switch p.State {
	case conf.PlanRunning, conf.PlanPaused, conf.PlanHalted:
	default:
		return p, nil, verbError(route, p, "abort", "")
	}
	why := "aborted by " + who
	p.State, p.Reason = conf.PlanRolledBack, fmt.Sprintf("rolled back over %s: %s", pl.RollbackRamp.D, why)
	return p.WithEvent(event("rolled_back", p, now, who, why, nil)), &proxy.PlanSplit{Ramp: pl.RollbackRamp.D}, nil
}
