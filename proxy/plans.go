package proxy

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

// This file is the control API of ramp plans: the one store write a plan's progress
// and its route's split go through together, the views /v1/plans and status show,
// and the hook by which a human's own change pauses a running plan. The controller
// that drives plans (proxy/plan) plugs in as a PlanDriver.

// PlanDriver is what the admin API asks of the ramp plan controller.
type PlanDriver interface {
	// Plans lists every configured plan with its progress and, where this instance
	// drives it, its live gate readings.
	Plans(ctx context.Context) (PlansAnswer, error)
	// Act starts, pauses, resumes or aborts a route's plan for who.
	Act(ctx context.Context, who, route, verb string) (PlanStatus, error)
}

// PlansAnswer is the body of GET /v1/plans and `plan status -json`.
type PlansAnswer struct {
	Plans []PlanStatus `json:"plans"`
	// Instance is the instance that answered; Driver the one that drives the plans
	// (a fleet elects one) and DriverAdmin its admin address; Driving is whether the
	// answering instance is the driver.
	Instance    string `json:"instance,omitempty"`
	Driver      string `json:"driver,omitempty"`
	DriverAdmin string `json:"driver_admin,omitempty"`
	Driving     bool   `json:"driving"`
	// NoDriver says why no instance drives the plans (the fleet store down, no
	// leader elected): a running plan then holds its step, and while the store is
	// down each instance judges it on its own statistics and may only roll it back
	// on itself (PlanLive.Guard).
	NoDriver string `json:"no_driver,omitempty"`
}

// PlanStatus is one route's plan. Step counts from 1 (0 while idle); Percent and
// WritePercent are the split of the step in force.
type PlanStatus struct {
	Route        string         `json:"route"`
	State        conf.PlanState `json:"state"`
	Step         int            `json:"step"`
	Steps        []float64      `json:"steps"`
	Percent      float64        `json:"percent"`
	WritePercent float64        `json:"write_percent"`
	StepStarted  time.Time      `json:"step_started,omitzero"`
	HoldUntil    time.Time      `json:"hold_until,omitzero"`
	Reason       string         `json:"reason,omitempty"`
	Who          string         `json:"who,omitempty"`
	At           time.Time      `json:"at,omitzero"`
	// Gates are the last readings of the step's window, by the driver.
	Gates []stats.Gate `json:"gates"`
	// Live are the driver's readings: when, how often in this step, the failing
	// streak, and whose statistics went in.
	Live    *PlanLive        `json:"live,omitempty"`
	History []conf.PlanEvent `json:"history,omitempty"`
	// Unpersisted, in the answer to a plan verb, as in RollbackResult.
	Unpersisted string `json:"unpersisted,omitempty"`
	// NotInConfig marks stored progress of a route the answering instance's config
	// does not have (a reload removed it): a running one is paused by the driver.
	NotInConfig bool `json:"not_in_config,omitempty"`
}

// PlanLive are a driver's readings of a running step.
type PlanLive struct {
	CheckedAt time.Time `json:"checked_at"`
	// Checks counts the readings of this step by this driver.
	Checks int `json:"checks"`
	// Failures is the current streak of failing readings.
	Failures int `json:"consecutive_failures"`
	// WindowFrom and WindowTo bound the window read (unix seconds, [from, to)).
	WindowFrom int64 `json:"window_from"`
	WindowTo   int64 `json:"window_to"`
	// Instances are those whose statistics were merged; Missing those that did not
	// answer.
	Instances []string `json:"instances,omitempty"`
	Missing   []string `json:"missing,omitempty"`
	// Decision is what the last reading decided: hold, advance, done, halt or
	// rollback, with its reason.
	Decision string `json:"decision"`
	Why      string `json:"why,omitempty"`
	// Guard is true for the readings of this instance's own statistics while no
	// instance can drive the plans (the fleet store down): it acts only on a
	// rollback, on itself.
	Guard bool `json:"local_guard,omitempty"`
}

// PlanStatusOf describes route r's plan from its progress, without live readings.
// r must have a plan.
func PlanStatusOf(r *conf.Route, p conf.PlanProgress) PlanStatus {
	ps := PlanStatus{Route: r.Name, State: p.State, Reason: p.Reason, Who: p.Who, At: p.At, Gates: []stats.Gate{}, History: p.History}
	for _, sp := range r.Plan.Splits {
		ps.Steps = append(ps.Steps, pct(sp.Read))
	}
	if p.State == "" {
		ps.State = conf.PlanIdle
		return ps
	}
	ps.Step = p.Step + 1
	ps.Percent, ps.WritePercent = pct(p.PercentBP), pct(p.WritePercentBP)
	ps.StepStarted = p.StepAt
	if p.State == conf.PlanRunning {
		ps.HoldUntil = p.StepAt.Add(r.Plan.Hold.D)
	}
	return ps
}

