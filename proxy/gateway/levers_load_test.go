package gateway

import (
	"context"
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

	time.Sleep(1500 * time.Millisecond) // past the first burst and connection set-up
	got := window(4*time.Second, accepted)
	if code, body := g.call(t, "PUT", "/v1/limits", `{"site":{"rps":450}}`); code != 200 {
		t.Fatalf("raise the cap: %d %s", code, body)
	}
	time.Sleep(500 * time.Millisecond)
	raised := window(3*time.Second, accepted)
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
	forwarded := func() map[string]float64 {
		out := map[string]float64{}
		for _, r := range g.srv.Limits().Routes {
			out[r.Name] = float64(r.Forwarded)
		}
		return out
	}
	time.Sleep(1500 * time.Millisecond)
	t0, f0 := time.Now(), forwarded()
	time.Sleep(5 * time.Second)
	t1, f1 := time.Now(), forwarded()
	cancel()
	for _, d := range dones {
		checkRefusals(t, <-d, false)
	}
	secs := t1.Sub(t0).Seconds()
	share := map[string]float64{}
	total := 0.0
	for name, rate := range offered {
		r := (f1[name] - f0[name]) / secs
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
