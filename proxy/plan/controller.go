package plan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

// Reader reads route's cohorts over [since, now), merged over the fleet in a fleet.
// totals asks for Window.Fallbacks and Window.Total too (a costlier read).
type Reader func(ctx context.Context, route string, since time.Time, totals bool) (Window, error)

// Options configure a Controller. Read is required.
type Options struct {
	// Read reads the statistics the gates judge.
	Read Reader
	// Logger receives the controller's logs; nil logs to slog.Default().
	Logger *slog.Logger
	// Now is the clock plans are timed by; nil means time.Now.
	Now func() time.Time
	// Instance names this instance in the audit log and /v1/plans ("" alone).
	Instance string
	// Driver, when set, names the instance that drives the plans and its admin
	// address (a fleet elects one); nil means this instance always drives them.
	Driver func(ctx context.Context) (name, admin string, err error)
	// Tick is how often Drive looks for plans due a reading; default 100ms. Each
	// plan is read every plan.interval.
	Tick time.Duration
	// LocalRead reads this instance's own statistics, for Guard; nil: Guard does
	// nothing.
	LocalRead Reader
}

// Controller drives ramp plans: while Drive runs (on the one instance a fleet elects)
// it reads each running plan's gates every interval, decides with Decide, and stores
// what the decision changes through the server's WritePlan. It is also the server's
// PlanDriver: /v1/plans and the plan verbs come here. Its methods are safe for
// concurrent use.
type Controller struct {
	srv *proxy.Server
	opt Options

	driving atomic.Bool
	mu      sync.Mutex
	drive   judge // Drive's readings, with the fleet's statistics
	guard   judge // Guard's readings, with this instance's own
}

// judge is one way of reading plans: the driver's, which acts on every decision
// through the store, or the guard's (local), which acts only on a rollback, on this
// instance alone.
type judge struct {
	read  Reader
	local bool
	live  map[string]*live // by route, readings of the step in force; guarded by mu
}

// live are the readings of one running step by this driver.
type live struct {
	step        conf.PlanProgress // the step these readings are of
	next        time.Time         // when the step is next read
	checkedAt   time.Time
	checks      int
	failures    int
	gates       []stats.Gate
	win         Window
	decision    Decision
	breakerBase uint64
}

// New returns a controller of srv's plans; call srv.SetPlanDriver with it and run
// Drive where the plans are to be driven.
func New(srv *proxy.Server, opt Options) *Controller {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Tick <= 0 {
		opt.Tick = 100 * time.Millisecond
	}
	return &Controller{srv: srv, opt: opt,
		drive: judge{read: opt.Read, live: map[string]*live{}},
		guard: judge{read: opt.LocalRead, local: true, live: map[string]*live{}}}
}

// who names this controller in the audit log and the store.
func (c *Controller) who() string {
	if c.opt.Instance == "" {
		return "plan"
	}
	return "plan@" + c.opt.Instance
}

