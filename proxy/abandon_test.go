package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// abandonConf sends every user to cloud (a hungRegion) with idc to fail over to.
// response_header is 30 s, longer than any client here waits: a request answered
// while cloud hangs was cut and sent to idc.
const abandonConf = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"], pipeline_conns: 1 }
split: { from: idc, to: cloud, salt: abandon }
timeouts: { connect: 500ms, response_header: 30s }
routes:
  - name: feed
    match: { path_prefix: / }
    percent: 100
    failover: idempotent
    pipeline: {{PIPE}}
    breaker: { min_requests: 1000, open_for: {{OPEN}}, slow_call: { threshold: 200ms, ratio: 0.5, min_calls: {{MIN}}, abandon_reads: true } }
`

type abandonSetup struct {
	gw    *gateway
	cloud *hungRegion
}

func startAbandon(t *testing.T, pipe bool, openFor string, minCalls string) abandonSetup {
	t.Helper()
	idc := startRegion(t, "idc")
	cloud := startHungRegion(t)
	p := "false"
	if pipe {
		p = "true"
	}
	gw := startGateway(t, abandonConf, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.ln.Addr().String(),
		"PIPE": p, "OPEN": openFor, "MIN": minCalls})
	return abandonSetup{gw: gw, cloud: cloud}
}

// answer is what a client got.
type answer struct {
	status int
	by     string
	err    string // "" for none
}

// hangGuard bounds every client call: far below response_header (30 s), far above
// anything a working gateway needs.
const hangGuard = 15 * time.Second

func (a abandonSetup) send(method, path string) answer {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + a.gw.addr + path)
	req.Header.SetMethod(method)
	req.Header.Set("X-User-Id", "u-1")
	if method == fasthttp.MethodPost {
		req.SetBodyString("x=1")
	}
	if err := fasthttp.DoTimeout(req, resp, hangGuard); err != nil {
		return answer{err: err.Error()}
	}
	return answer{resp.StatusCode(), string(resp.Header.Peek("X-Served-By")), ""}
}

// sendAll sends n requests at once and returns a channel of their answers.
func (a abandonSetup) sendAll(n int, method string) <-chan answer {
	out := make(chan answer, n)
	for i := range n {
		go func() { out <- a.send(method, "/feed/"+itoa(i)) }()
	}
	return out
}

const (
	abandonedCloud = `shiftgate_abandoned_reads_total{route="feed",region="cloud"}`
	openedCloud    = `shiftgate_breaker_transitions_total{route="feed",region="cloud",from="closed",to="open"}`
	reopenedCloud  = `shiftgate_breaker_transitions_total{route="feed",region="cloud",from="half-open",to="open"}`
)

// Reads waiting on a hung region when its breaker opens are cut and answered by the
// other region, long before response_header.
func TestAbandonedReadsFailOver(t *testing.T) {
	a := startAbandon(t, false, "1m", "4")
	a.cloud.setHung(true)
	answers := a.sendAll(4, fasthttp.MethodGet)
	for range 4 {
		r := <-answers
		if r.err != "" || r.status != 200 || r.by != "idc" {
			t.Errorf("answer %+v, want 200 from idc (cut and failed over)", r)
		}
	}
	waitFor(t, "cloud to have read the 4 requests", func() bool { return a.cloud.heads.Load() == 4 })
	if n := counterValue(a.gw.srv, abandonedCloud); n != 4 {
		t.Errorf("%s = %d, want 4", abandonedCloud, n)
	}
	if n := counterValue(a.gw.srv, `shiftgate_failovers_total{route="feed"}`); n != 4 {
		t.Errorf("failovers = %d, want 4", n)
	}
	if text := metricsText(a.gw.srv); !strings.Contains(text, "# HELP shiftgate_abandoned_reads_total Reads cut") ||
		!strings.Contains(text, "# TYPE shiftgate_abandoned_reads_total counter") {
		t.Error("shiftgate_abandoned_reads_total has no help text or type")
	}
}

// A half-open probe to a region that still hangs waits the slow-call threshold, not
// response_header, and then fails over like a cut read.
func TestAbandonHalfOpenProbe(t *testing.T) {
	a := startAbandon(t, false, "300ms", "1")
	a.cloud.setHung(true)
	for i := 0; counterValue(a.gw.srv, reopenedCloud) < 1; i++ {
		if i > 1000 {
			t.Fatal("no half-open probe failed")
		}
		if r := a.send(fasthttp.MethodGet, "/feed/"+itoa(i)); r.err != "" || r.status != 200 || r.by != "idc" {
			t.Fatalf("request %d: %+v, want 200 from idc", i, r)
		}
		time.Sleep(20 * time.Millisecond) // paces the loop; nothing depends on it
	}
	// The first read was cut when the breaker opened, the probe at its limit.
	if n := counterValue(a.gw.srv, abandonedCloud); n < 2 {
		t.Errorf("%s = %d, want at least 2 (the cut read and the probe)", abandonedCloud, n)
	}
}

// keepWaiting checks that requests to the hung region were not cut when its breaker
// opened: they are answered by it once it recovers.
func keepWaiting(t *testing.T, a abandonSetup, n int, method string) {
	t.Helper()
	a.cloud.setHung(true)
	answers := a.sendAll(n, method)
	// The transition's counter moves after the cut (same goroutine), so once it
	// reads 1 any cut has been made.
	waitFor(t, "the breaker to open", func() bool { return counterValue(a.gw.srv, openedCloud) == 1 })
	waitFor(t, "cloud to have read every request", func() bool { return a.cloud.heads.Load() == int64(n) })
	a.cloud.setHung(false)
	for range n {
		if r := <-answers; r.err != "" || r.status != 200 || r.by != "cloud" {
			t.Errorf("answer %+v, want 200 from cloud (not cut)", r)
		}
	}
	if v := counterValue(a.gw.srv, abandonedCloud); v != 0 {
		t.Errorf("%s = %d, want 0", abandonedCloud, v)
	}
}

// Pipelined reads share their connection with other requests: never cut.
func TestAbandonSkipsPipelined(t *testing.T) {
	keepWaiting(t, startAbandon(t, true, "1m", "2"), 2, fasthttp.MethodGet)
}

// A POST may not fail over: never cut.
func TestAbandonSkipsPost(t *testing.T) {
	keepWaiting(t, startAbandon(t, false, "1m", "1"), 1, fasthttp.MethodPost)
}

// With abandon_reads on, a proxied request still allocates nothing.
func TestHandlerAllocsAbandonReads(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; run without -race")
	}
	const old = "breaker: { min_requests: 20, failure_ratio: 0.5, window: 10s, open_for: 5s }"
	if !strings.Contains(benchConfig, old) {
		t.Fatal("benchConfig's breaker line changed")
	}
	m := newInMemoryConfig(t, strings.Replace(benchConfig, old,
		"breaker: { min_requests: 20, open_for: 5s, slow_call: { threshold: 500ms, abandon_reads: true } }", 1))
	handlerAllocs(t, m)
	st := m.srv.state.Load()
	nodes := 0
	for _, b := range st.routes[0].run.breakers {
		if b != nil {
			nodes += b.WaitNodes()
		}
	}
	if nodes == 0 {
		t.Error("no request was registered with a breaker: the test measured nothing")
	}
}
