package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/loadtest"
	"github.com/shiftgate/shiftgate/proxy"
)

func planFleetConfig(name, listen, admin, endpoint, idc, cloud string) string {
	return fmt.Sprintf(`listen: %s
admin: { listen: %s }
state_dir: ./state
regions:
  idc:   { upstreams: [%q] }
  cloud: { upstreams: [%q] }
split: { from: idc, to: cloud, salt: cutover-2026, keys: ["header:X-User-Id"] }
timeouts: { connect: 500ms, response_header: 2s, body: 5s }
fleet:
  etcd: { endpoints: [%q], prefix: /shiftgate/plans-e2e/, dial_timeout: 500ms, instance: %s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 0
    plan:
      steps: [1, 5, 25, 50, 100]
      hold: 3s
      interval: 1s
      min_requests: 20
      failures: 1
      gates: { latency: { slack: 200ms } }
  - name: default
    match: { path_prefix: / }
`, listen, admin, idc, cloud, endpoint, name)
}

func plansAt(admin string) (proxy.PlansAnswer, error) {
	var ans proxy.PlansAnswer
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + admin + "/v1/plans")
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return ans, fmt.Errorf("status %d", resp.StatusCode)
	}
	return ans, json.NewDecoder(resp.Body).Decode(&ans)
}

