package gateway

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/loadtest"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/proxy"
)

// These tests drive real gateways with the load generator of `shiftgate loadtest` in
// the open loop, above the caps, and read what was accepted on the server side: the
// counters of the stand-in regions, of the routes or of the cross-region bytes, read
// at the start and the end of a window. A token bucket admits at most rate × window
// plus its burst (0.1 s of the cap) in any window, so the figure does not depend on
// how the client's clock saw the run; the tolerance, ±10 % of the cap, is the issue's.

// openLoop runs the generator at rate requests per second against url until ctx ends,
// and hands its result to the returned channel.
func openLoop(ctx context.Context, t *testing.T, url string, rate float64) <-chan loadtest.Result {
	t.Helper()
	out := make(chan loadtest.Result, 1)
	go func() {
		res, err := loadtest.Run(ctx, loadtest.Options{URL: url, Rate: rate, Conns: 32, Duration: time.Minute, Users: 1000, Timeout: 5 * time.Second})
		if err != nil && ctx.Err() == nil {
			t.Errorf("loadtest %s: %v", url, err)
		}
		out <- res
	}()
	return out
}

// window reads count at its start and end, dur apart, and returns the rate per second.
func window(dur time.Duration, count func() float64) float64 {
	t0, c0 := time.Now(), count()
	time.Sleep(dur)
	t1, c1 := time.Now(), count()
	return (c1 - c0) / t1.Sub(t0).Seconds()
}

// A request cap's bucket holds 0.1 s of its rate. A generator that stalls (a loaded
// machine runs none of its goroutines for a while) offers nothing, the tokens of
// that time are lost to the full bucket, and then it sends the overdue requests at
// once, beyond the bucket: the accepted rate then says how the machine ran, not
// how the cap behaves. So a window is judged only if every route's arrivals at the
// gateway (forwarded and refused, counted by the gateway) kept to its offered rate in
// every slot of it; another window is measured when they did not.

// flow is one route's offered load and its arrivals so far.
type flow struct {
	name    string
	offered float64 // requests per second
	arrived func() float64
}

// routeArrivals counts what reached route name: forwarded and refused.
func routeArrivals(srv *proxy.Server, name string) func() float64 {
	return func() float64 {
		for _, r := range srv.Limits().Routes {
			if r.Name == name {
				return float64(r.Forwarded + r.Refused.Site + r.Refused.Route + r.Refused.Budget)
			}
		}
		return 0
	}
}

const (
	slot          = 250 * time.Millisecond
	steadyWindows = 6 // windows measured at most before the machine is declared too busy to measure
)

// steadyRates measures the rates of counters over dur, in slots, and reports
// whether every flow's arrivals in every slot stayed within half and one and a half
// of its offered rate (plus two requests for the spacing of the sends).
func steadyRates(dur time.Duration, flows []flow, counters ...func() float64) (rates []float64, steady bool, why string) {
	read := func() ([]float64, []float64) {
		a := make([]float64, len(flows))
		for i, f := range flows {
			a[i] = f.arrived()
		}
		c := make([]float64, len(counters))
		for i, f := range counters {
			c[i] = f()
		}
		return a, c
	}
	t0 := time.Now()
	a0, c0 := read()
	prevT, prevA := t0, a0
	steady = true
	for time.Since(t0) < dur {
		time.Sleep(slot)
		now := time.Now()
		a, _ := read()
		secs := now.Sub(prevT).Seconds()
		for i, f := range flows {
			got, want := a[i]-prevA[i], f.offered*secs
			if steady && (got < want/2-2 || got > want*1.5+2) {
				steady, why = false, fmt.Sprintf("%s: %.0f requests arrived in %.0f ms, %.0f expected", f.name, got, 1000*secs, want)
			}
		}
		prevT, prevA = now, a
	}
	t1 := time.Now()
	_, c1 := read()
	rates = make([]float64, len(counters))
	for i := range counters {
		rates[i] = (c1[i] - c0[i]) / t1.Sub(t0).Seconds()
	}
	return rates, steady, why
}

