package plan

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

// clock is a settable clock shared by the server and the controller.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const planConfig = `regions:
  idc: {upstreams: ["127.0.0.1:9"]}
  cloud: {upstreams: ["127.0.0.1:9"]}
split: {from: idc, to: cloud, salt: s}
routes:
  - name: feed
    match: {path_prefix: /api/feed}
    percent: 0
    plan:
      steps: [1, 5, 25, 50, 100]
      hold: 10s
      interval: 2s
      min_requests: 100
      failures: 2
      rollback_ramp: 1m
  - name: default
    match: {path_prefix: /}
`

// fakeReads answers every read with the window the test sets, and records the reads.
type fakeReads struct {
	mu     sync.Mutex
	w      Window
	err    error
	sinces []time.Time
	hook   func() // runs inside a read, outside the lock
}

func (f *fakeReads) read(_ context.Context, route string, since time.Time, _ bool) (Window, error) {
	f.mu.Lock()
	f.sinces = append(f.sinces, since)
	w, err, hook := f.w, f.err, f.hook
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return w, err
}

func (f *fakeReads) set(w Window, err error) { f.mu.Lock(); f.w, f.err = w, err; f.mu.Unlock() }

func cohort(n, errs uint64) stats.Tally {
	t := stats.Tally{Counts: stats.Counts{Requests: n, Errors: errs}, Hist: stats.NewHistogram(0)}
	for i := uint64(0); i < n; i++ {
		t.Hist.Observe(time.Millisecond)
	}
	return t
}

var (
	healthyWindow = Window{Moved: cohort(400, 0), Stayed: cohort(4000, 2)}
	failingWindow = Window{Moved: cohort(400, 120), Stayed: cohort(4000, 2)}
	thinWindow    = Window{Moved: cohort(3, 0), Stayed: cohort(40, 0)}
)

type rig struct {
	srv   *proxy.Server
	ctrl  *Controller
	clk   *clock
	reads *fakeReads
}

func newRig(t *testing.T, yamlText string) *rig {
	t.Helper()
	cfg, err := conf.Parse("", []byte(yamlText))
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := proxy.New(cfg, proxy.Options{Logger: log, Now: clk.Now, NoFallbackStore: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(time.Second) })
	reads := &fakeReads{w: healthyWindow}
	ctrl := New(srv, Options{Read: reads.read, Logger: log, Now: clk.Now, Instance: "a"})
	srv.SetPlanDriver(ctrl)
	return &rig{srv: srv, ctrl: ctrl, clk: clk, reads: reads}
}

func (r *rig) progress() conf.PlanProgress { return r.srv.Overrides().Plans["feed"] }

func (r *rig) split() conf.SplitBP {
	ro := r.srv.Overrides().Routes["feed"]
	return ro.SplitAt(r.clk.Now())
}

// tick moves the clock one gate interval and reads the due plans.
func (r *rig) tick() {
	r.clk.add(2 * time.Second)
	r.ctrl.CheckDue(context.Background())
}

// until ticks until cond holds, at most n times.
func (r *rig) until(t *testing.T, n int, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < n; i++ {
		if cond() {
			return
		}
		r.tick()
	}
	if !cond() {
		t.Fatalf("after %d readings: %s; progress %+v", n, what, r.progress())
	}
}

func (r *rig) act(t *testing.T, verb string) proxy.PlanStatus {
	t.Helper()
	ps, err := r.ctrl.Act(context.Background(), "ops", "feed", verb)
	if err != nil {
		t.Fatalf("%s: %v", verb, err)
	}
	return ps
}

func TestControllerWalksToDone(t *testing.T) {
	r := newRig(t, planConfig)
	if ps := r.act(t, "start"); ps.State != conf.PlanRunning || ps.Step != 1 || ps.Percent != 1 {
		t.Fatalf("start: %+v", ps)
	}
	if sp := r.split(); sp.Read != 100 || sp.Write != 100 {
		t.Fatalf("split after start: %+v", sp)
	}
	r.until(t, 100, "the plan finishes", func() bool { return r.progress().State == conf.PlanDone })
	var walked []string
	for _, e := range r.progress().History {
		walked = append(walked, e.Event+":"+conf.FormatBP(e.PercentBP))
		if e.Event == "advance" || e.Event == "done" {
			if len(e.Gates) != 2 || e.Gates[0].Outcome != "pass" || e.Gates[1].Outcome != "pass" || e.By != "plan@a" {
				t.Errorf("advance without passing gates: %+v", e)
			}
		}
	}
	if got := strings.Join(walked, " "); got != "start:1 advance:5 advance:25 advance:50 done:100" {
		t.Errorf("walked %s", got)
	}
	if sp := r.split(); sp.Read != 10000 || sp.Write != 10000 {
		t.Errorf("split at the end: %+v", sp)
	}
	// Every read asked for the window since its step began, never before it.
	p := r.progress()
	r.reads.mu.Lock()
	defer r.reads.mu.Unlock()
	for _, s := range r.reads.sinces {
		ok := false
		for _, e := range p.History {
			ok = ok || s.Equal(e.At)
		}
		if !ok {
			t.Errorf("a read since %v, which no step began at", s)
		}
	}
	// Each step was held its 10 s: steps are at least a hold apart.
	for i := 1; i < len(p.History); i++ {
		if d := p.History[i].At.Sub(p.History[i-1].At); d < 10*time.Second {
			t.Errorf("step %d after %s", i, d)
		}
	}
}

func TestControllerRollsBackAndHalts(t *testing.T) {
	for _, onFail := range []string{"rollback", "halt"} {
		t.Run(onFail, func(t *testing.T) {
			r := newRig(t, strings.Replace(planConfig, "rollback_ramp: 1m", "rollback_ramp: 1m\n      on_fail: "+onFail, 1))
			r.act(t, "start")
			r.until(t, 100, "step 3 (25 %)", func() bool { return r.progress().Step == 2 })
			r.reads.set(failingWindow, nil)
			r.tick()
			if p := r.progress(); p.State != conf.PlanRunning {
				t.Fatalf("one failing reading of two acted: %+v", p)
			}
			plans, _ := r.ctrl.Plans(context.Background())
			if l := plans.Plans[0].Live; l == nil || l.Failures != 1 || plans.Plans[0].Gates[0].Outcome != stats.Fail {
				t.Fatalf("live after a failure: %+v", plans.Plans[0])
			}
			r.tick()
			p := r.progress()
			if p.Step != 2 || p.PercentBP != 2500 {
				t.Fatalf("acted at step %d (%d bp)", p.Step+1, p.PercentBP)
			}
			last := p.History[len(p.History)-1]
			if !strings.Contains(p.Reason, "error_ratio") || len(last.Gates) == 0 || last.Gates[0].Outcome != "fail" {
				t.Errorf("reason %q, last event %+v", p.Reason, last)
			}
			if onFail == "halt" {
				if p.State != conf.PlanHalted || r.split().Read != 2500 {
					t.Errorf("halt: %s at %+v", p.State, r.split())
				}
				return
			}
			if p.State != conf.PlanRolledBack {
				t.Fatalf("state %s", p.State)
			}
			// Gradually: half way through the ramp, half the split is still moved.
			if sp := r.split(); sp.Read != 2500 {
				t.Errorf("right after the rollback: %+v", sp)
			}
			r.clk.add(30 * time.Second)
			if sp := r.split(); sp.Read != 1250 {
				t.Errorf("half way: %+v", sp)
			}
			r.clk.add(30 * time.Second)
			if sp := r.split(); sp.Read != 0 || sp.Write != 0 {
				t.Errorf("after the ramp: %+v", sp)
			}
			st := r.srv.Status()
			if st.Routes[0].Plan == nil || st.Routes[0].Plan.State != conf.PlanRolledBack || st.Routes[0].Override.Percent != 0 {
				t.Errorf("status: %+v %+v", st.Routes[0].Plan, st.Routes[0].Override)
			}
			// Nothing more happens to a rolled back plan.
			r.tick()
			if r.progress().State != conf.PlanRolledBack {
				t.Error("the plan moved after its rollback")
			}
		})
	}
}

func TestControllerHoldsWhenInconclusive(t *testing.T) {
	r := newRig(t, planConfig)
	r.reads.set(thinWindow, nil)
	r.act(t, "start")
	for i := 0; i < 50; i++ { // 100 s: ten holds' worth
		r.tick()
	}
	p := r.progress()
	if p.State != conf.PlanRunning || p.Step != 0 || len(p.History) != 1 {
		t.Fatalf("progress %+v", p)
	}
	plans, _ := r.ctrl.Plans(context.Background())
	ps := plans.Plans[0]
	if ps.Live == nil || ps.Live.Checks < 40 || ps.Live.Decision != "hold" || !strings.Contains(ps.Live.Why, "inconclusive") {
		t.Fatalf("live %+v", ps.Live)
	}
	for _, g := range ps.Gates {
		if g.Outcome != stats.Inconclusive {
			t.Errorf("gate %s: %s", g.Name, g.Outcome)
		}
	}
	// Statistics that cannot be read are no evidence either.
	r.reads.set(Window{}, io.ErrUnexpectedEOF)
	for i := 0; i < 10; i++ {
		r.tick()
	}
	if p := r.progress(); p.State != conf.PlanRunning || p.Step != 0 {
		t.Fatalf("after failed reads: %+v", p)
	}
	plans, _ = r.ctrl.Plans(context.Background())
	if !strings.Contains(plans.Plans[0].Live.Why, "statistics unavailable") {
		t.Errorf("why %q", plans.Plans[0].Live.Why)
	}
}

func TestHumanWins(t *testing.T) {
	ctx := context.Background()
	t.Run("manual split", func(t *testing.T) {
		r := newRig(t, planConfig)
		r.act(t, "start")
		r.until(t, 100, "step 2", func() bool { return r.progress().Step == 1 })
		if _, err := r.srv.ChangeSplits(ctx, "ops", proxy.BulkSplitRequest{Routes: map[string]proxy.SplitRequest{"feed": {Percent: json.Number("30")}}}); err != nil {
			t.Fatal(err)
		}
		p := r.progress()
		if p.State != conf.PlanPaused || !strings.Contains(p.Reason, "manual split by ops") || !strings.Contains(p.Reason, "the human wins") {
			t.Fatalf("after a manual split: %+v", p)
		}
		for i := 0; i < 20; i++ {
			r.tick()
		}
		if sp := r.split(); sp.Read != 3000 || r.progress().State != conf.PlanPaused {
			t.Fatalf("a paused plan moved: %+v %s", sp, r.progress().State)
		}
		// Resumed, the plan judges the split in force (30 %, writes still 5 %: at
		// step 5, the highest step at or below it in reads and writes) without moving
		// anyone, and goes on.
		if ps := r.act(t, "resume"); ps.State != conf.PlanRunning || ps.Step != 2 || ps.Percent != 30 || ps.WritePercent != 5 {
			t.Fatalf("resume: %+v", ps)
		}
		r.until(t, 100, "the plan reaches 50 %", func() bool { return r.progress().PercentBP == 5000 })
	})
	t.Run("rollback on", func(t *testing.T) {
		r := newRig(t, planConfig)
		r.act(t, "start")
		if _, err := r.srv.SetRollback(ctx, "ops", proxy.RollbackRequest{On: true}); err != nil {
			t.Fatal(err)
		}
		if p := r.progress(); p.State != conf.PlanPaused || !strings.Contains(p.Reason, "rollback turned on by ops") {
			t.Fatalf("%+v", p)
		}
		if _, err := r.ctrl.Act(ctx, "ops", "feed", "resume"); err == nil || !strings.Contains(err.Error(), "rollback is on") {
			t.Fatalf("resume under rollback: %v", err)
		}
	})
	t.Run("reload", func(t *testing.T) {
		r := newRig(t, planConfig)
		r.act(t, "start")
		cfg, err := conf.Parse("", []byte(strings.Replace(planConfig, "hold: 10s", "hold: 20s", 1)))
		if err != nil {
			t.Fatal(err)
		}
		if err := r.srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		r.tick()
		if p := r.progress(); p.State != conf.PlanPaused || !strings.Contains(p.Reason, "config reload changed route feed") || p.Who != "plan@a" {
			t.Fatalf("after a reload: %+v", p)
		}
	})
	t.Run("reload removes the route", func(t *testing.T) {
		r := newRig(t, planConfig)
		r.act(t, "start")
		without := strings.Replace(planConfig, `  - name: feed
    match: {path_prefix: /api/feed}
    percent: 0
    plan:
      steps: [1, 5, 25, 50, 100]
      hold: 10s
      interval: 2s
      min_requests: 100
      failures: 2
      rollback_ramp: 1m
