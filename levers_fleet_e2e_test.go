package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/loadtest"
	"github.com/shiftgate/shiftgate/proxy"
)

func leversFleetConfig(name, listen, admin, endpoint, idc, cloud string) string {
	return fmt.Sprintf(`listen: %s
admin: { listen: %s }
state_dir: ./state
regions:
  idc:   { upstreams: [%q] }
  cloud: { upstreams: [%q] }
split: { from: idc, to: cloud, salt: cutover-2026, keys: ["header:X-User-Id"] }
fleet:
  etcd: { endpoints: [%q], prefix: /shiftgate/levers/, dial_timeout: 500ms, instance: %s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
  - name: default
    match: { path_prefix: / }
`, listen, admin, idc, cloud, endpoint, name)
}

// adminLimits reads GET /v1/limits of the instance at admin.
func adminLimits(admin string) (proxy.LimitsStatus, error) {
	var l proxy.LimitsStatus
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + admin + "/v1/limits")
	if err != nil {
		return l, err
	}
	defer resp.Body.Close()
	return l, json.NewDecoder(resp.Body).Decode(&l)
}

// liveWithin waits until every admin address reports live instances and returns how
// long it took from since; it fails the test after limit.
func liveWithin(t *testing.T, admins []string, live int, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		all := true
		for _, a := range admins {
			if l, err := adminLimits(a); err != nil || l.LiveInstances != live || l.Scope != "fleet" {
				all = false
				break
			}
		}
		d := time.Since(since)
		if all {
			return d
		}
		if d > limit {
			t.Fatalf("after %s the instances do not all count %d live instances", limit, live)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// enforcedSum adds the site cap each instance enforces now.
func enforcedSum(t *testing.T, admins []string) float64 {
	t.Helper()
	sum := 0.0
	for _, a := range admins {
		l, err := adminLimits(a)
		if err != nil {
			t.Fatal(err)
		}
		sum += l.Site.EnforcedRPS
	}
	return sum
}

func fleetOpenLoop(ctx context.Context, url string, rate float64) <-chan loadtest.Result {
	out := make(chan loadtest.Result, 1)
	go func() {
		res, _ := loadtest.Run(ctx, loadtest.Options{URL: url, Rate: rate, Conns: 32, Duration: time.Minute, Users: 1000, Timeout: 5 * time.Second})
		out <- res
	}()
	return out
}

// TestFleetCapSumsAndRebalances is the fleet story of the site cap: three gateways on
// a real etcd (one of them a separate process), a cap of 300 rps set once through the
// CLI, 600 rps offered in the open loop (200 to each). The fleet accepts 300 ±10 %:
// each instance enforces a third. The process is killed with SIGKILL: once its
// registration's lease lapses the two others take half each and the fleet still
// accepts 300 ±10 %. One more leaves cleanly: the last one takes the whole cap
// within a second.
// leftEvery bounds how long an instance takes to count the instances that left (the
// proxy counts them every 20th fleet count, 5 s).
const leftEvery = 5 * time.Second

func TestFleetCapSumsAndRebalances(t *testing.T) {
	const limit = time.Second
	etcd, idc, cloud := fleetBackends(t)

	var insts []*fleetInstance
	for _, name := range []string{"gw-a", "gw-b", "gw-c"} {
		f := &fleetInstance{name: name, listen: freeAddr(t), admin: freeAddr(t)}
		f.path = filepath.Join(t.TempDir(), "shiftgate.yaml")
		if err := os.WriteFile(f.path, []byte(leversFleetConfig(name, f.listen, f.admin, etcd.Endpoint, idc.Addr, cloud.Addr)), 0o644); err != nil {
			t.Fatal(err)
		}
		insts = append(insts, f)
	}
	a, b, c := insts[0], insts[1], insts[2]
	a.start(t)
	defer a.stop(t)
	b.start(t)
	defer b.stop(t)
	liveWithin(t, []string{a.admin, b.admin}, 2, time.Now(), 5*time.Second)
	proc := startProcess(t, c.path, c.admin)
	joined := liveWithin(t, []string{a.admin, b.admin, c.admin}, 3, time.Now(), 5*time.Second)
	t.Logf("gw-c (a process) joined: all three count 3 live instances %s after it answered", joined)
	if joined >= limit {
		t.Errorf("a join took %s to change the shares, want < %s", joined, limit)
	}

	if code, out, errs := runCLI("limit", "-admin", "http://"+b.admin, "site", "300"); code != 0 {
		t.Fatalf("limit site 300: %d %s %s", code, out, errs)
	}
	all := []string{a.admin, b.admin, c.admin}
	waitUntil(t, 3*time.Second, "every instance enforces a third of 300 rps", func() bool {
		return math.Abs(enforcedSum(t, all)-300) < 0.01
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctxA, cancelA := context.WithCancel(ctx)
	ctxB, cancelB := context.WithCancel(ctx)
	ctxC, cancelC := context.WithCancel(ctx)
	doneA := fleetOpenLoop(ctxA, "http://"+a.listen+"/api/feed", 200)
	doneB := fleetOpenLoop(ctxB, "http://"+b.listen+"/api/feed", 200)
	doneC := fleetOpenLoop(ctxC, "http://"+c.listen+"/api/feed", 200)
	accepted := func() float64 { return float64(idc.Requests()) }

	time.Sleep(1500 * time.Millisecond)
	before := forwardedBy(t, all)
	three := windowRate(4*time.Second, accepted)
	after := forwardedBy(t, all)
	t.Logf("3 instances, site cap 300 rps fleet-wide (100 each), 600 rps offered: fleet accepted %.1f rps (%+.1f%%); forwarded by gw-a/b/c in the window: %v",
		three, 100*(three/300-1), diff(after, before))
	if math.Abs(three-300) > 30 {
		t.Errorf("three instances accepted %.1f rps under a fleet cap of 300, want ±10%%", three)
	}

	// SIGKILL: no shutdown code runs; the registration lapses with its lease.
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	cancelC()
	<-doneC
	d := liveWithin(t, []string{a.admin, b.admin}, 2, killed, store.InstanceTTL+3*time.Second)
	t.Logf("gw-c killed (SIGKILL): the two others take half of the cap %s later (the lease is %s)", d, store.InstanceTTL)
	if sum := enforcedSum(t, []string{a.admin, b.admin}); math.Abs(sum-300) > 0.01 {
		t.Errorf("after the kill the two instances enforce %.2f rps together, want 300", sum)
	}
	// gw-c left without a clean stop: the others' metrics say so, for an alert.
	waitUntil(t, 3*leftEvery, "gw-a's metrics count 2 live instances and 1 left", func() bool {
		m := metricsOf(t, a)
		return strings.Contains(m, "shiftgate_fleet_instances{state=\"live\"} 2\n") &&
			strings.Contains(m, "shiftgate_fleet_instances{state=\"left\"} 1\n")
	})
	time.Sleep(time.Second)
	two := windowRate(4*time.Second, accepted)
	t.Logf("2 instances (150 each), 400 rps offered: fleet accepted %.1f rps (%+.1f%%)", two, 100*(two/300-1))
	if math.Abs(two-300) > 30 {
		t.Errorf("two instances accepted %.1f rps under a fleet cap of 300, want ±10%%", two)
	}

	// A clean leave revokes the registration: the last instance takes the whole cap
	// within a second.
	cancelB()
	<-doneB
	left := time.Now()
	b.stop(t)
	d = liveWithin(t, []string{a.admin}, 1, left, 5*time.Second)
	t.Logf("gw-b left cleanly: gw-a enforces the whole cap %s later", d)
	if d >= limit {
		t.Errorf("a clean leave took %s to change the share, want < %s", d, limit)
	}
	if sum := enforcedSum(t, []string{a.admin}); math.Abs(sum-300) > 0.01 {
		t.Errorf("the last instance enforces %.2f rps, want 300", sum)
	}
	// A clean stop is no departure to alert on: still gw-c alone.
	waitUntil(t, 3*leftEvery, "gw-a's metrics count itself live and gw-c alone left", func() bool {
		m := metricsOf(t, a)
		return strings.Contains(m, "shiftgate_fleet_instances{state=\"live\"} 1\n") &&
			strings.Contains(m, "shiftgate_fleet_instances{state=\"left\"} 1\n")
	})
	cancelA()
	res := <-doneA
	for kind, n := range res.ErrorKinds {
		if kind != "status_5xx" {
			t.Errorf("gw-a: %d requests failed as %s: refusals must be answers", n, kind)
		}
	}
	if code, out, _ := runCLI("status", "-admin", "http://"+a.admin); code != 0 || !strings.Contains(out, "limits: fleet-wide over 1 live instance(s)") {
		t.Errorf("status: %d\n%s", code, out)
	}
}

// windowRate reads count at the start and the end of a window of dur and returns the
// rate per second.
func windowRate(dur time.Duration, count func() float64) float64 {
	t0, c0 := time.Now(), count()
	time.Sleep(dur)
	t1, c1 := time.Now(), count()
	return (c1 - c0) / t1.Sub(t0).Seconds()
}

// forwardedBy reads each instance's forwarded feed requests.
func forwardedBy(t *testing.T, admins []string) []uint64 {
	t.Helper()
	var out []uint64
	for _, a := range admins {
		l, err := adminLimits(a)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l.Routes {
			if r.Name == "feed" {
				out = append(out, r.Forwarded)
			}
		}
	}
	return out
}

func diff(a, b []uint64) []uint64 {
	out := make([]uint64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}