// SetPlanDriver plugs the plan controller in; nil unplugs it. Call it before the
// admin API serves.
func (s *Server) SetPlanDriver(d PlanDriver) {
	if d == nil {
		s.planDriver.Store(nil)
		return
	}
	s.planDriver.Store(&d)
}

// PlanDriver returns the plan controller, or an error answering 404 when none runs.
func (s *Server) PlanDriver() (PlanDriver, error) {
	d := s.planDriver.Load()
	if d == nil {
		return nil, Errorf(http.StatusNotFound, "no ramp plan controller runs in this gateway")
	}
	return *d, nil
}

// PlanSplit is the split a plan write sets for its route. Ramp, when positive, moves
// the split there gradually from where it stands: the way a plan rolls back.
type PlanSplit struct {
	conf.SplitBP
	Ramp time.Duration
}

// PlanChange computes a plan's next progress from the stored one and the route's
// split (its override, else the file's), and the split to set (nil: unchanged). It
// may run more than once (a store write that lost a race is retried), so it must not
// have effects of its own.
type PlanChange func(cur conf.PlanProgress, split conf.SplitBP) (conf.PlanProgress, *PlanSplit, error)

// WritePlan stores route's plan progress and, when the change sets one, its split, in
// one store write (one etcd transaction in a fleet): a step and the split it needs
// never disagree, so whoever drives the plan next continues from there. A split that
// moves users back is refused unless it ramps (a rollback). Every write leaves an
// audit line; a split change leaves the same line a manual split does. unpersisted, as
// in RollbackResult, says the change is in force but not persisted.
func (s *Server) WritePlan(ctx context.Context, who, route string, change PlanChange) (p conf.PlanProgress, unpersisted string, err error) {
	return s.writePlan(ctx, false, who, route, change)
}

// WritePlanLocal is WritePlan on this instance alone, while the fleet store is down:
// the change is kept in state_dir and written to the store when it returns, like the
// verbs' -local changes. It is refused while the store is up (store.ErrLocalWhileUp)
// and without a fleet store.
func (s *Server) WritePlanLocal(ctx context.Context, who, route string, change PlanChange) (conf.PlanProgress, error) {
	if s.fleet() == nil {
		return conf.PlanProgress{}, Errorf(http.StatusBadRequest, "a local plan write needs a fleet store")
	}
	p, _, err := s.writePlan(ctx, true, who, route, change)
	return p, err
}

// StoreDown reports whether this instance's fleet store is down (false without a
// fleet store): no instance can then drive a plan, since each step is a store write.
func (s *Server) StoreDown() bool {
	h, ok := s.storeHealth()
	return ok && !h.Up
}

func (s *Server) writePlan(ctx context.Context, local bool, who, route string, change PlanChange) (p conf.PlanProgress, unpersisted string, err error) {
	st := s.state.Load()
	r, ok := st.cfg.Route(route)
	if !ok {
		return conf.PlanProgress{}, "", Errorf(http.StatusNotFound, "no route %q", route)
	}
	if r.Plan == nil {
		return conf.PlanProgress{}, "", Errorf(http.StatusNotFound, "route %s has no plan (routes[%d].plan in the config)", route, r.Index)
	}
	var (
		before, from conf.SplitBP
		set          *PlanSplit
		prev, next   conf.PlanProgress
	)
	ov, unpersisted, err := s.changeOverrides(ctx, local, func(o *conf.Overrides) error {
		now := s.now().UTC()
		cur := o.Plans[route]
		split, eff := conf.SplitBP{Read: r.PercentBP, Write: r.WritePercentBP}, conf.SplitBP{Read: r.PercentBP, Write: r.WritePercentBP}
		if ro, ok := o.Routes[route]; ok {
			split, eff = conf.SplitBP{Read: ro.PercentBP, Write: ro.WritePercentBP}, ro.SplitAt(now)
		}
		n, sp, err := change(cur.Clone(), split)
		if err != nil {
			return err
		}
		if sp != nil {
			if sp.Write > sp.Read || sp.Read < 0 || sp.Read > 10000 || sp.Write < 0 {
				return Errorf(http.StatusBadRequest, "route %s: %s/%s is not a valid split", route, conf.FormatBP(sp.Read), conf.FormatBP(sp.Write))
			}
			// Against the split users are served (eff: a rollback ramp's position),
			// not the ramp's target, which may be below it.
			if sp.MovesBack(eff) && sp.Ramp <= 0 {
				return Errorf(http.StatusConflict, "route %s: a plan never moves users back at once (%s%% -> %s%%); it rolls back over a ramp",
					route, conf.FormatBP(eff.Read), conf.FormatBP(sp.Read))
			}
			if o.Routes == nil {
				o.Routes = map[string]conf.RouteOverride{}
			}
			ro := conf.RouteOverride{PercentBP: sp.Read, WritePercentBP: sp.Write, Who: who, At: now}
			if sp.Ramp > 0 {
				ro.Ramp = conf.SplitRamp{FromBP: eff.Read, FromWriteBP: eff.Write, Start: now, For: sp.Ramp}
			}
			o.Routes[route] = ro
		}
		n.Who, n.At = who, now
		if o.Plans == nil {
			o.Plans = map[string]conf.PlanProgress{}
		}
		o.Plans[route] = n
		before, from, set, prev, next = split, eff, sp, cur, n
		return nil
	})
	if err != nil {
		return next, "", err
	}
	if set != nil {
		s.log.Info("audit", "who", who, "what", "split", "route", route,
			"before", conf.FormatBP(before.Read)+"/"+conf.FormatBP(before.Write),
			"after", conf.FormatBP(set.Read)+"/"+conf.FormatBP(set.Write),
			"ramp", set.Ramp.String(), "from_effective", conf.FormatBP(from.Read)+"/"+conf.FormatBP(from.Write),
			"revision", ov.Revision, "by_plan", true, "local", local)
	}
	s.log.Info("audit", "who", who, "what", "plan", "route", route, "before", string(stateOr(prev.State)), "after", string(next.State),
		"step", next.Step+1, "percent", conf.FormatBP(next.PercentBP), "reason", next.Reason, "revision", ov.Revision, "persisted", unpersisted == "", "local", local)
	return next, unpersisted, nil
}

