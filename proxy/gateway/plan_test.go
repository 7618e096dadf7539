package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/loadtest"
	"github.com/shiftgate/shiftgate/loadtest/freeport"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/routing"
)

// planConfig has feed walk 1 → 5 → 25 → 50 → 100 % with short holds and a low
// min_requests, and search the same plan with far more requests needed than its
// trickle of traffic brings.
const planConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: cutover-2026, keys: ["header:X-User-Id"] }
timeouts: { connect: 500ms, response_header: 2s, body: 5s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 0
    plan:
      steps: [1, 5, 25, 50, 100]
      hold: 2s
      interval: 2s
      min_requests: 20
      failures: 1
      rollback_ramp: 2s
      gates: { latency: { slack: 200ms } }
  - name: search
    match: { path_prefix: /api/search }
    percent: 0
    plan: { steps: [1, 5, 25, 50, 100], hold: 1s, interval: 1s, min_requests: 200 }
  - name: default
    match: { path_prefix: / }
`

// load sends rate requests a second for users distinct users to url until stop is
// called (or a minute and a half passes), and returns what it measured.
func load(t *testing.T, url string, rate float64, users int) (stop func() loadtest.Result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan loadtest.Result, 1)
	go func() {
		res, _ := loadtest.Run(ctx, loadtest.Options{URL: url, Rate: rate, Conns: 8, Users: users,
			Duration: 90 * time.Second, Timeout: 5 * time.Second})
		done <- res
	}()
	var once sync.Once
	var res loadtest.Result
	stop = func() loadtest.Result {
		once.Do(func() { cancel(); res = <-done })
		return res
	}
	t.Cleanup(func() { stop() })
	return stop
}

func (g *liveGateway) plans(t *testing.T) proxy.PlansAnswer {
	t.Helper()
	code, body := g.call(t, "GET", "/v1/plans", "")
	if code != 200 {
		t.Fatalf("/v1/plans: %d %s", code, body)
	}
	var ans proxy.PlansAnswer
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatal(err)
	}
	return ans
}

func planOf(ans proxy.PlansAnswer, route string) proxy.PlanStatus {
	for _, p := range ans.Plans {
		if p.Route == route {
			return p
		}
	}
	return proxy.PlanStatus{}
}

// waitPlan polls /v1/plans until cond holds for route's plan, failing the test
// after limit; it returns the plan as cond saw it.
func waitPlan(t *testing.T, g *liveGateway, route string, limit time.Duration, what string, cond func(proxy.PlanStatus) bool) proxy.PlanStatus {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		p := planOf(g.plans(t), route)
		if cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %s: plan %s is %s at step %d (%g%%): %s; live %+v", limit, what, route, p.State, p.Step, p.Percent, p.Reason, p.Live)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logRun prints a plan's history: when each step began, after how many readings,
// and the gate readings that decided it.
func logRun(t *testing.T, p proxy.PlanStatus) {
	t.Helper()
	if len(p.History) == 0 {
		return
	}
	t0 := p.History[0].At
	for _, e := range p.History {
		var gs []string
		for _, g := range e.Gates {
			gs = append(gs, fmt.Sprintf("%s %s (moved %.4g n=%d, stayed %.4g n=%d)", g.Name, g.Outcome, g.Moved, g.MovedN, g.Stayed, g.StayedN))
		}
		t.Logf("%s +%5.1fs %-11s step %d %5s%% after %d readings by %s: %s", p.Route, e.At.Sub(t0).Seconds(), e.Event, e.Step+1,
			conf.FormatBP(e.PercentBP), e.Readings, e.By, strings.Join(gs, "; "))
	}
}

// TestPlanWalksHealthyRegion runs the feed plan under load from the load generator
// against two healthy stand-in regions: it walks 1 → 5 → 25 → 50 → 100 %, every
// step advanced by passing gates, and no request fails on the way. Meanwhile search,
// whose trickle of traffic never reaches its min_requests, holds at its first step
// with inconclusive gates, however many readings pass.
func TestPlanWalksHealthyRegion(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	g := startLive(t, planConfig, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	stopFeed := load(t, "http://"+g.addr+"/api/feed", 400, 20000)
	stopSearch := load(t, "http://"+g.addr+"/api/search", 5, 1000)
	for _, route := range []string{"feed", "search"} {
		if code, body := g.call(t, "POST", "/v1/plans/"+route+"/start", "{}"); code != 200 {
			t.Fatalf("start %s: %d %s", route, code, body)
		}
	}
	done := waitPlan(t, g, "feed", 90*time.Second, "the feed plan finishes", func(p proxy.PlanStatus) bool {
		return p.State != conf.PlanRunning
	})
	res := stopFeed()
	logRun(t, done)
	if done.State != conf.PlanDone || done.Percent != 100 {
		t.Fatalf("feed plan ended %s at %g%%: %s", done.State, done.Percent, done.Reason)
	}
	var walked []string
	for _, e := range done.History {
		walked = append(walked, e.Event+":"+conf.FormatBP(e.PercentBP))
		if e.Event == "advance" || e.Event == "done" {
			for _, gr := range e.Gates {
				if gr.Outcome != "pass" || gr.MovedN < 20 || gr.StayedN < 20 {
					t.Errorf("%s to %s%% on %+v", e.Event, conf.FormatBP(e.PercentBP), gr)
				}
			}
		}
	}
	if got := strings.Join(walked, " "); got != "start:1 advance:5 advance:25 advance:50 done:100" {
		t.Fatalf("walked %s", got)
	}
	if res.Errors != 0 || res.Requests == 0 {
		t.Errorf("load: %d requests, %d errors %v", res.Requests, res.Errors, res.ErrorKinds)
	}
	t.Logf("feed load: %d requests at %.0f/s, %d errors, regions %v", res.Requests, res.RPS, res.Errors, res.Regions)
	st := g.srv.Status()
	if r := st.Routes[0]; r.Effective != 100 || r.Plan == nil || r.Plan.State != conf.PlanDone {
		t.Errorf("status: %g%%, plan %+v", r.Effective, r.Plan)
	}

	thin := waitPlan(t, g, "search", 30*time.Second, "search is read at least 5 times", func(p proxy.PlanStatus) bool {
		return p.Live != nil && p.Live.Checks >= 5
	})
	stopSearch()
	if thin.State != conf.PlanRunning || thin.Step != 1 || thin.Percent != 1 || thin.Live.Decision != "hold" {
		t.Fatalf("search: %s step %d (%g%%), decided %s", thin.State, thin.Step, thin.Percent, thin.Live.Decision)
	}
	for _, gr := range thin.Gates {
		if gr.Outcome != "inconclusive" {
			t.Errorf("search gate %s: %s (%s)", gr.Name, gr.Outcome, gr.Reason)
		}
	}
	t.Logf("search after %d readings: %s; gates %s n=%d/%d", thin.Live.Checks, thin.Live.Why, thin.Gates[0].Outcome,
		thin.Gates[0].Samples.Moved, thin.Gates[0].Samples.Stayed)
}

// TestPlanRollsBackFailingRegion runs the same plan against a cloud region that is
// broken for the users who move at 25 % (buckets 1500..2499: two in five of the
// moved users then): the plan passes 1 and 5 %, stops at 25 % on a failing error
// ratio gate, never reaches 50 %, and ramps the route back to 0.
func TestPlanRollsBackFailingRegion(t *testing.T) {
	idc := startRegion(t, "idc")
	cloud, err := standin.Start("cloud", "127.0.0.1:0", standin.Options{FailIf: func(h *fasthttp.RequestHeader) bool {
		b := routing.Bucket("cutover-2026", string(h.Peek("X-User-Id")))
		return b >= 1500 && b < 2500
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cloud.Close() })
	g := startLive(t, planConfig, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	stop := load(t, "http://"+g.addr+"/api/feed", 400, 20000)
	if code, body := g.call(t, "POST", "/v1/plans/feed/start", "{}"); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	end := waitPlan(t, g, "feed", 90*time.Second, "the feed plan stops", func(p proxy.PlanStatus) bool {
		return p.State != conf.PlanRunning
	})
	logRun(t, end)
	if end.State != conf.PlanRolledBack || end.Step != 3 || end.Percent != 25 {
		t.Fatalf("plan ended %s at step %d (%g%%): %s", end.State, end.Step, end.Percent, end.Reason)
	}
	var at25, rolled conf.PlanEvent
	for _, e := range end.History {
		if e.PercentBP > 2500 {
			t.Errorf("the plan went past 25 %%: %+v", e)
		}
		switch {
		case e.Event == "advance" && e.PercentBP == 2500:
			at25 = e
		case e.Event == "rolled_back":
			rolled = e
		}
	}
	failed := false
	for _, gr := range rolled.Gates {
		failed = failed || (gr.Name == "error_ratio" && gr.Outcome == "fail")
	}
	if !failed || at25.At.IsZero() {
		t.Fatalf("rolled back on %+v after %+v", rolled, at25)
	}
	t.Logf("failure began with the 25%% step; rolled back %.1fs later, on reading %d of the step (interval 2s)",
		rolled.At.Sub(at25.At).Seconds(), rolled.Readings)
	// Within one gate interval: the first reading of the step, an interval after
	// it began, already acted.
	if rolled.Readings != 1 {
		t.Errorf("rolled back on reading %d of the failing step, want the first", rolled.Readings)
	}
	// Gradually, then all the way: the split comes down to 0 over the 2 s ramp.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := g.srv.Status().Routes[0]
		if r.Effective == 0 && r.EffectiveWrite == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("split still %g%% long after the ramp", r.Effective)
		}
		time.Sleep(50 * time.Millisecond)
	}
	res := stop()
	t.Logf("feed load: %d requests, %d errors (%v), regions %v", res.Requests, res.Errors, res.ErrorKinds, res.Regions)
	// After the ramp nobody is sent to the broken region.
	before := cloud.Requests()
	for u := 0; u < 200; u++ {
		req := fasthttp.AcquireRequest()
		req.SetRequestURI("http://" + g.addr + "/api/feed")
		req.Header.Set("X-User-Id", fmt.Sprintf("u-%d", u))
		resp := fasthttp.AcquireResponse()
		if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("after the rollback: %v %d", err, resp.StatusCode())
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	if after := cloud.Requests(); after != before {
		t.Errorf("cloud got %d requests after the rollback", after-before)
	}
}

// TestPlanResumesAfterRestart stops a single gateway mid-plan and starts it again on
// the same state_dir: the plan goes on from the step it was at (no step again, none
// skipped) and finishes.
func TestPlanResumesAfterRestart(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	dir := t.TempDir()
	listen, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("{{STATE}}", filepath.Join(dir, "state"), "{{IDC}}", idc.Addr, "{{CLOUD}}", cloud.Addr).Replace(planConfig)
	path := filepath.Join(dir, "shiftgate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func() (*liveGateway, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		g, err := Start(ctx, Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Listen: listen, AdminListen: "127.0.0.1:0", Debounce: 50e6})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				if err := g.Wait(); err != nil {
					t.Errorf("gateway stopped with: %v", err)
				}
			})
		}
		t.Cleanup(stop)
		return &liveGateway{srv: g.Server, addr: g.Addr, admin: "http://" + g.AdminAddr, dir: dir, path: path}, stop
	}
	g, stop := run()
	load(t, "http://"+listen+"/api/feed", 400, 20000)
	if code, body := g.call(t, "POST", "/v1/plans/feed/start", "{}"); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	at := waitPlan(t, g, "feed", 60*time.Second, "the plan reaches step 2", func(p proxy.PlanStatus) bool { return p.Step >= 2 })
	stop()
	t.Logf("stopped at step %d (%g%%), %s", at.Step, at.Percent, at.State)

	g, _ = run()
	if p := planOf(g.plans(t), "feed"); p.State != conf.PlanRunning && p.State != conf.PlanDone {
		t.Fatalf("after the restart: %s at step %d", p.State, p.Step)
	}
	end := waitPlan(t, g, "feed", 90*time.Second, "the plan finishes", func(p proxy.PlanStatus) bool { return p.State != conf.PlanRunning })
	logRun(t, end)
	var walked []string
	for _, e := range end.History {
		walked = append(walked, e.Event+":"+conf.FormatBP(e.PercentBP))
	}
	if end.State != conf.PlanDone || strings.Join(walked, " ") != "start:1 advance:5 advance:25 advance:50 done:100" {
		t.Fatalf("ended %s, walked %s", end.State, strings.Join(walked, " "))
	}
}

// TestPlanVerbsWhileUnpersisted: a plan started while state_dir could not be written
// serves in memory; the disk comes back with the file still showing the plan idle,
// and a pause that follows at once is judged on the plan that runs, not on the file.
// Before, it read the file and was refused ("cannot pause a plan that is idle")
// while the plan ran.
func TestPlanVerbsWhileUnpersisted(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	g := startLive(t, planConfig, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	path := filepath.Join(g.dir, "state", "overrides.json")
	os.Remove(path)
	if err := os.Mkdir(path, 0o755); err != nil { // a path no one can write, root included
		t.Fatal(err)
	}
	code, body := g.call(t, "POST", "/v1/plans/search/start", "{}")
	if code != 200 || !strings.Contains(body, "unpersisted") {
		t.Fatalf("plan start with state_dir unwritable: %d %s; want in force, unpersisted", code, body)
	}
	if err := os.Remove(path); err != nil { // the disk is back; the file shows no plan
		t.Fatal(err)
	}
	code, body = g.call(t, "POST", "/v1/plans/search/pause", "{}")
	if code != 200 {
		t.Fatalf("plan pause after the disk came back: %d %s; want the running plan paused", code, body)
	}
	if p := planOf(g.plans(t), "search"); p.State != conf.PlanPaused {
		t.Fatalf("plan %s after pause, want paused: %s", p.State, p.Reason)
	}
}