// TestPlanFleetLeaderKilled runs three gateway processes on one etcd, each under load
// from the load generator, and a plan on feed started through the CLI. One instance
// drives the plan, its gates reading the fleet's merged statistics. When the plan
// has reached 25 % or more, the driver is killed with SIGKILL (no resignation, no
// shutdown): another instance is elected once the lease expires and finishes the
// plan from the step in force, neither repeating nor skipping a step.
func TestPlanFleetLeaderKilled(t *testing.T) {
	etcd, idc, cloud := fleetBackends(t)

	type inst struct {
		name, listen, admin string
		cmd                 interface{ Signal(os.Signal) error }
		wait                func()
		stopLoad            context.CancelFunc
	}
	insts := map[string]*inst{}
	var names []string
	loads := make(chan loadtest.Result, 3)
	for _, name := range []string{"gw-a", "gw-b", "gw-c"} {
		in := &inst{name: name, listen: freeAddr(t), admin: freeAddr(t)}
		path := filepath.Join(t.TempDir(), "shiftgate.yaml")
		if err := os.WriteFile(path, []byte(planFleetConfig(name, in.listen, in.admin, etcd.Endpoint, idc.Addr, cloud.Addr)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := startProcess(t, path, in.admin)
		in.cmd, in.wait = cmd.Process, func() { cmd.Wait() }
		ctx, cancel := context.WithCancel(context.Background())
		in.stopLoad = cancel
		t.Cleanup(cancel)
		seed := uint64(len(names)) // read here: the loop goes on appending to names
		go func() {
			res, _ := loadtest.Run(ctx, loadtest.Options{URL: "http://" + in.listen + "/api/feed", Rate: 150, Conns: 4,
				Users: 20000, Seed: seed, Duration: 2 * time.Minute, Timeout: 2 * time.Second})
			loads <- res
		}()
		insts[name] = in
		names = append(names, name)
	}
	a := insts["gw-a"]
	if code, out, errs := runCLI("plan", "start", "-admin", "http://"+a.admin, "feed"); code != 0 || !strings.Contains(out, "running at step 1 of 5") {
		t.Fatalf("plan start: %d %s %s", code, out, errs)
	}
	started := time.Now()

	// Wait for the plan to reach 25 % or more, and find its driver.
	var driver *inst
	deadline := time.Now().Add(90 * time.Second)
	for driver == nil {
		if time.Now().After(deadline) {
			t.Fatal("the plan never reached 25 %")
		}
		time.Sleep(100 * time.Millisecond)
		ans, err := plansAt(a.admin)
		if err != nil || len(ans.Plans) != 1 {
			continue
		}
		p := ans.Plans[0]
		if p.State == conf.PlanDone {
			t.Fatal("the plan finished before its driver could be killed")
		}
		if p.Step >= 3 && insts[ans.Driver] != nil {
			driver = insts[ans.Driver]
			t.Logf("+%.1fs: the plan is at step %d (%g%%), driven by %s; killing it", time.Since(started).Seconds(), p.Step, p.Percent, driver.name)
		}
	}
	// Asked of another instance, the answer is the driver's readings, told by that
	// instance: it does not say it drives (`plan status` printed "(this instance)").
	for _, n := range names {
		if insts[n] == driver {
			continue
		}
		if ans, err := plansAt(insts[n].admin); err != nil || ans.Driving || ans.Instance != n || ans.Driver != driver.name {
			t.Errorf("/v1/plans at %s: instance %q, driving %v, driver %q (%v); want %s, false, %s", n, ans.Instance, ans.Driving, ans.Driver, err, n, driver.name)
		}
	}
	if err := driver.cmd.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	driver.wait()
	killed := time.Now()
	driver.stopLoad()

	var survivor *inst
	for _, n := range names {
		if insts[n] != driver {
			survivor = insts[n]
			break
		}
	}
	var end proxy.PlanStatus
	var newDriver string
	deadline = time.Now().Add(90 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("the plan did not finish after its driver was killed: %+v", end)
		}
		time.Sleep(100 * time.Millisecond)
		ans, err := plansAt(survivor.admin)
		if err != nil || len(ans.Plans) != 1 {
			continue
		}
		end = ans.Plans[0]
		if ans.Driver != "" && ans.Driver != driver.name && newDriver == "" {
			newDriver = ans.Driver
			t.Logf("+%.1fs after the kill: %s drives the plan", time.Since(killed).Seconds(), newDriver)
		}
		if end.State != conf.PlanRunning {
			break
		}
	}
	for _, n := range names {
		if insts[n] != driver {
			insts[n].stopLoad()
		}
	}
	if end.State != conf.PlanDone || end.Percent != 100 {
		t.Fatalf("plan ended %s at %g%%: %s", end.State, end.Percent, end.Reason)
	}
	// The history, as the store keeps it: every step once, in order, the first ones
	// by the killed driver and the rest by its successor.
	var walked, by []string
	t0 := end.History[0].At
	for _, e := range end.History {
		walked = append(walked, e.Event+":"+conf.FormatBP(e.PercentBP))
		by = append(by, e.By)
		var gs []string
		for _, g := range e.Gates {
			gs = append(gs, fmt.Sprintf("%s %s (moved %.4g n=%d, stayed %.4g n=%d)", g.Name, g.Outcome, g.Moved, g.MovedN, g.Stayed, g.StayedN))
		}
		t.Logf("+%5.1fs %-8s step %d %4s%% after %d readings by %s: %s", e.At.Sub(t0).Seconds(), e.Event, e.Step+1,
			conf.FormatBP(e.PercentBP), e.Readings, e.By, strings.Join(gs, "; "))
	}
	if got := strings.Join(walked, " "); got != "start:1 advance:5 advance:25 advance:50 done:100" {
		t.Fatalf("walked %s", got)
	}
	last := by[len(by)-1]
	if last != "plan@"+newDriver || newDriver == "" || newDriver == driver.name {
		t.Errorf("finished by %s; killed %s, new driver %q", last, driver.name, newDriver)
	}
	sawKilled := false
	for _, b := range by[1:] {
		sawKilled = sawKilled || b == "plan@"+driver.name
	}
	if !sawKilled {
		t.Errorf("the killed driver made no step: %v", by)
	}
	// Every surviving instance serves the last step.
	for _, n := range names {
		if in := insts[n]; in != driver {
			if st := adminStatus(t, in.admin); st.Routes[0].Effective != 100 {
				t.Errorf("%s serves feed at %g%%", n, st.Routes[0].Effective)
			}
		}
	}
	// And `plan status` says so.
	if code, out, _ := runCLI("plan", "status", "-history", "-admin", "http://"+survivor.admin); code != 0 || !strings.Contains(out, "feed: DONE, step 5 of 5 (100%") {
		t.Errorf("plan status: %d\n%s", code, out)
	} else {
		t.Logf("shiftgate plan status -history:\n%s", out)
	}
	for range names {
		res := <-loads
		t.Logf("load on one instance: %d requests, %d errors %v", res.Requests, res.Errors, res.ErrorKinds)
	}
}

func guardFleetConfig(name, listen, admin, endpoint, idc, cloud string) string {
	return fmt.Sprintf(`listen: %s
admin: { listen: %s }
state_dir: ./state
regions:
  idc:   { upstreams: [%q] }
  cloud: { upstreams: [%q] }
split: { from: idc, to: cloud, salt: cutover-2026, keys: ["header:X-User-Id"] }
timeouts: { connect: 500ms, response_header: 2s, body: 5s }
fleet:
  etcd: { endpoints: [%q], prefix: /shiftgate/guard-e2e/, dial_timeout: 500ms, instance: %s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 0
    plan:
      steps: [50, 100]
      hold: 2s
      interval: 1s
      min_requests: 20
      failures: 2
      rollback_ramp: 2s
      gates: { latency: { off: true } }
  - name: default
    match: { path_prefix: / }
`, listen, admin, idc, cloud, endpoint, name)
}

// TestPlanGuardWhileEtcdDown: while etcd is down no instance can drive a plan (each
// step is a store write; the election lives there too). Each instance then judges the
// running plan on its own statistics and acts on one decision only: with the new
// region healthy its gates pass and would finish the plan, and the plan stays where it
// is; with the new region failing its gates fail and it rolls the plan back on itself
// (its users go back to the old region). When etcd returns the local rollbacks are
// written to the store and the plan is rolled back fleet-wide.
func TestPlanGuardWhileEtcdDown(t *testing.T) {
	etcd, idc, cloud := fleetBackends(t)
	var insts []*fleetInstance
	for _, name := range []string{"gw-a", "gw-b"} {
		f := &fleetInstance{name: name, listen: freeAddr(t), admin: freeAddr(t)}
		f.path = filepath.Join(t.TempDir(), "shiftgate.yaml")
		if err := os.WriteFile(f.path, []byte(guardFleetConfig(name, f.listen, f.admin, etcd.Endpoint, idc.Addr, cloud.Addr)), 0o644); err != nil {
			t.Fatal(err)
		}
		f.start(t)
		defer f.stop(t)
		insts = append(insts, f)
	}
	a := insts[0]
	// Started with no traffic: every reading is inconclusive, so the driver holds
	// the first step until etcd is gone.
	if code, out, errs := runCLI("plan", "start", "-admin", "http://"+a.admin, "feed"); code != 0 || !strings.Contains(out, "running at step 1 of 2") {
		t.Fatalf("plan start: %d %s %s", code, out, errs)
	}
	etcd.Stop()
	waitUntil(t, 15*time.Second, "no instance drives the plan and each reports the store down", func() bool {
		for _, f := range insts {
			ans, err := plansAt(f.admin)
			if err != nil || ans.Driving || ans.NoDriver == "" || f.srv.Status().StoreUp {
				return false
			}
		}
		return true
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loads := make(chan loadtest.Result, len(insts))
	for i, f := range insts {
		go func() {
			res, _ := loadtest.Run(ctx, loadtest.Options{URL: "http://" + f.listen + "/api/feed", Rate: 100, Conns: 4,
				Users: 20000, Seed: uint64(i), Duration: 90 * time.Second, Timeout: 2 * time.Second})
			loads <- res
		}()
	}
	// (a) The new region is healthy: each guard's gates pass after the hold and would
	// finish the plan. Three such readings on each instance, and the plan has not moved.
	waitUntil(t, 30*time.Second, "each instance's guard read passing gates 3 times", func() bool {
		for _, f := range insts {
			ans, err := plansAt(f.admin)
			if err != nil || len(ans.Plans) != 1 {
				return false
			}
			l := ans.Plans[0].Live
			if l == nil || !l.Guard || l.Decision != "done" || l.Checks < 3 {
				return false
			}
		}
		return true
	})
	for _, f := range insts {
		ans, _ := plansAt(f.admin)
		p := ans.Plans[0]
		t.Logf("%s guard: %d readings, last %s (%s)", f.name, p.Live.Checks, p.Live.Decision, p.Live.Why)
		if p.State != conf.PlanRunning || p.Step != 1 || p.Percent != 50 {
			t.Fatalf("%s: the guard moved the plan forward: %s at step %d (%g%%)", f.name, p.State, p.Step, p.Percent)
		}
	}

	// (b) The new region fails: each guard rolls the plan back on its instance.
	cloud.SetFailPercent(100)
	waitUntil(t, 60*time.Second, "each instance rolled the plan back on itself", func() bool {
		for _, f := range insts {
			ans, err := plansAt(f.admin)
			if err != nil || len(ans.Plans) != 1 || ans.Plans[0].State != conf.PlanRolledBack {
				return false
			}
		}
		return true
	})
	for _, f := range insts {
		ans, _ := plansAt(f.admin)
		t.Logf("%s: %s", f.name, ans.Plans[0].Reason)
		if st := f.srv.Status(); !slices.Contains(st.PendingLocal, "plans/feed") || !slices.Contains(st.PendingLocal, "routes/feed") {
			t.Errorf("%s: pending local changes %v, want plans/feed and routes/feed", f.name, st.PendingLocal)
		}
	}
	// The rollback ramp (2s) brings every user of feed back to the old region.
	servesNone := func(what string) {
		t.Helper()
		waitUntil(t, 10*time.Second, what, func() bool {
			for _, f := range insts {
				if st := adminStatus(t, f.admin); st.Routes[0].Effective != 0 {
					return false
				}
			}
			return true
		})
	}
	servesNone("every instance sends no user of feed to the new region")
	cancel()
	for range insts {
		res := <-loads
		t.Logf("load on one instance: %d requests, %d errors %v", res.Requests, res.Errors, res.ErrorKinds)
	}

	// (c) etcd returns: the rollback is the store's, and every instance applies it.
	cloud.SetFailPercent(0)
	etcd.Restart()
	waitUntil(t, 15*time.Second, "the rollback reconciled into the store and applied everywhere", func() bool {
		for _, f := range insts {
			st := f.srv.Status()
			if !st.StoreUp || len(st.PendingLocal) != 0 {
				return false
			}
			ans, err := plansAt(f.admin)
			if err != nil || len(ans.Plans) != 1 || ans.Plans[0].State != conf.PlanRolledBack {
				return false
			}
		}
		return true
	})
	servesNone("every instance still sends no user of feed to the new region")
	if code, out, _ := runCLI("plan", "status", "-history", "-admin", "http://"+insts[1].admin); code != 0 || !strings.Contains(out, "feed: ROLLED_BACK") {
		t.Errorf("plan status after etcd returned: %d\n%s", code, out)
	} else {
		t.Logf("shiftgate plan status -history:\n%s", out)
	}
}