func stateOr(s conf.PlanState) conf.PlanState {
	if s == "" {
		return conf.PlanIdle
	}
	return s
}

// PauseOrphanedPlans pauses the running plans of routes the serving config does not
// have (a reload removed the route) and returns them, sorted. Nobody can judge such a
// plan, and if the route came back with its plan running, the first reading would
// judge a window of the time it did not exist and step the split; paused, it waits for
// `plan resume`. The driver calls it; a human's verbs need the route.
func (s *Server) PauseOrphanedPlans(ctx context.Context, who string) ([]string, error) {
	st := s.state.Load()
	var names []string
	for name, p := range st.ov.Plans {
		// A plan with no fingerprint was started through another instance and not
		// yet adopted by a driver: during a rolling deploy that adds the route, the
		// driver may not have it yet, and that is no removal.
		if _, ok := st.cfg.Route(name); !ok && p.State == conf.PlanRunning && p.Fingerprint != "" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	var paused []string
	ov, _, err := s.changeOverrides(ctx, false, func(o *conf.Overrides) error {
		cfg := s.state.Load().cfg
		var still []string
		for _, name := range names {
			if _, ok := cfg.Route(name); !ok {
				still = append(still, name)
			}
		}
		paused = nil
		if len(still) > 0 {
			paused = pausePlans(o, still, s.now().UTC(), who, "its route is not in the config (a reload removed it)")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.logPaused(who, paused, "route removed by a reload", ov.Revision)
	return paused, nil
}

// pausePlans pauses the running plans of the named routes (every route when names
// is nil) in o: a human's own change wins over the plan. It returns the routes it
// paused, sorted.
func pausePlans(o *conf.Overrides, names []string, now time.Time, who, reason string) []string {
	var paused []string
	for name, p := range o.Plans {
		if p.State != conf.PlanRunning || (names != nil && !slices.Contains(names, name)) {
			continue
		}
		o.Plans[name] = p.Paused(now, who, reason+": the human wins; `shiftgate plan resume "+name+"` continues from the split in force")
		paused = append(paused, name)
	}
	sort.Strings(paused)
	return paused
}

// logPaused leaves the audit line of plans a human's change paused.
func (s *Server) logPaused(who string, paused []string, why string, revision int64) {
	if len(paused) == 0 {
		return
	}
	s.log.Warn("audit", "who", who, "what", "plan paused", "routes", strings.Join(paused, ","), "reason", why, "revision", revision)
}

// planOf returns the plan status of route i for status, nil without a plan.
func planOf(st *state, i int) *PlanStatus {
	r := &st.cfg.Routes[i]
	if r.Plan == nil {
		return nil
	}
	ps := PlanStatusOf(r, st.ov.Plans[r.Name])
	ps.History = nil // status stays short; /v1/plans has it
	return &ps
}

// BreakerOpens counts how often the breaker of route's region has opened on this
// instance since it started (from closed or half-open): a plan's breaker gate
// compares two readings. 0 for a route or region without a breaker.
func (s *Server) BreakerOpens(route, region string) uint64 {
	const name = `shiftgate_breaker_transitions_total{route=%q,region=%q,from=%q,to=%q}`
	if !s.metrics.series(fmt.Sprintf(name, route, region, "closed", "open")) {
		return 0
	}
	return s.metrics.counter(name, route, region, "closed", "open").Get() +
		s.metrics.counter(name, route, region, "half-open", "open").Get()
}