// measureSteady runs steadyRates until a window is steady, up to steadyWindows times.
func measureSteady(t *testing.T, dur time.Duration, flows []flow, counters ...func() float64) []float64 {
	t.Helper()
	for i := 0; i < steadyWindows; i++ {
		rates, steady, why := steadyRates(dur, flows, counters...)
		if steady {
			return rates
		}
		t.Logf("window %d not judged: the load generator fell behind (%s)", i+1, why)
	}
	t.Fatalf("in %d windows the load generator never kept to its rate: the machine is too busy to measure a cap", steadyWindows)
	return nil
}

func within(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }

// checkRefusals checks that what the gateway did not accept was answered 503: no
// connection dropped or reset; and, when some, that there were refusals.
func checkRefusals(t *testing.T, res loadtest.Result, some bool) {
	t.Helper()
	for kind, n := range res.ErrorKinds {
		if kind != "status_5xx" {
			t.Errorf("%d requests failed as %s: a refusal must be an answer, never a dropped connection", n, kind)
		}
	}
	if some && res.ErrorKinds["status_5xx"] == 0 {
		t.Errorf("no refusal at all: the load was not above the cap (%d requests)", res.Requests)
	}
}

const capConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
limits: { site_rps: 300 }
routes:
  - name: login
    match: { path_prefix: /login }
    priority: critical
  - name: feed
    match: { path_prefix: /api/feed }
  - name: prefetch
    match: { path_prefix: /prefetch }
    priority: low
  - name: default
    match: { path_prefix: / }
`

// TestSiteCapHoldsUnderLoad offers twice the site cap (600 rps against 300) in the
// open loop to one gateway: what reaches the region stays within ±10 % of the cap.
// Then the cap is raised through the admin API and the accepted rate follows.
func TestSiteCapHoldsUnderLoad(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	g := startLive(t, capConfig, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	ctx, cancel := context.WithCancel(context.Background())
	done := openLoop(ctx, t, "http://"+g.addr+"/api/feed", 600)
	accepted := func() float64 { return float64(idc.Requests()) }

	flows := []flow{{"feed", 600, routeArrivals(g.srv, "feed")}}

	time.Sleep(1500 * time.Millisecond) // past the first burst and connection set-up
	got := measureSteady(t, 3*time.Second, flows, accepted)[0]
	if code, body := g.call(t, "PUT", "/v1/limits", `{"site":{"rps":450}}`); code != 200 {
		t.Fatalf("raise the cap: %d %s", code, body)
	}
	time.Sleep(500 * time.Millisecond)
	raised := measureSteady(t, 3*time.Second, flows, accepted)[0]
	cancel()
	res := <-done
	t.Logf("site cap 300 rps, 600 rps offered: accepted %.1f rps (%+.1f%%); raised to 450: %.1f rps (%+.1f%%); client saw %d requests, %d refused",
		got, 100*(got/300-1), raised, 100*(raised/450-1), res.Requests, res.ErrorKinds["status_5xx"])
	if !within(got, 300, 0.10) {
		t.Errorf("accepted %.1f rps under a site cap of 300, want within ±10%%", got)
	}
	if !within(raised, 450, 0.10) {
		t.Errorf("accepted %.1f rps under a site cap raised to 450, want within ±10%%", raised)
	}
	checkRefusals(t, res, true)
	if l := g.srv.Limits(); l.Routes[1].Refused.Site == 0 {
		t.Errorf("refusals not counted on the route: %+v", l.Routes[1])
	}
}

// TestPrioritySheddingUnderLoad offers 550 rps against a site cap of 300: 100 rps of a
// critical route, 150 of a normal one and 300 of a low one. The low route is shed
// first: it gets what the others leave, while critical and normal keep (nearly) all
// they asked for. (The low route's 300 keeps the bucket drained when the other
// generators fall behind on a busy machine, so the cap, not the offered load, sets
// the total.)
func TestPrioritySheddingUnderLoad(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	g := startLive(t, capConfig, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	ctx, cancel := context.WithCancel(context.Background())
	offered := map[string]float64{"login": 100, "feed": 150, "prefetch": 300}
	paths := map[string]string{"login": "/login", "feed": "/api/feed", "prefetch": "/prefetch"}
	var dones []<-chan loadtest.Result
	for name, rate := range offered {
		dones = append(dones, openLoop(ctx, t, "http://"+g.addr+paths[name], rate))
	}
	names := []string{"login", "feed", "prefetch"}
	var flows []flow
	var counters []func() float64
	for _, name := range names {
		flows = append(flows, flow{name, offered[name], routeArrivals(g.srv, name)})
		counters = append(counters, func() float64 {
			for _, r := range g.srv.Limits().Routes {
				if r.Name == name {
					return float64(r.Forwarded)
				}
			}
			return 0
		})
	}
	time.Sleep(1500 * time.Millisecond)
	rates := measureSteady(t, 4*time.Second, flows, counters...)
	cancel()
	for _, d := range dones {
		checkRefusals(t, <-d, false)
	}
	share := map[string]float64{}
	total := 0.0
	for i, name := range names {
		rate := offered[name]
		r := rates[i]
		total += r
		share[name] = r / rate
		t.Logf("%-8s offered %3.0f rps, accepted %6.1f rps (%3.0f%%)", name, rate, r, 100*share[name])
	}
	t.Logf("total accepted %.1f rps under a site cap of 300 (%+.1f%%)", total, 100*(total/300-1))
	if !within(total, 300, 0.10) {
		t.Errorf("total accepted %.1f rps, want 300 ±10%%", total)
	}
	if share["login"] < 0.9 || share["feed"] < 0.75 {
		t.Errorf("critical kept %.0f%% and normal %.0f%% of what they asked: low must be shed first", 100*share["login"], 100*share["feed"])
	}
	if !(share["prefetch"] < share["feed"] && share["feed"] <= share["login"]+0.05) {
		t.Errorf("shed order: low %.2f, normal %.2f, critical %.2f of their offered rate; want low < normal <= critical",
			share["prefetch"], share["feed"], share["login"])
	}
}

const budgetLoadConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
self_region: idc
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
budgets:
  - { from: idc, to: cloud, rate: 4Mbit }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 100
  - name: default
    match: { path_prefix: / }
`

