package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/admin"
	"github.com/shiftgate/shiftgate/proxy/stats"
	"github.com/shiftgate/shiftgate/routing"
)

const (
	exampleDir     = "../../../shared/examples"
	dashboardToken = "dash-test-token-3f9a"
)

// TestDashboard opens the migration dashboard in a real headless chromium against a
// gateway running the reference config (its addresses moved to free loopback ports,
// one of idc's upstreams flaky, a token on the admin API) after real traffic: the page
// loads without console errors, shows every route of the config, and the numbers it
// rendered agree with /v1/stats, /v1/status and /metrics read at the same time; a split
// changed through the admin API shows on the page within seconds, with its event. A
// tab without the token gets the token prompt and no data. A screenshot is written
// under the test's temp dir (and to $SHIFTGATE_DASHBOARD_PNG when set).
func TestDashboard(t *testing.T) {
	chromiumPath(t)
	idc1, idc2 := startFlaky(t, "idc"), startFlaky(t, "idc")
	cloud := startRegion(t, "cloud")
	dir := t.TempDir()
	text := referenceConfig(t, dir, map[string]string{
		"127.0.0.1:9001": idc1.addr, "127.0.0.1:9011": idc2.addr, "127.0.0.1:9002": cloud.Addr})
	g := startLiveWith(t, dir, text, nil, nil)

	// Without the token the data is refused; the page itself holds none and loads.
	if code, _ := g.call(t, "GET", "/v1/stats", ""); code != http.StatusUnauthorized {
		t.Fatalf("/v1/stats without the token: %d, want 401", code)
	}
	code, shell := g.call(t, "GET", "/dashboard", "")
	if code != 200 || strings.Contains(shell, "/api/feed") || !strings.Contains(shell, `data-token-required="true"`) {
		t.Fatalf("/dashboard without the token: %d\n%s", code, shell)
	}

	// Traffic: users of the feed and the catch-all route, keyed by header, cookie,
	// device or nothing (their IP), from several kinds of client; one in 20 answers of
	// idc fails. Then idc fails outright for a moment, so the feed's idc breaker opens
	// and the feed fails over to the cloud.
	idc1.failEvery.Store(20)
	idc2.failEvery.Store(20)
	sendLoad(t, g.addr, 5200, feedRequest)
	sendLoad(t, g.addr, 600, func(i int) (string, map[string]string) {
		return fmt.Sprintf("/api/profile/%d", i), map[string]string{"X-User-Id": fmt.Sprintf("p-%d", i), "User-Agent": userAgents[i%len(userAgents)]}
	})
	idc1.failEvery.Store(1)
	idc2.failEvery.Store(1)
	api := &admin.Client{Base: g.admin, Token: dashboardToken}
	for batch := 0; breakerState(t, api, "feed", "idc") != "open"; batch++ {
		if batch == 100 {
			t.Fatal("the feed's idc breaker did not open while idc failed every request")
		}
		sendLoad(t, g.addr, 100, func(i int) (string, map[string]string) {
			return "/api/feed", map[string]string{"X-User-Id": stayingUser(batch*100 + i), "User-Agent": "okhttp/4.12.0"}
		})
	}
	idc1.failEvery.Store(20)
	idc2.failEvery.Store(20)

	b := startBrowser(t)
	// Opened without the token, the page asks for it; the token then given in the
	// fragment of the open page (a hash change, no reload) is taken at once and
	// leaves the address bar. Before, the page read the fragment only when it loaded.
	b.navigate(t, g.admin+"/dashboard")
	waitFor(t, "the token prompt", 30*time.Second, func() (bool, string) {
		p := b.read(t)
		return p.TokenForm, fmt.Sprintf("token form %v", p.TokenForm)
	})
	b.navigate(t, g.admin+"/dashboard#token="+dashboardToken)
	waitFor(t, "the token taken from a changed fragment", 30*time.Second, func() (bool, string) {
		p := b.read(t)
		var hash string
		b.eval(t, "JSON.stringify(location.hash)", &hash)
		return !p.TokenForm && p.Polls > 0 && hash == "", fmt.Sprintf("token form %v, polls %d, location.hash %q", p.TokenForm, p.Polls, hash)
	})
	cfg, err := conf.LoadFile(g.path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range cfg.Routes {
		names = append(names, r.Name)
	}
	waitFor(t, "every route of the config on the page", time.Minute, func() (bool, string) {
		p := b.read(t)
		return p.Polls > 0 && hasAll(p.Rows, names...) && len(p.Routes) == len(names),
			fmt.Sprintf("polls %d, rows %v, cards %s; want %v", p.Polls, p.Rows, joinKeys(p.Routes), names)
	})
	if p := b.read(t); p.TokenForm {
		t.Errorf("the token prompt shows although the URL carried the token")
	}

	// The page's numbers against the API's, read at the same time. The traffic has
	// stopped, so they settle; the page polls every 1.5 s.
	waitFor(t, "the page's numbers agree with /v1/stats, /v1/status and /metrics", 30*time.Second, func() (bool, string) {
		return agree(t, api, b.read(t))
	})
	p := b.read(t)
	feed := p.Routes["feed"]
	if n, _ := strconv.Atoi(feed["failoversTotal"]); n == 0 {
		t.Errorf("no failovers on the page after idc failed: %v", feed)
	}
	if n, _ := strconv.Atoi(feed["breakerTransitions"]); n == 0 {
		t.Errorf("no breaker transitions on the page after idc failed: %v", feed)
	}
	if n, _ := strconv.Atoi(feed["topSources"]); n == 0 {
		t.Errorf("no top sources for the feed, 25 %% moved: %v", feed)
	}
	if !hasAll(p.Events, proxy.EventStart, proxy.EventBreaker) {
		t.Errorf("events on the page: %v; want the start and a breaker transition", p.Events)
	}

	// A live update: the feed's split changes through the admin API.
	var res proxy.SplitResult
	if err := api.Do("PUT", "/v1/routes/feed/split", map[string]any{"percent": 50}, &res); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the split change on the page", 20*time.Second, func() (bool, string) {
		p := b.read(t)
		f := p.Routes["feed"]
		return f["percent"] == "50" && f["source"] == "override" && hasAll(p.Events, proxy.EventSplit),
			fmt.Sprintf("feed percent %q source %q, events %v", f["percent"], f["source"], p.Events)
	})
	sendLoad(t, g.addr, 400, feedRequest) // the chart shows the new cohorts
	waitFor(t, "the page's numbers agree after the change", 30*time.Second, func() (bool, string) {
		return agree(t, api, b.read(t))
	})

	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG: % x", png[:min(8, len(png))])
	}
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("SHIFTGATE_DASHBOARD_PNG"); out != "" {
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	// The longest history (10 s steps over 24 h) draws too.
	before := b.read(t).Polls
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => { const s = document.getElementById('history');
		s.value = '24h'; s.dispatchEvent(new Event('change')); return true })()`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two updates with 24 h of history", 20*time.Second, func() (bool, string) {
		p := b.read(t)
		return p.Polls >= before+2 && p.Routes["feed"]["requests"] != "", fmt.Sprintf("polls %d, were %d", p.Polls, before)
	})

	// A tab without the token asks for it and shows no data.
	b2 := b.newTab(t)
	b2.navigate(t, g.admin+"/dashboard")
	waitFor(t, "the token prompt", 20*time.Second, func() (bool, string) {
		p := b2.read(t)
		return p.TokenForm && len(p.Routes) == 0, fmt.Sprintf("prompt %v, routes %s", p.TokenForm, joinKeys(p.Routes))
	})

	for _, tab := range []*browser{b, b2} {
		if errs := tab.consoleErrors(); len(errs) > 0 {
			t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
		}
	}
}

// TestDashboardFleet opens the fleet view of a gateway whose fleet store lists itself,
// a second gateway and a member that accepts connections but never answers: the page
// merges the two that answer (its numbers are their sum), names the silent one as
// missing, and keeps updating.
func TestDashboardFleet(t *testing.T) {
	chromiumPath(t)
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	addrs := map[string]string{"127.0.0.1:9001": idc.Addr, "127.0.0.1:9011": idc.Addr, "127.0.0.1:9002": cloud.Addr}
	dirB := t.TempDir()
	gb := startLiveWith(t, dirB, referenceConfig(t, dirB, addrs), nil, nil)
	ghost := startSilent(t)

	fleet := &listedFleet{fakeFleetStore: &fakeFleetStore{up: true}}
	dirA := t.TempDir()
	ga := startLiveWith(t, dirA, referenceConfig(t, dirA, addrs), nil, fleet)
	fleet.set([]store.Instance{
		{Instance: "gw-a", Admin: strings.TrimPrefix(ga.admin, "http://")},
		{Instance: "gw-b", Admin: strings.TrimPrefix(gb.admin, "http://")},
		{Instance: "ghost", Admin: ghost},
	})
	sendLoad(t, ga.addr, 300, feedRequest)
	sendLoad(t, gb.addr, 500, feedRequest)

	b := startBrowser(t)
	b.navigate(t, ga.admin+"/dashboard#token="+dashboardToken)
	waitFor(t, "the page's first update", time.Minute, func() (bool, string) {
		p := b.read(t)
		return p.Polls > 0 && p.FleetOn, fmt.Sprintf("polls %d, fleet toggle enabled %v", p.Polls, p.FleetOn)
	})
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.ID("fleet"))); err != nil {
		t.Fatal(err)
	}
	sum := func() string {
		var n uint64
		for _, g := range []*liveGateway{ga, gb} {
			var s stats.Snapshot
			if err := (&admin.Client{Base: g.admin, Token: dashboardToken}).Do("GET", "/v1/stats?route=feed&history=0", nil, &s); err != nil {
				t.Fatal(err)
			}
			n += s.Routes[0].Requests
		}
		return strconv.FormatUint(n, 10)
	}
	want := sum()
	var polls int
	waitFor(t, "the fleet view", 30*time.Second, func() (bool, string) {
		p := b.read(t)
		polls = p.Polls
		return p.View == "fleet" && p.Missing == "ghost" && strings.Count(p.Instances, ",") == 1 && p.Routes["feed"]["requests"] == want,
			fmt.Sprintf("view %q, instances %q, missing %q, feed requests %q (want %s)", p.View, p.Instances, p.Missing, p.Routes["feed"]["requests"], want)
	})
	waitFor(t, "updates go on while a member does not answer", 30*time.Second, func() (bool, string) {
		p := b.read(t)
		return p.Polls >= polls+2, fmt.Sprintf("polls %d, were %d", p.Polls, polls)
	})
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
}

// agree compares the page with /v1/stats, /v1/status and /metrics, read now.
func agree(t *testing.T, api *admin.Client, p page) (bool, string) {
	t.Helper()
	var snap stats.Snapshot
	var st proxy.Status
	if err := api.Do("GET", "/v1/stats?history=0", nil, &snap); err != nil {
		t.Fatal(err)
	}
	if err := api.Do("GET", "/v1/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	metrics := metricsText(t, api)
	var diffs []string
	check := func(route, key, want string) {
		got := p.Routes[route][key]
		if g, err1 := strconv.ParseFloat(got, 64); err1 == nil {
			if w, err2 := strconv.ParseFloat(want, 64); err2 == nil && g == w {
				return
			}
		}
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s %s: page %q, API %q", route, key, got, want))
		}
	}
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	for _, r := range snap.Routes {
		if _, ok := p.Routes[r.Name]; !ok {
			diffs = append(diffs, "no card for "+r.Name)
			continue
		}
		check(r.Name, "requests", u(r.Requests))
		check(r.Name, "movedShare", f(r.MovedShare))
		for k, c := range map[string]stats.Reading{"moved": r.Cohorts.Moved, "stayed": r.Cohorts.Stayed, "failover": r.Cohorts.Failover, "fallback": r.Cohorts.Fallback} {
			check(r.Name, k, u(c.Requests))
			check(r.Name, k+"Errors", u(c.Errors))
		}
		check(r.Name, "topSources", strconv.Itoa(len(r.TopSources)))
		for key, cmp := range map[string]stats.Comparison{"mvs": r.Compare.MovedVsStayed, "svp": r.Compare.StayedVsPast} {
			check(r.Name, key+"A", u(cmp.A.Requests))
			check(r.Name, key+"B", u(cmp.B.Requests))
			want := string(cmp.Verdict)
			need := max(snap.Criteria.Error.MinRequests, snap.Criteria.Latency.MinRequests)
			if cmp.Verdict != stats.Fail && (cmp.A.Requests < need || cmp.B.Requests < need) {
				want = "too few samples" // never a pass
			}
			check(r.Name, key+"Verdict", want)
		}
		check(r.Name, "failoversTotal", f(metricSum(metrics, "shiftgate_failovers_total", r.Name)))
		check(r.Name, "fallbacksTotal", f(metricSum(metrics, "shiftgate_fallbacks_total", r.Name)))
		check(r.Name, "breakerTransitions", f(metricSum(metrics, "shiftgate_breaker_transitions_total", r.Name)))
	}
	for _, r := range st.Routes {
		check(r.Name, "percent", f(r.Percent))
		check(r.Name, "writePercent", f(r.WritePercent))
		check(r.Name, "effectivePercent", f(r.Effective))
		src := "file"
		if r.Override != nil {
			src = "override"
		}
		check(r.Name, "source", src)
		var br []string
		for _, region := range []string{"cloud", "idc"} {
			if s, ok := r.Breakers[region]; ok {
				br = append(br, region+" "+s)
			}
		}
		check(r.Name, "breakers", strings.Join(br, ", "))
	}
	return len(diffs) == 0, strings.Join(diffs, "; ")
}

func metricsText(t *testing.T, api *admin.Client) string {
	t.Helper()
	req, _ := http.NewRequest("GET", api.Base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+api.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// metricSum adds the samples of one metric whose route label is route.
func metricSum(text, name, route string) float64 {
	var sum float64
	label := `route="` + route + `"`
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok || !strings.Contains(","+labels+",", ","+label+",") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// referenceConfig is the reference config with its upstream addresses replaced as
// addrs says, self_region idc (so the page shows region pairs) and the admin token in
// a file; the fallback body it names is copied into dir.
func referenceConfig(t *testing.T, dir string, addrs map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(exampleDir, "cutover.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.ReadFile(filepath.Join(exampleDir, "feed-fallback.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "feed-fallback.json"), fb, 0o644); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(dashboardToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for from, to := range addrs {
		if !strings.Contains(text, from) {
			t.Fatalf("the reference config no longer names %s", from)
		}
		text = strings.ReplaceAll(text, from, to)
	}
	adminLine := regexp.MustCompile(`(?m)^  listen: 127\.0\.0\.1:9090.*$`)
	if !adminLine.MatchString(text) {
		t.Fatal("the reference config no longer has admin.listen 127.0.0.1:9090")
	}
	text = adminLine.ReplaceAllString(text, "  listen: 127.0.0.1:9090\n  token_file: "+tokenFile)
	return strings.Replace(text, "\nregions:", "\nself_region: idc\nregions:", 1)
}

var userAgents = []string{
	"curl/8.5.0",
	"okhttp/4.12.0",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
	"python-requests/2.31.0",
	"Go-http-client/1.1",
}

// feedRequest is the i-th request of the feed's users: keyed by header for most, by
// cookie, by device, or by nothing (the client's address) for the rest.
func feedRequest(i int) (string, map[string]string) {
	h := map[string]string{"User-Agent": userAgents[i%len(userAgents)]}
	switch i % 10 {
	case 7:
		h["Cookie"] = fmt.Sprintf("uid=c-%d", i)
	case 8:
		h["X-Device-Id"] = fmt.Sprintf("d-%d", i)
	case 9:
	default:
		h["X-User-Id"] = fmt.Sprintf("u-%d", i)
	}
	return fmt.Sprintf("/api/feed?page=%d", i%5), h
}

// breakerState reads a breaker's state from /v1/status.
func breakerState(t *testing.T, api *admin.Client, route, region string) string {
	t.Helper()
	var st proxy.Status
	if err := api.Do("GET", "/v1/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Routes {
		if r.Name == route {
			return r.Breakers[region]
		}
	}
	return ""
}

// stayingUser returns the i-th user whose bucket keeps them in idc at 25 %.
func stayingUser(i int) string {
	for n := 0; ; n++ {
		k := fmt.Sprintf("s-%d-%d", i, n)
		if routing.Bucket("cutover-2026", k) >= 2500 {
			return k
		}
	}
}

// sendLoad sends n requests (path and headers from req) through the gateway from 8
// clients and returns when all are answered; failed answers are part of the traffic.
func sendLoad(t *testing.T, addr string, n int, req func(i int) (string, map[string]string)) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	var transportErrs atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				path, hdr := req(i)
				r, _ := http.NewRequest("GET", "http://"+addr+path, nil)
				for k, v := range hdr {
					r.Header.Set(k, v)
				}
				resp, err := client.Do(r)
				if err != nil {
					transportErrs.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if e := transportErrs.Load(); e > 0 {
		t.Fatalf("%d of %d requests got no answer from the gateway", e, n)
	}
}

// flakyRegion is a stand-in upstream that answers like standin (labelled, JSON) and
// fails one request in failEvery with a 503 (every one at 1, none at 0).
type flakyRegion struct {
	addr      string
	failEvery atomic.Int64
	n         atomic.Int64
}

func startFlaky(t *testing.T, region string) *flakyRegion {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &flakyRegion{addr: ln.Addr().String()}
	body := []byte(`{"region":"` + region + `","items":[` + strings.Repeat(`{"id":1,"title":"an item of the feed"},`, 20) + `{}]}`)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(standin.RegionHeader, region)
		if every := f.failEvery.Load(); every > 0 && f.n.Add(1)%every == 0 {
			http.Error(w, "flaky "+region, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body) //nolint:errcheck
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return f
}

// startSilent listens on a loopback port, accepts connections and never answers.
func startSilent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// listedFleet is a fleet store that lists the instances the test sets.
type listedFleet struct {
	*fakeFleetStore
	mu      sync.Mutex
	members []store.Instance
}

func (l *listedFleet) Fleet() store.Fleet { return l }

func (l *listedFleet) set(m []store.Instance) {
	l.mu.Lock()
	l.members = m
	l.mu.Unlock()
}

func (l *listedFleet) Instances(context.Context) (store.FleetStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return store.FleetStatus{Store: "listed", Instances: append([]store.Instance(nil), l.members...)}, nil
}
