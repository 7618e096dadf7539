package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

const budgetCohortConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
self_region: idc
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
budgets:
  - { from: idc, to: cloud, rate: 80kbit }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 100
    budget_mode: {{MODE}}
    {{FALLBACK}}
  - name: vip
    match: { path_prefix: /vip }
    percent: 100
    priority: critical
`

// TestBudgetRefusalIsNoCohortError: a request the byte budget refuses is the
// operator's lever, not the moved region's failure. Like a cap's refusal it is
// counted as a refusal (/v1/limits, shiftgate_shed_total) and filed under no cohort,
// so a plan's error_ratio gate does not roll a move back because of a budget; the
// real errors of to (its 503s) are still moved errors, and a read the budget answers
// from the cached fallback is in the fallback cohort, not an error. Before, every
// budget refusal was a moved error (an audit saw a plan rolled back at "moved 2.8 %
// errors" while the cloud backend returned none).
func TestBudgetRefusalIsNoCohortError(t *testing.T) {
	for _, tc := range []struct {
		name, mode, fallback string
		wantFallbacks        bool
	}{
		{name: "refuse", mode: "refuse"},
		// Over MaxPace of debt a paced route refuses too.
		{name: "pace", mode: "pace"},
		// Cached pages are answered from the cache; misses are refused.
		{name: "cached fallback", mode: "refuse", fallback: "fallback: { cache: { ttl: 10m } }", wantFallbacks: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idc := startRegion(t, "idc")
			// cloud answers 503 to /api/feed/fail: the moved region's own errors.
			cloud, err := standin.Start("cloud", "127.0.0.1:0", standin.Options{BodySize: 1000,
				FailIf: func(h *fasthttp.RequestHeader) bool { return bytes.HasPrefix(h.RequestURI(), []byte("/api/feed/fail")) }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cloud.Close() })
			vars := map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr, "MODE": tc.mode, "FALLBACK": tc.fallback}
			clock := newFakeClock() // stopped: the budget refills only when the test says
			g := startLeverGateway(t, t.TempDir(), budgetCohortConfig, vars, clock)
			k := dialConn(t, g.addr)
			level := func() float64 { return g.srv.Limits().Budgets[0].Level }

			var ok, failed, refused, fallbacks uint64
			send := func(i int) {
				t.Helper()
				path := fmt.Sprintf("/api/feed?page=%d", i)
				if i%3 == 2 {
					path = fmt.Sprintf("/api/feed/fail?page=%d", i)
				}
				resp, _ := k.get(path)
				switch {
				case resp.Header.Get("X-Shift-Shed") != "":
					if why := shedBy(t, resp); why != "budget" {
						t.Fatalf("%s refused by %q", path, why)
					}
					refused++
				case resp.Header.Get("X-Shift-Fallback") != "":
					fallbacks++
				case resp.StatusCode == 200 && resp.Header.Get("X-Shift-Region") == "cloud":
					ok++
				case resp.StatusCode == 503 && strings.HasPrefix(path, "/api/feed/fail"):
					failed++
				default:
					t.Fatalf("%s: %d region %q", path, resp.StatusCode, resp.Header.Get("X-Shift-Region"))
				}
			}
			// Under the budget, every request crosses: the 503s are cloud's own.
			i := 0
			for ; level() > 0.3; i++ {
				if i == 100 {
					t.Fatalf("the budget's level stays at %.2f", level())
				}
				send(i)
			}
			if refused != 0 || fallbacks != 0 || failed == 0 {
				t.Fatalf("under the budget: %d ok, %d failed, %d refused, %d fallbacks", ok, failed, refused, fallbacks)
			}
			crossed := i
			// A critical request puts the pair into more debt than MaxPace repays.
			vip := dialConn(t, g.addr)
			vip.c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(vip.c, "POST /vip HTTP/1.1\r\nHost: gw\r\nX-User-Id: u-1001\r\nContent-Length: 200000\r\n\r\n%s", strings.Repeat("x", 200000))
			resp, err := http.ReadResponse(vip.br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("critical POST: %v %v", resp, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// Over the budget: the pages the first loop cached, and pages it did not.
			for j := 0; j < 2*crossed; j++ {
				send(j)
			}
			if refused == 0 || (fallbacks > 0) != tc.wantFallbacks {
				t.Fatalf("over the budget: %d refused, %d fallbacks", refused, fallbacks)
			}

			snap, err := g.srv.Stats("feed", stats.View{})
			if err != nil {
				t.Fatal(err)
			}
			co := snap.Routes[0].Cohorts
			want := map[string][2]uint64{ // requests, errors
				"moved": {ok + failed, failed}, "stayed": {0, 0}, "failover": {0, 0}, "fallback": {fallbacks, 0}}
			for name, r := range map[string]stats.Reading{"moved": co.Moved, "stayed": co.Stayed, "failover": co.Failover, "fallback": co.Fallback} {
				if got := [2]uint64{r.Requests, r.Errors}; got != want[name] {
					t.Errorf("%s cohort: %d requests, %d errors; want %d, %d (%d budget refusals must not count)",
						name, got[0], got[1], want[name][0], want[name][1], refused)
				}
			}
			// The refusals are still counted, as refusals.
			for _, r := range g.srv.Limits().Routes {
				if r.Name == "feed" && (r.Refused.Budget != refused || r.Fallback != fallbacks) {
					t.Errorf("feed: %d budget refusals, %d fallbacks in /v1/limits; want %d, %d", r.Refused.Budget, r.Fallback, refused, fallbacks)
				}
			}
			t.Logf("%d ok and %d cloud 503s crossed; then %d refused by the budget, %d cached fallbacks", ok, failed, refused, fallbacks)
		})
	}
}

// TestPacedLatencyIsNotTheRegions: a request a byte budget holds back (budget_mode
// pace) waits on the operator's lever, not on the region: the cohort statistics, which
// a plan's latency gate reads, record its latency without the wait. The client's wait
// here is seconds (asserted on the client's side); the recorded p99 is far below it.
func TestPacedLatencyIsNotTheRegions(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	vars := map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr, "MODE": "pace", "FALLBACK": ""}
	clock := newFakeClock() // stopped: the budget refills only when the test says
	g := startLeverGateway(t, t.TempDir(), budgetCohortConfig, vars, clock)
	k := dialConn(t, g.addr)
	if resp, _ := k.get("/api/feed?page=1"); resp.StatusCode != 200 {
		t.Fatalf("first read: %d", resp.StatusCode)
	}
	// A critical 40 kB POST puts the pair about 4 s (of its 10 kB/s) into debt:
	// below MaxPace, so the next read is held back, not refused.
	vip := dialConn(t, g.addr)
	vip.c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(vip.c, "POST /vip HTTP/1.1\r\nHost: gw\r\nX-User-Id: u-1001\r\nContent-Length: 40000\r\n\r\n%s", strings.Repeat("x", 40000))
	resp, err := http.ReadResponse(vip.br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("critical POST: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	k.c.SetDeadline(time.Now().Add(15 * time.Second))
	start := time.Now()
	resp, _ = k.get("/api/feed?page=2")
	waited := time.Since(start)
	if resp.StatusCode != 200 || resp.Header.Get("X-Shift-Shed") != "" {
		t.Fatalf("paced read: %d shed %q", resp.StatusCode, resp.Header.Get("X-Shift-Shed"))
	}
	if waited < 2*time.Second {
		t.Fatalf("the read took %s: not held back by the budget (the test's premise)", waited)
	}
	snap, err := g.srv.Stats("feed", stats.View{})
	if err != nil {
		t.Fatal(err)
	}
	moved := snap.Routes[0].Cohorts.Moved
	if moved.Requests != 2 || moved.P99 >= 1000 {
		t.Fatalf("moved cohort: %d requests, p99 %.1f ms; want 2 with the %s wait left out", moved.Requests, moved.P99, waited)
	}
	t.Logf("the client waited %s; the moved cohort's p99 is %.1f ms", waited, moved.P99)
}