// TestByteBudgetHoldsUnderLoad: a gateway in idc sends every feed request to cloud,
// whose answers are 4 kB; a budget of 4 Mbit/s (500 kB/s, about 120 answers a second)
// with 300 rps offered holds the bytes crossing within ±10 % of the budget.
func TestByteBudgetHoldsUnderLoad(t *testing.T) {
	idc := startRegion(t, "idc")
	cloud, err := standin.Start("cloud", "127.0.0.1:0", standin.Options{BodySize: 4000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cloud.Close() })
	g := startLive(t, budgetLoadConfig, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	ctx, cancel := context.WithCancel(context.Background())
	done := openLoop(ctx, t, "http://"+g.addr+"/api/feed", 300)
	crossed := func() float64 {
		for _, p := range g.srv.Limits().CrossRegion {
			if p.From == "idc" && p.To == "cloud" {
				return float64(p.Bytes)
			}
		}
		return 0
	}
	time.Sleep(2 * time.Second) // the first second of budget (its burst) is spent
	got := window(5*time.Second, crossed)
	cancel()
	res := <-done
	const budget = 4e6 / 8
	t.Logf("budget idc->cloud 4Mbit/s (%.0f B/s), 300 rps of 4 kB answers offered: %.0f B/s crossed (%+.1f%%); %d requests, %d refused (budget)",
		budget, got, 100*(got/budget-1), res.Requests, res.ErrorKinds["status_5xx"])
	if !within(got, budget, 0.10) {
		t.Errorf("%.0f bytes/s crossed under a budget of %.0f, want within ±10%%", got, budget)
	}
	checkRefusals(t, res, true)
	if idc.Requests() != 0 {
		t.Errorf("%d requests went to idc: a budget refuses, it does not reroute", idc.Requests())
	}
	var feed proxy.RouteLimitStatus
	for _, r := range g.srv.Limits().Routes {
		if r.Name == "feed" {
			feed = r
		}
	}
	if feed.Refused.Budget == 0 {
		t.Errorf("budget refusals not counted: %+v", feed)
	}
}