// Drive reads and steps the running plans until ctx ends (the fleet's leadership is
// lost, or the gateway stops). Progress is in the store, so whoever drives next
// continues from the step in force.
func (c *Controller) Drive(ctx context.Context) {
	c.driving.Store(true)
	defer func() {
		c.driving.Store(false)
		c.mu.Lock()
		c.drive.live = map[string]*live{}
		c.mu.Unlock()
	}()
	c.opt.Logger.Info("driving ramp plans", "instance", c.opt.Instance)
	t := time.NewTicker(c.opt.Tick)
	defer t.Stop()
	for {
		c.CheckDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckDue reads every running plan whose last reading is an interval old, and acts on
// what each decides. Drive calls it every tick; tests call it directly.
func (c *Controller) CheckDue(ctx context.Context) { c.checkDue(ctx, &c.drive) }

// Guard watches the running plans while no instance can drive them, until ctx ends:
// while the fleet store is down (each step is a store write, and the election that
// picks the driver lives there) and this instance does not drive. It reads each plan
// as the driver would, but from this instance's own statistics (Options.LocalRead),
// and acts on one decision only: a rollback, written on this instance alone
// (Server.WritePlanLocal) and to the store when it returns, which then stops the plan
// fleet-wide. A plan that would advance, finish or halt holds until a driver is back:
// without the store no instance may move users forward, but each may still move its
// own back when the new region hurts them.
func (c *Controller) Guard(ctx context.Context) {
	if c.opt.LocalRead == nil {
		return
	}
	t := time.NewTicker(c.opt.Tick)
	defer t.Stop()
	for {
		c.GuardDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// GuardDue is one round of Guard: it reads the plans due a reading while the store is
// down and this instance does not drive, and otherwise forgets the guard's readings
// (a later outage starts its streaks afresh). Tests call it directly.
func (c *Controller) GuardDue(ctx context.Context) {
	if c.driving.Load() || !c.srv.StoreDown() {
		c.mu.Lock()
		clear(c.guard.live)
		c.mu.Unlock()
		return
	}
	c.checkDue(ctx, &c.guard)
}

func (c *Controller) checkDue(ctx context.Context, j *judge) {
	if !j.local {
		if _, err := c.srv.PauseOrphanedPlans(ctx, c.who()); err != nil {
			c.opt.Logger.Error("plan of a removed route not paused; trying again", "err", err)
		}
	}
	cfg, ov := c.srv.Config(), c.srv.Overrides()
	now := c.opt.Now()
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		p, ok := ov.Plans[r.Name]
		if r.Plan == nil || !ok || p.State != conf.PlanRunning {
			c.forget(j, r.Name)
			continue
		}
		c.mu.Lock()
		l := j.live[r.Name]
		// A step not read yet by this driver (just begun, or taken over from
		// another) is read once its window can hold a complete second: at once
		// when it began long ago.
		next := firstReading(p.StepAt, r.Plan.Interval.D)
		if l != nil && l.step.SameStep(p) {
			next = l.next
		}
		due := !now.Before(next)
		c.mu.Unlock()
		if due && ctx.Err() == nil {
			c.check(ctx, j, r, p, ov)
		}
	}
}

func (c *Controller) forget(j *judge, route string) {
	c.mu.Lock()
	delete(j.live, route)
	c.mu.Unlock()
}

// errMoved refuses a driver's write when the stored progress is no longer the step it
// read: another driver or a human got there first.
var errMoved = errors.New("the plan moved since it was read")

// check reads one running plan once and writes what it decides (the guard: only a
// rollback).
func (c *Controller) check(ctx context.Context, j *judge, r *conf.Route, p conf.PlanProgress, ov conf.Overrides) {
	pl, now := r.Plan, c.opt.Now().UTC()
	// The human wins: a change this plan did not make pauses it. The guard leaves
	// that to the driver and does not judge a plan someone overruled.
	if why := c.overruled(r, p, ov); why != "" {
		if j.local {
			return
		}
		c.write(ctx, j, r, p, "pause", func(cur conf.PlanProgress, _ conf.SplitBP) (conf.PlanProgress, *proxy.PlanSplit, error) {
			return cur.Paused(now, c.who(), why+": the human wins; `shiftgate plan resume "+r.Name+"` continues from the split in force"), nil, nil
		})
		return
	}
	if p.Fingerprint == "" && !j.local {
		// Started or resumed through another instance: the plan is judged by this
		// driver's config from here on, and a reload of it will pause the plan.
		c.write(ctx, j, r, p, "adopt", func(cur conf.PlanProgress, _ conf.SplitBP) (conf.PlanProgress, *proxy.PlanSplit, error) {
			return cur, nil, nil
		})
		return
	}
	c.mu.Lock()
	l := j.live[r.Name]
	if l == nil || !l.step.SameStep(p) {
		l = &live{step: p, breakerBase: c.srv.BreakerOpens(r.Name, r.To)}
		j.live[r.Name] = l
	}
	failures, base := l.failures, l.breakerBase
	c.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, max(pl.Interval.D, 2*time.Second))
	w, err := j.read(rctx, r.Name, p.StepAt, pl.Gates.Fallbacks != nil)
	cancel()
	var gates []stats.Gate
	var d Decision
	if err != nil {
		// No statistics is no evidence: hold, neither pass nor fail.
		d = Decision{Action: Hold, Failures: failures, Why: "statistics unavailable: " + err.Error()}
	} else {
		opens := int64(c.srv.BreakerOpens(r.Name, r.To) - base)
		gates = Judge(pl, w, opens)
		d = Decide(pl, p, failures, now, gates)
	}
	c.mu.Lock()
	l.checkedAt, l.failures, l.decision, l.next = now, d.Failures, d, now.Add(pl.Interval.D)
	l.checks++
	readings := l.checks
	if err == nil {
		l.gates, l.win = gates, w
	}
	c.mu.Unlock()
	if d.Action == Hold || (j.local && d.Action != Rollback) {
		return
	}
	c.write(ctx, j, r, p, string(d.Action), func(cur conf.PlanProgress, split conf.SplitBP) (conf.PlanProgress, *proxy.PlanSplit, error) {
		n, sp, _ := Next(pl, cur, d, gates, split, now, c.who())
		n.History[len(n.History)-1].Readings = readings
		return n, sp, nil
	})
}

// overruled says why a running plan must pause because someone else changed what it
// depends on, "" when nothing did: a reload that changed the route or its plan, a
// split the plan did not set (a direct store write), the rollback switch.
func (c *Controller) overruled(r *conf.Route, p conf.PlanProgress, ov conf.Overrides) string {
	if p.Fingerprint != "" && p.Fingerprint != r.PlanFingerprint() {
		return "a config reload changed route " + r.Name + " or its plan"
	}
	if ov.Rollback.On {
		return "rollback is on"
	}
	split := conf.SplitBP{Read: r.PercentBP, Write: r.WritePercentBP}
	if ro, ok := ov.Routes[r.Name]; ok {
		split = conf.SplitBP{Read: ro.PercentBP, Write: ro.WritePercentBP}
	}
	if split.Read != p.PercentBP || split.Write != p.WritePercentBP {
		return fmt.Sprintf("the split was changed outside the plan (%s%%/%s%%, the plan set %s%%/%s%%)",
			conf.FormatBP(split.Read), conf.FormatBP(split.Write), conf.FormatBP(p.PercentBP), conf.FormatBP(p.WritePercentBP))
	}
	return ""
}

// write stores a driver's change of p, provided the stored progress still stands at
// p's step; the fingerprint of the route's config goes with it. The guard's goes to
// this instance alone.
func (c *Controller) write(ctx context.Context, j *judge, r *conf.Route, p conf.PlanProgress, what string, change proxy.PlanChange) {
	fp := r.PlanFingerprint()
	guarded := func(cur conf.PlanProgress, split conf.SplitBP) (conf.PlanProgress, *proxy.PlanSplit, error) {
		if !cur.SameStep(p) {
			return cur, nil, errMoved
		}
		n, sp, err := change(cur, split)
		n.Fingerprint = fp
		return n, sp, err
	}
	var n conf.PlanProgress
	var err error
	if j.local {
		n, err = c.srv.WritePlanLocal(ctx, c.who(), r.Name, guarded)
		if err == nil {
			c.opt.Logger.Warn("plan rolled back on THIS INSTANCE ONLY by its own statistics while no instance can drive the plans (the fleet store is down); written to the store when it returns",
				"route", r.Name, "why", n.Reason)
		}
	} else {
		// An unpersisted write is in force in memory; the server retries it and
		// says so loudly: the plan goes on from it.
		n, _, err = c.srv.WritePlan(ctx, c.who(), r.Name, guarded)
	}
	switch {
	case errors.Is(err, errMoved):
		c.opt.Logger.Info("plan moved meanwhile; reading it again", "route", r.Name, "would", what)
	case err != nil:
		// Tried again at the next interval: the decision is made afresh then.
		c.opt.Logger.Error("plan step not stored", "route", r.Name, "would", what, "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(j.live, r.Name)
		return
	}
	j.live[r.Name] = &live{step: n, next: firstReading(n.StepAt, r.Plan.Interval.D), breakerBase: c.srv.BreakerOpens(r.Name, r.To)}
}

// firstReading is when a step that began at start is first read: an interval later,
// and not before its window holds a complete second (the statistics keep whole
// seconds, and the recording clock may lag by a tenth of one), so the first reading
// is never empty by construction.
func firstReading(start time.Time, interval time.Duration) time.Time {
	complete := start.Truncate(time.Second).Add(2*time.Second + 150*time.Millisecond)
	if start.Equal(start.Truncate(time.Second)) {
		complete = complete.Add(-time.Second)
	}
	return maxTime(start.Add(interval), complete)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Act implements proxy.PlanDriver: start, pause, resume or abort a route's plan. Any
// instance takes them (they go to the store); the driver picks them up.
func (c *Controller) Act(ctx context.Context, who, route, verb string) (proxy.PlanStatus, error) {
	cfg := c.srv.Config()
	r, ok := cfg.Route(route)
	if !ok {
		return proxy.PlanStatus{}, proxy.Errorf(http.StatusNotFound, "no route %q", route)
	}
	if r.Plan == nil {
		return proxy.PlanStatus{}, proxy.Errorf(http.StatusNotFound, "route %s has no plan (routes[%d].plan in the config)", route, r.Index)
	}
	pl, fp := r.Plan, r.PlanFingerprint()
	var change proxy.PlanChange
	switch verb {
	case "start", "resume":
		ov := c.srv.Overrides()
		if ov.Rollback.On {
			return proxy.PlanStatus{}, proxy.Errorf(http.StatusConflict, "rollback is on: turn it off before a plan can %s", verb)
		}
		if why := splitRamping(ov, route, c.opt.Now()); why != "" {
			return proxy.PlanStatus{}, proxy.Errorf(http.StatusConflict,
				"route %s: %s: a plan cannot %s until it ends (its step would be judged on a split users are not served, and then set at once)", route, why, verb)
		}
		f := Start
		if verb == "resume" {
			f = Resume
		}
		// The fingerprint is the driver's to set: stamped with this instance's config
		// where the driver runs elsewhere, a config that differs (a rolling deploy)
		// would read as a reload and pause the plan at once. Left empty, the driver
		// stamps its own at its first reading.
		if c.opt.Driver != nil && !c.driving.Load() {
			fp = ""
		}
		change = func(cur conf.PlanProgress, split conf.SplitBP) (conf.PlanProgress, *proxy.PlanSplit, error) {
			n, sp, err := f(route, pl, cur, split, c.opt.Now().UTC(), who)
			n.Fingerprint = fp
			return n, sp, err
		}
	case "pause":
		change = func(cur conf.PlanProgress, _ conf.SplitBP) (conf.PlanProgress, *proxy.PlanSplit, error) {
			n, err := Pause(route, cur, c.opt.Now().UTC(), who)
			return n, nil, err
		}
	case "abort":
		change = func(cur conf.PlanProgress, _ conf.SplitBP) (conf.PlanProgress, *proxy.PlanSplit, error) {
			return Abort(route, pl, cur, c.opt.Now().UTC(), who)
		}
	default:
		return proxy.PlanStatus{}, proxy.Errorf(http.StatusBadRequest, "want start, pause, resume or abort, got %q", verb)
	}
	p, unpersisted, err := c.srv.WritePlan(ctx, who, route, change)
	if err != nil {
		return proxy.PlanStatus{}, err
	}
	c.mu.Lock()
	delete(c.drive.live, route)
	delete(c.guard.live, route)
	if p.State == conf.PlanRunning {
		c.drive.live[route] = &live{step: p, next: firstReading(p.StepAt, pl.Interval.D), breakerBase: c.srv.BreakerOpens(route, r.To)}
	}
	c.mu.Unlock()
	ps := proxy.PlanStatusOf(r, p)
	ps.Unpersisted = unpersisted
	return ps, nil
}

// splitRamping says how route's split is ramping at now ("" when it is not): the
// rollback switch turned off with a ramp, or a ramp of the route's own (a plan's
// rollback, an abort).
func splitRamping(ov conf.Overrides, route string, now time.Time) string {
	if ov.Ramping(now) {
		end := ov.Rollback.RampFrom.Add(ov.Rollback.RampFor)
		return fmt.Sprintf("the splits are ramping back after rollback until %s (%s from now)", end.UTC().Format(time.RFC3339), end.Sub(now).Truncate(time.Second))
	}
	if ro, ok := ov.Routes[route]; ok && ro.Ramping(now) {
		end := ro.Ramp.Start.Add(ro.Ramp.For)
		at := ro.SplitAt(now)
		return fmt.Sprintf("its split is ramping from %s%% to %s%% (%s%% now) until %s (%s from now)", conf.FormatBP(ro.Ramp.FromBP),
			conf.FormatBP(ro.PercentBP), conf.FormatBP(at.Read), end.UTC().Format(time.RFC3339), end.Sub(now).Truncate(time.Second))
	}
	return ""
}

// Plans implements proxy.PlanDriver: every configured plan, its progress from the
// store and, while this instance drives it, its live readings.
func (c *Controller) Plans(ctx context.Context) (proxy.PlansAnswer, error) {
	cfg, ov := c.srv.Config(), c.srv.Overrides()
	out := proxy.PlansAnswer{Plans: []proxy.PlanStatus{}, Instance: c.opt.Instance, Driving: c.driving.Load()}
	if c.opt.Driver == nil {
		out.Driver = c.opt.Instance
	} else if name, admin, err := c.opt.Driver(ctx); err != nil {
		out.NoDriver = err.Error()
	} else if name == "" {
		out.NoDriver = "no instance leads the plans' election yet"
	} else {
		out.Driver, out.DriverAdmin = name, admin
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if r.Plan == nil {
			continue
		}
		p := ov.Plans[r.Name]
		ps := proxy.PlanStatusOf(r, p)
		l, local := c.drive.live[r.Name], false
		if l == nil || !l.step.SameStep(p) || l.checks == 0 {
			l, local = c.guard.live[r.Name], true
		}
		if l != nil && l.step.SameStep(p) && l.checks > 0 {
			ps.Gates = append(ps.Gates, l.gates...)
			ps.Live = &proxy.PlanLive{CheckedAt: l.checkedAt, Checks: l.checks, Failures: l.failures, Guard: local,
				Instances: l.win.Instances, Missing: l.win.Missing, Decision: string(l.decision.Action), Why: l.decision.Why}
			if !l.win.From.IsZero() {
				ps.Live.WindowFrom, ps.Live.WindowTo = l.win.From.Unix(), l.win.To.Unix()
			}
		}
		out.Plans = append(out.Plans, ps)
	}
	// Progress stored for a route this config does not have (a reload removed it):
	// shown, so that a plan nobody can judge does not vanish from view.
	for name, p := range ov.Plans {
		if _, ok := cfg.Route(name); ok || p.State == "" {
			continue
		}
		ps := proxy.PlanStatus{Route: name, State: p.State, Step: p.Step + 1, Percent: float64(p.PercentBP) / 100,
			WritePercent: float64(p.WritePercentBP) / 100, StepStarted: p.StepAt, Reason: p.Reason, Who: p.Who, At: p.At,
			Gates: []stats.Gate{}, History: p.History, NotInConfig: true}
		out.Plans = append(out.Plans, ps)
	}
	sort.Slice(out.Plans, func(i, j int) bool { return out.Plans[i].Route < out.Plans[j].Route })
	return out, nil
}