`, "", 1)
		cfg, err := conf.Parse("", []byte(without))
		if err != nil || len(cfg.Routes) != 1 {
			t.Fatalf("config without feed: %v (%d routes)", err, len(cfg.Routes))
		}
		if err := r.srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		r.tick()
		if p := r.progress(); p.State != conf.PlanPaused || !strings.Contains(p.Reason, "not in the config") || p.Who != "plan@a" {
			t.Fatalf("after a reload that removed the route: %+v", p)
		}
		ans, err := r.ctrl.Plans(ctx)
		if err != nil || len(ans.Plans) != 1 || ans.Plans[0].Route != "feed" || !ans.Plans[0].NotInConfig || ans.Plans[0].State != conf.PlanPaused {
			t.Fatalf("/v1/plans without the route: %+v %v", ans.Plans, err)
		}
		// The route comes back: the plan stays paused, whatever its step's window
		// says, until a human resumes it.
		full, _ := conf.Parse("", []byte(planConfig))
		if err := r.srv.Reload(full); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			r.tick()
		}
		if p := r.progress(); p.State != conf.PlanPaused || p.PercentBP != 100 {
			t.Fatalf("after the route came back: %+v", p)
		}
		if ps := r.act(t, "resume"); ps.State != conf.PlanRunning {
			t.Fatalf("resume: %+v", ps)
		}
	})
	t.Run("split written around the API", func(t *testing.T) {
		r := newRig(t, planConfig)
		r.act(t, "start")
		ov := r.srv.Overrides().Clone()
		ov.Routes["feed"] = conf.RouteOverride{PercentBP: 700, WritePercentBP: 700}
		ov.Revision++
		if err := r.srv.ApplyOverrides(ov); err != nil {
			t.Fatal(err)
		}
		r.tick()
		if p := r.progress(); p.State != conf.PlanPaused || !strings.Contains(p.Reason, "changed outside the plan (7%/7%, the plan set 1%/1%)") {
			t.Fatalf("%+v", p)
		}
	})
	t.Run("verbs", func(t *testing.T) {
		r := newRig(t, planConfig)
		if _, err := r.ctrl.Act(ctx, "ops", "default", "start"); err == nil || proxy.StatusOf(err) != 404 {
			t.Errorf("a route without a plan: %v", err)
		}
		if _, err := r.ctrl.Act(ctx, "ops", "feed", "jump"); err == nil || proxy.StatusOf(err) != 400 {
			t.Errorf("unknown verb: %v", err)
		}
		r.act(t, "start")
		if ps := r.act(t, "pause"); ps.State != conf.PlanPaused {
			t.Errorf("pause: %+v", ps)
		}
		if ps := r.act(t, "abort"); ps.State != conf.PlanRolledBack || r.srv.Overrides().Routes["feed"].Ramp.For != time.Minute {
			t.Errorf("abort: %+v %+v", ps, r.srv.Overrides().Routes["feed"])
		}
	})
}

// TestStaleDriverCannotStepTwice has a driver that lost its lead finish a reading
// after the new driver advanced the same step: its write is refused, and the step
// advances once.
func TestStaleDriverCannotStepTwice(t *testing.T) {
	r := newRig(t, planConfig)
	r.act(t, "start")
	r.clk.add(time.Minute) // past the hold: the next reading advances
	stale := New(r.srv, Options{Read: r.reads.read, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: r.clk.Now, Instance: "old"})
	release, reading := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r.reads.hook = func() { once.Do(func() { close(reading); <-release }) }
	done := make(chan struct{})
	go func() { stale.CheckDue(context.Background()); close(done) }()
	<-reading
	r.reads.hook = nil
	r.ctrl.CheckDue(context.Background()) // the new driver advances 1 → 5 %
	if p := r.progress(); p.Step != 1 {
		t.Fatalf("new driver: %+v", p)
	}
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stale reading never finished")
	}
	p := r.progress()
	advances := 0
	for _, e := range p.History {
		if e.Event == "advance" {
			advances++
			if e.By != "plan@a" {
				t.Errorf("advanced by %s", e.By)
			}
		}
	}
	if p.Step != 1 || advances != 1 || r.split().Read != 500 {
		t.Fatalf("step %d after %d advances, split %+v", p.Step+1, advances, r.split())
	}
}

func TestFirstReading(t *testing.T) {
	base := time.Date(2026, 11, 22, 4, 0, 10, 0, time.UTC)
	for _, c := range []struct {
		start    time.Duration // after base
		interval time.Duration
		want     time.Duration // after base
	}{
		{300 * time.Millisecond, time.Second, 2150 * time.Millisecond}, // second 11 complete at 12, read at 12.15
		{0, time.Second, 1150 * time.Millisecond},                      // second 10 complete at 11
		{300 * time.Millisecond, 2 * time.Second, 2300 * time.Millisecond},
		{900 * time.Millisecond, 10 * time.Second, 10900 * time.Millisecond},
	} {
		if got := firstReading(base.Add(c.start), c.interval).Sub(base); got != c.want {
			t.Errorf("step at +%s, interval %s: first reading at +%s, want +%s", c.start, c.interval, got, c.want)
		}
	}
}

// TestGuardIdleWhileAStoreCanBeWritten: the guard judges nothing where a driver can
// write (here a gateway without a fleet store): failing gates leave the plan to the
// driver, and the guard does not even read them.
func TestGuardIdleWhileAStoreCanBeWritten(t *testing.T) {
	r := newRig(t, planConfig)
	r.reads.set(failingWindow, nil)
	guardReads := &fakeReads{w: failingWindow}
	r.ctrl.opt.LocalRead = guardReads.read
	r.ctrl.guard.read = guardReads.read
	r.act(t, "start")
	for range 10 {
		r.clk.add(2 * time.Second)
		r.ctrl.GuardDue(context.Background())
	}
	if p := r.progress(); p.State != conf.PlanRunning {
		t.Fatalf("the guard acted where the store can be written: %+v", p)
	}
	if n := len(guardReads.sinces); n != 0 {
		t.Fatalf("the guard read the gates %d times where the store can be written", n)
	}
	// The driver, given the same readings, rolls back.
	r.until(t, 10, "the driver rolls back", func() bool { return r.progress().State == conf.PlanRolledBack })
}

// TestNoMoveBackDuringARollbackRamp: while a plan's rollback ramps the split down, a
// manual split below where the ramp has got to moves users back at once and is refused
// without force (its dry run says how many), and a plan cannot start again until the
// ramp ends: it would judge a split users are not served and then set its step at once.
func TestNoMoveBackDuringARollbackRamp(t *testing.T) {
	r := newRig(t, planConfig)
	r.act(t, "start")
	r.until(t, 100, "the plan reaches 25%", func() bool { return r.progress().PercentBP >= 2500 })
	r.reads.set(failingWindow, nil)
	r.until(t, 10, "the plan rolls back", func() bool { return r.progress().State == conf.PlanRolledBack })
	r.clk.add(30 * time.Second) // halfway down the 1m ramp
	at := r.split()
	if at.Read <= 500 || at.Read >= 2500 {
		t.Fatalf("halfway down the rollback ramp the split is %+v", at)
	}
	ctx := context.Background()
	req := proxy.BulkSplitRequest{Routes: map[string]proxy.SplitRequest{"feed": {Percent: "5"}}, DryRun: true}
	_, err := r.srv.ChangeSplits(ctx, "ops", req)
	var e *proxy.Error
	if !errors.As(err, &e) || e.Status != 409 || e.Refused == nil || e.Refused.MoveBack <= 0 || e.Refused.Before != float64(at.Read)/100 {
		t.Fatalf("split 5%% while the ramp is at %s%%: %v (refused %+v), want 409 naming the share moving back", conf.FormatBP(at.Read), err, e)
	}
	for _, verb := range []string{"start"} {
		if _, err := r.ctrl.Act(ctx, "ops", "feed", verb); !errors.As(err, &e) || e.Status != 409 || !strings.Contains(err.Error(), "ramping") {
			t.Fatalf("%s during the rollback ramp: %v, want 409 (ramping)", verb, err)
		}
	}
	if sp := r.split(); sp != at {
		t.Fatalf("the refusals changed the split: %+v, was %+v", sp, at)
	}
	// Forced, the split is set at once.
	req.DryRun = false
	req.Force = true
	if _, err := r.srv.ChangeSplits(ctx, "ops", req); err != nil {
		t.Fatalf("forced: %v", err)
	}
	if sp := r.split(); sp.Read != 500 {
		t.Fatalf("after the forced split: %+v", sp)
	}
	// Once no ramp runs the plan starts again.
	r.reads.set(healthyWindow, nil)
	if ps := r.act(t, "start"); ps.State != conf.PlanRunning {
		t.Fatalf("start after the ramp: %+v", ps)
	}
}

// TestNoResumeDuringTheRollbackSwitchRamp: rollback on pauses a plan; turned off with a
// ramp, the splits climb back, and the plan cannot resume until they are back.
func TestNoResumeDuringTheRollbackSwitchRamp(t *testing.T) {
	r := newRig(t, planConfig)
	r.act(t, "start")
	r.until(t, 100, "the plan reaches 25%", func() bool { return r.progress().PercentBP >= 2500 })
	ctx := context.Background()
	if _, err := r.srv.SetRollback(ctx, "ops", proxy.RollbackRequest{On: true}); err != nil {
		t.Fatal(err)
	}
	r.tick()
	if st := r.progress().State; st != conf.PlanPaused {
		t.Fatalf("after rollback on: %s, want paused", st)
	}
	if _, err := r.srv.SetRollback(ctx, "ops", proxy.RollbackRequest{On: false, Ramp: "20s"}); err != nil {
		t.Fatal(err)
	}
	r.clk.add(5 * time.Second)
	var e *proxy.Error
	if _, err := r.ctrl.Act(ctx, "ops", "feed", "resume"); !errors.As(err, &e) || e.Status != 409 || !strings.Contains(err.Error(), "ramping back after rollback") {
		t.Fatalf("resume during the rollback switch's ramp: %v, want 409", err)
	}
	r.clk.add(16 * time.Second)
	if ps := r.act(t, "resume"); ps.State != conf.PlanRunning {
		t.Fatalf("resume after the ramp: %+v", ps)
	}
}

// TestVerbThroughAnotherInstance: a plan started through an instance that does not
// drive carries no fingerprint of that instance's config (which may differ from the
// driver's during a rolling deploy and read as a reload); the driver stamps its own at
// its first reading and does not pause the plan, and a later reload of the driver's
// config pauses it as before.
func TestVerbThroughAnotherInstance(t *testing.T) {
	r := newRig(t, planConfig)
	other := New(r.srv, Options{Read: r.reads.read, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: r.clk.Now, Instance: "b",
		Driver: func(context.Context) (string, string, error) { return "a", "127.0.0.1:1", nil }})
	if _, err := other.Act(context.Background(), "ops", "feed", "start"); err != nil {
		t.Fatal(err)
	}
	if p := r.progress(); p.State != conf.PlanRunning || p.Fingerprint != "" {
		t.Fatalf("started through a non-driver: %+v", p)
	}
	r.tick()
	fp := r.srv.Config().Routes[0].PlanFingerprint()
	if p := r.progress(); p.State != conf.PlanRunning || p.Fingerprint != fp {
		t.Fatalf("after the driver's first reading: %s, fingerprint %q, want running with %q (%s)", p.State, p.Fingerprint, fp, p.Reason)
	}
	r.until(t, 20, "the plan advances", func() bool { return r.progress().Step >= 1 })
	changed, err := conf.Parse("", []byte(strings.Replace(planConfig, "hold: 10s", "hold: 20s", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.srv.Reload(changed); err != nil {
		t.Fatal(err)
	}
	r.tick()
	if p := r.progress(); p.State != conf.PlanPaused || !strings.Contains(p.Reason, "config reload changed route feed") {
		t.Fatalf("after a reload of the driver's config: %+v", p)
	}
}
