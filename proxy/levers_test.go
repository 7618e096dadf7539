package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/proxy/shed"
)

// fakeClock is the Server's clock in these tests: it moves only when the test says,
// so token buckets refill exactly as much as the test wants.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// String returns everything logged so far.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// leverGateway is a Server on loopback with an injected clock, the state_dir file
// store and a log the test reads.
type leverGateway struct {
	srv  *Server
	addr string
	log  *syncBuffer
	dir  string
}

func startLeverGateway(t *testing.T, dir, yamlText string, vars map[string]string, clock *fakeClock) *leverGateway {
	t.Helper()
	text := strings.ReplaceAll(yamlText, "{{STATE}}", filepath.Join(dir, "state"))
	text = strings.ReplaceAll(text, "{{DIR}}", dir)
	for k, v := range vars {
		text = strings.ReplaceAll(text, "{{"+k+"}}", v)
	}
	path := filepath.Join(dir, "shiftgate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.LoadFile(path)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	st, err := store.NewFile(cfg.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	srv, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(buf, nil)), Store: st, Now: clock.now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck
	g := &leverGateway{srv: srv, addr: ln.Addr().String(), log: buf, dir: dir}
	t.Cleanup(func() { srv.Shutdown(5 * time.Second) })
	return g
}

// conn is one keep-alive client connection: requests go one after another on it, so
// a refusal that closed it would show.
type conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialConn(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &conn{t: t, c: c, br: bufio.NewReader(c)}
}

// get sends GET path and returns the response with its body read.
func (k *conn) get(path string) (*http.Response, string) {
	k.t.Helper()
	k.c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\nHost: gw\r\nX-User-Id: u-1001\r\n\r\n", path)
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		k.t.Fatalf("GET %s: %v (a refusal must not drop the connection)", path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Close {
		k.t.Fatalf("GET %s: %d closes the connection", path, resp.StatusCode)
	}
	return resp, string(b)
}

// shedBy returns the X-Shift-Shed of a response and checks the refusal's form.
func shedBy(t *testing.T, resp *http.Response) string {
	t.Helper()
	why := resp.Header.Get("X-Shift-Shed")
	if why == "" {
		if resp.StatusCode != 200 {
			t.Fatalf("status %d without X-Shift-Shed", resp.StatusCode)
		}
		return ""
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("refusal %q: status %d, Retry-After %q; want 503 with Retry-After", why, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Every answer names the region the request was decided for, a refusal too.
	if r := resp.Header.Get("X-Shift-Region"); r != "idc" && r != "cloud" {
		t.Fatalf("refusal %q without X-Shift-Region (%q)", why, r)
	}
	return why
}

const priorityConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
access_log: { path: {{DIR}}/access.log }
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
limits: { site_rps: 100 }
routes:
  - name: login
    match: { path_prefix: /login }
    priority: critical
  - name: feed
    match: { path_prefix: /api/feed }
    limit_rps: 1000
  - name: prefetch
    match: { path_prefix: /prefetch }
    priority: low
  - name: default
    match: { path_prefix: / }
`

func twoStandins(t *testing.T, opt standin.Options) (map[string]string, *standin.Server, *standin.Server) {
	t.Helper()
	idc, err := standin.Start("idc", "127.0.0.1:0", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idc.Close() })
	cloud, err := standin.Start("cloud", "127.0.0.1:0", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cloud.Close() })
	return map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr}, idc, cloud
}

// TestPriorityShedsLowThenNormalThenCritical drives the site cap with the clock
// stopped, so no token comes back: as the bucket drains, low requests are refused
// first, then normal ones, critical ones last. Refusals are 503 with Retry-After and
// X-Shift-Shed: site on a connection that stays open, counted by route and reason in
// /v1/limits, status, the metrics and the access log.
func TestPriorityShedsLowThenNormalThenCritical(t *testing.T) {
	vars, _, _ := twoStandins(t, standin.Options{})
	clock := newFakeClock()
	g := startLeverGateway(t, t.TempDir(), priorityConfig, vars, clock)
	k := dialConn(t, g.addr)

	// until sends path until it is refused and returns how many got through.
	until := func(path string) int {
		for n := 0; n < 100; n++ {
			if resp, _ := k.get(path); shedBy(t, resp) != "" {
				if why := shedBy(t, resp); why != "site" {
					t.Fatalf("%s refused by %q, want site", path, why)
				}
				return n
			}
		}
		t.Fatalf("%s never refused under a site cap of 100 rps with the clock stopped", path)
		return 0
	}
	admitted := func(path string) bool {
		resp, _ := k.get(path)
		return shedBy(t, resp) == ""
	}
	low := until("/prefetch")
	if !admitted("/api/feed") || !admitted("/login") {
		t.Fatal("normal or critical refused when low was first refused")
	}
	normal := until("/api/feed")
	if admitted("/prefetch") || !admitted("/login") {
		t.Fatal("once normal is refused, low must stay refused and critical go on")
	}
	critical := until("/login")
	if admitted("/prefetch") || admitted("/api/feed") {
		t.Fatal("everything must be refused once critical is")
	}
	t.Logf("site cap 100 rps (burst %d), clock stopped: low admitted %d, then normal %d more (+1 probe), then critical %d more (+2 probes)",
		shed.MinCapBurst, low, normal, critical)
	// Floors of the burst: low stops at half of it, normal at a fifth, critical at 0.
	if want := int(shed.MinCapBurst * (1 - shed.LowFloor)); low != want {
		t.Errorf("low admitted %d before its floor, want %d", low, want)
	}

	lim := g.srv.Limits()
	if lim.Scope != "instance" || lim.Site.RPS != 100 || lim.Site.Source != "file" || lim.Site.EnforcedRPS != 100 {
		t.Fatalf("limits: %+v", lim.Site)
	}
	byName := map[string]RouteLimitStatus{}
	for _, r := range lim.Routes {
		byName[r.Name] = r
	}
	if r := byName["prefetch"]; r.Priority != "low" || r.Refused.Site < 2 {
		t.Fatalf("prefetch: %+v", r)
	}
	if r := byName["login"]; r.Priority != "critical" || r.Refused.Site != 1 {
		t.Fatalf("login: %+v", r)
	}
	if r := byName["feed"]; r.RPS != 1000 || r.Refused.Route != 0 || r.Refused.Site < 2 {
		t.Fatalf("feed: %+v", r)
	}
	st := g.srv.Status()
	if st.Limits.Scope != "instance" || st.Limits.SiteRPS != 100 || st.Limits.Refused.Site == 0 {
		t.Fatalf("status limits: %+v", st.Limits)
	}
	var m strings.Builder
	g.srv.WriteMetrics(&m)
	if !strings.Contains(m.String(), fmt.Sprintf(`shiftgate_shed_total{route="prefetch",reason="site"} %d`, byName["prefetch"].Refused.Site)) {
		t.Fatalf("metrics lack the prefetch refusals:\n%s", grepLines(m.String(), "shed"))
	}
	waitFor(t, "the access log to record the refusals", func() bool {
		b, _ := os.ReadFile(filepath.Join(g.dir, "access.log"))
		return strings.Contains(string(b), `"route":"prefetch"`) && strings.Contains(string(b), `"status":503`) &&
			strings.Contains(string(b), `"shed":"site"`)
	})

	// A second later the bucket is full again.
	clock.add(time.Second)
	if !admitted("/prefetch") {
		t.Fatal("a second later, low requests must be admitted again")
	}
}

// TestLimitsControlAPI changes caps through the control API: a route cap refuses with
// X-Shift-Shed: route; off lifts the file's cap; clear brings it back; changes are
// audited; bad requests are refused with the right status and change nothing.
func TestLimitsControlAPI(t *testing.T) {
	vars, _, _ := twoStandins(t, standin.Options{})
	clock := newFakeClock()
	g := startLeverGateway(t, t.TempDir(), priorityConfig, vars, clock)
	ctx := context.Background()
	k := dialConn(t, g.addr)

	// The site cap lifted by an override, so that the route's own cap is what
	// refuses (the burst of either is 10 requests).
	if _, err := g.srv.ChangeLimits(ctx, "ops", LimitsRequest{Site: &LimitChange{Off: true}}); err != nil {
		t.Fatal(err)
	}
	res, err := g.srv.ChangeLimits(ctx, "ops", LimitsRequest{Routes: map[string]LimitChange{"feed": {RPS: "20"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 1 || res.Changes[0].Before != "1000 rps (file)" || res.Changes[0].After != "20 rps (override)" || res.Scope != "instance" {
		t.Fatalf("result %+v", res)
	}
	refusedBy := ""
	for i := 0; i < 50 && refusedBy == ""; i++ {
		resp, _ := k.get("/api/feed")
		refusedBy = shedBy(t, resp)
	}
	if refusedBy != "route" {
		t.Fatalf("feed capped at 20 rps with the clock stopped: refused by %q, want route", refusedBy)
	}
	if !strings.Contains(g.log.String(), "what=limit lever=\"route feed\"") || !strings.Contains(g.log.String(), "who=ops") {
		t.Fatalf("no audit line:\n%s", g.log.String())
	}

	// With the site cap lifted there is no site refusal, whatever the file says.
	for i := 0; i < 30; i++ {
		if resp, _ := k.get("/prefetch"); shedBy(t, resp) != "" {
			t.Fatalf("request %d refused with the site cap off", i)
		}
	}
	if l := g.srv.Limits(); l.Site.RPS != 0 || l.Site.Source != "override" || l.Site.FileRPS != 100 || l.Site.Override == nil {
		t.Fatalf("site after off: %+v", l.Site)
	}
	// Cleared: the file's 100 rps is back.
	if _, err := g.srv.ChangeLimits(ctx, "ops", LimitsRequest{Site: &LimitChange{Clear: true}}); err != nil {
		t.Fatal(err)
	}
	if l := g.srv.Limits(); l.Site.RPS != 100 || l.Site.Source != "file" || l.Site.EnforcedRPS != 100 {
		t.Fatalf("site after clear: %+v", l.Site)
	}

	for _, c := range []struct {
		name   string
		req    LimitsRequest
		status int
	}{
		{"nothing", LimitsRequest{}, 400},
		{"unknown route", LimitsRequest{Routes: map[string]LimitChange{"nope": {RPS: "5"}}}, 404},
		{"rps and off", LimitsRequest{Site: &LimitChange{RPS: "5", Off: true}}, 400},
		{"zero rps", LimitsRequest{Site: &LimitChange{RPS: "0"}}, 400},
		{"negative", LimitsRequest{Site: &LimitChange{RPS: "-3"}}, 400},
		{"huge", LimitsRequest{Site: &LimitChange{RPS: "1e12"}}, 400},
		{"bad ramp", LimitsRequest{Site: &LimitChange{RPS: "5", Ramp: "soon"}}, 400},
		{"clear nothing", LimitsRequest{Site: &LimitChange{Clear: true}}, 404},
		{"budget unknown region", LimitsRequest{Budgets: []BudgetChange{{From: "idc", To: "mars", Rate: "1Mbit"}}}, 404},
		{"budget same region", LimitsRequest{Budgets: []BudgetChange{{From: "idc", To: "idc", Rate: "1Mbit"}}}, 400},
		{"budget bad rate", LimitsRequest{Budgets: []BudgetChange{{From: "idc", To: "cloud", Rate: "800"}}}, 400},
		{"one bad of two", LimitsRequest{Site: &LimitChange{RPS: "7"}, Routes: map[string]LimitChange{"nope": {RPS: "5"}}}, 404},
	} {
		before := g.srv.Overrides().Revision
		_, err := g.srv.ChangeLimits(ctx, "ops", c.req)
		var e *Error
		if !errors.As(err, &e) || e.Status != c.status {
			t.Errorf("%s: error %v, want status %d", c.name, err, c.status)
		}
		if g.srv.Overrides().Revision != before {
			t.Errorf("%s: a refused change changed the overrides", c.name)
		}
	}
}

// TestLimitsRamp raises, lowers and lifts the site cap with ramps, on the injected
// clock: a raise climbs linearly, a lowering applies at once, a lift climbs and then
// turns the cap off.
func TestLimitsRamp(t *testing.T) {
	vars, _, _ := twoStandins(t, standin.Options{})
	clock := newFakeClock()
	g := startLeverGateway(t, t.TempDir(), priorityConfig, vars, clock)
	ctx := context.Background()
	site := func() CapStatus { return g.srv.Limits().Site }

	if _, err := g.srv.ChangeLimits(ctx, "ops", LimitsRequest{Site: &LimitChange{RPS: "1100", Ramp: "10s"}}); err != nil {
		t.Fatal(err)
	}
	if s := site(); s.RPS != 1100 || s.EnforcedRPS != 100 || !s.Ramping {
		t.Fatalf("raise with a ramp, at its start: %+v", s)
	}
	clock.add(5 * time.Second)
	if s := site(); math.Abs(s.EnforcedRPS-600) > 10 || !s.Ramping {
		t.Fatalf("half way through the ramp: %+v, want about 600", s)
	}
	clock.add(5 * time.Second)
	if s := site(); s.EnforcedRPS != 1100 || s.Ramping {
		t.Fatalf("after the ramp: %+v", s)
	}
	// Lowering is an emergency: at once, ramp or not.
	if _, err := g.srv.ChangeLimits(ctx, "ops", LimitsRequest{Site: &LimitChange{RPS: "50", Ramp: "10s"}}); err != nil {
		t.Fatal(err)
	}
	if s := site(); s.EnforcedRPS != 50 || s.Ramping {
		t.Fatalf("lowered: %+v", s)
	}
	// Lifted with a ramp: it climbs, then there is no cap.
	if _, err := g.srv.ChangeLimits(ctx, "ops", LimitsRequest{Site: &LimitChange{Off: true, Ramp: "4s"}}); err != nil {
		t.Fatal(err)
	}
	if s := site(); s.EnforcedRPS != 50 || !s.Ramping {
		t.Fatalf("lift at its start: %+v", s)
	}
	clock.add(2 * time.Second)
	mid := site()
	if mid.EnforcedRPS <= 50 || !mid.Ramping {
		t.Fatalf("lift half way: %+v", mid)
	}
	clock.add(3 * time.Second)
	if s := site(); s.EnforcedRPS != 0 || s.Ramping {
		t.Fatalf("lift done: %+v, want no cap", s)
	}
	k := dialConn(t, g.addr)
	for i := 0; i < 40; i++ {
		if resp, _ := k.get("/prefetch"); shedBy(t, resp) != "" {
			t.Fatalf("request %d refused after the lift", i)
		}
	}
	t.Logf("ramp: 100 -> 1100 rps over 10s read 600 at 5s; lift from 50 over 4s read %.0f at 2s, off at 5s", mid.EnforcedRPS)
}

// TestLimitsPersistAcrossRestart: caps and budgets set at run time are in the
// state_dir store, and a restarted gateway serves them.
func TestLimitsPersistAcrossRestart(t *testing.T) {
	vars, _, _ := twoStandins(t, standin.Options{})
	dir := t.TempDir()
	clock := newFakeClock()
	cfg := "self_region: idc\n" + priorityConfig
	g := startLeverGateway(t, dir, cfg, vars, clock)
	_, err := g.srv.ChangeLimits(context.Background(), "ops", LimitsRequest{
		Site:    &LimitChange{RPS: "42"},
		Routes:  map[string]LimitChange{"login": {RPS: "7"}},
		Budgets: []BudgetChange{{From: "idc", To: "cloud", Rate: "1Mbit"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	g2 := startLeverGateway(t, dir, cfg, vars, clock)
	l := g2.srv.Limits()
	if l.Site.RPS != 42 || l.Site.Source != "override" || l.Site.Override.Who != "ops" || l.Site.EnforcedRPS != 42 {
		t.Fatalf("site after restart: %+v", l.Site)
	}
	var login RouteLimitStatus
	for _, r := range l.Routes {
		if r.Name == "login" {
			login = r
		}
	}
	if login.RPS != 7 || login.Source != "override" || login.EnforcedRPS != 7 {
		t.Fatalf("login after restart: %+v", login)
	}
	if len(l.Budgets) != 1 || l.Budgets[0].Rate != "1Mbit" || l.Budgets[0].Source != "override" || !l.Budgets[0].Binds ||
		l.Budgets[0].EnforcedBytesPerSec != 125000 {
		t.Fatalf("budgets after restart: %+v", l.Budgets)
	}
	b, _ := json.Marshal(l)
	t.Logf("/v1/limits after restart: %s", b)
}

// TestLimitRampResumesAfterRestart: a gateway that restarts while a cap or a budget
// ramps up (or a lifted cap climbs) resumes the ramp where it has got to, instead of
// applying the new rate at once: the jump the operator's ramp was there to prevent.
func TestLimitRampResumesAfterRestart(t *testing.T) {
	vars, _, _ := twoStandins(t, standin.Options{})
	dir := t.TempDir()
	clock := newFakeClock()
	cfg := "self_region: idc\n" + priorityConfig
	g := startLeverGateway(t, dir, cfg, vars, clock)
	ctx := context.Background()
	if _, err := g.srv.ChangeLimits(ctx, "ops", LimitsRequest{Budgets: []BudgetChange{{From: "idc", To: "cloud", Rate: "1Mbit"}}}); err != nil {
		t.Fatal(err)
	}
	_, err := g.srv.ChangeLimits(ctx, "ops", LimitsRequest{
		Site:    &LimitChange{RPS: "1100", Ramp: "10m"},                   // 100 (file) -> 1100
		Routes:  map[string]LimitChange{"feed": {Off: true, Ramp: "10m"}}, // 1000 (file), lifted: climbs to 2000
		Budgets: []BudgetChange{{From: "idc", To: "cloud", Rate: "11Mbit", Ramp: "10m"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if l := g.srv.Limits(); l.Site.Override == nil || l.Site.Override.From != 100 {
		t.Fatalf("the site override does not record the rate it ramps from: %+v", l.Site.Override)
	}
	clock.add(5 * time.Minute)
	if err := g.srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	g2 := startLeverGateway(t, dir, cfg, vars, clock)
	check := func(when string, site, feed, budget float64, ramping bool) {
		t.Helper()
		l := g2.srv.Limits()
		if math.Abs(l.Site.EnforcedRPS-site) > 1 || l.Site.Ramping != ramping {
			t.Errorf("%s: site enforces %v (ramping %v), want %v (%v)", when, l.Site.EnforcedRPS, l.Site.Ramping, site, ramping)
		}
		for _, r := range l.Routes {
			if r.Name == "feed" && (math.Abs(r.EnforcedRPS-feed) > 1 || r.Ramping != ramping) {
				t.Errorf("%s: feed enforces %v (ramping %v), want %v (%v)", when, r.EnforcedRPS, r.Ramping, feed, ramping)
			}
		}
		if len(l.Budgets) != 1 || math.Abs(l.Budgets[0].EnforcedBytesPerSec-budget) > 1 || l.Budgets[0].Ramping != ramping {
			t.Errorf("%s: budgets %+v, want %v bytes/s (ramping %v)", when, l.Budgets, budget, ramping)
		}
	}
	// Halfway through each ramp.
	check("restarted halfway", 600, 1500, (125000+1375000)/2, true)
	clock.add(6 * time.Minute)
	if _, err := g2.srv.ChangeLimits(ctx, "ops", LimitsRequest{Routes: map[string]LimitChange{"login": {RPS: "50"}}}); err != nil {
		t.Fatal(err) // any change rebinds the gate: the ramps have ended by now
	}
	check("after the ramps", 1100, 0, 1375000, false)
}

const budgetConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
self_region: idc
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
budgets:
  - { from: idc, to: cloud, rate: 80kbit }
routes:
  - name: bulk
    match: { path_prefix: /bulk }
    percent: 100
    priority: low
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 100
    fallback: { cache: { ttl: 10m } }
  - name: api
    match: { path_prefix: /api }
    percent: 100
  - name: paced
    match: { path_prefix: /paced }
    percent: 100
    budget_mode: pace
  - name: login
    match: { path_prefix: /login }
    percent: 100
    priority: critical
  - name: default
    match: { path_prefix: / }
`

// TestBudgetShedOrder drives a byte budget of 10 kB/s across idc -> cloud with the
// clock stopped: low routes are shed first, then reads with a cached fallback are
// answered from it, then the rest are refused (or paced, for a route that asks), and
// critical routes last.
func TestBudgetShedOrder(t *testing.T) {
	vars, idc, _ := twoStandins(t, standin.Options{BodySize: 1000})
	clock := newFakeClock()
	g := startLeverGateway(t, t.TempDir(), budgetConfig, vars, clock)
	k := dialConn(t, g.addr)
	until := func(path string) int {
		for n := 0; n < 50; n++ {
			resp, _ := k.get(path)
			if why := shedBy(t, resp); why != "" {
				if why != "budget" {
					t.Fatalf("%s refused by %q", path, why)
				}
				return n
			}
			if resp.Header.Get("X-Shift-Region") != "cloud" {
				t.Fatalf("%s served by %q, want cloud (across the budget)", path, resp.Header.Get("X-Shift-Region"))
			}
		}
		t.Fatalf("%s never refused", path)
		return 0
	}
	level := func() float64 { return g.srv.Limits().Budgets[0].Level }

	bulk := until("/bulk")
	resp, _ := k.get("/api/feed?page=1") // caches the page
	if shedBy(t, resp) != "" || resp.Header.Get("X-Shift-Fallback") != "" {
		t.Fatalf("feed refused or a fallback at level %.2f, after low was shed", level())
	}
	api := until("/api/other")
	resp, body := k.get("/api/feed?page=1")
	if resp.StatusCode != 200 || resp.Header.Get("X-Shift-Fallback") != "cache" || len(body) != 1000 {
		t.Fatalf("feed over budget: status %d fallback %q, want the cached page", resp.StatusCode, resp.Header.Get("X-Shift-Fallback"))
	}
	resp, _ = k.get("/api/feed?page=2")
	if shedBy(t, resp) != "budget" {
		t.Fatal("a read whose fallback misses must be refused over budget")
	}
	login := until("/login")
	before := idc.Requests()
	resp, _ = k.get("/paced")
	if resp.StatusCode != 200 || resp.Header.Get("X-Shift-Shed") != "" {
		t.Fatalf("a paced route is held back, not refused: %d %q", resp.StatusCode, resp.Header.Get("X-Shift-Shed"))
	}
	if idc.Requests() != before {
		t.Fatal("nothing may go to the local region")
	}
	l := g.srv.Limits()
	byName := map[string]RouteLimitStatus{}
	for _, r := range l.Routes {
		byName[r.Name] = r
	}
	if byName["feed"].Fallback != 1 || byName["feed"].Refused.Budget != 1 || byName["paced"].Paced != 1 || byName["bulk"].Refused.Budget != 1 {
		t.Fatalf("counters: feed %+v paced %+v bulk %+v", byName["feed"], byName["paced"], byName["bulk"])
	}
	if len(l.CrossRegion) != 1 || l.CrossRegion[0].From != "idc" || l.CrossRegion[0].To != "cloud" {
		t.Fatalf("cross region: %+v", l.CrossRegion)
	}
	t.Logf("budget 10 kB/s, clock stopped, ~1.1 kB a response: low crossed %d times, then normal %d more, then critical %d more; level %.2f; %d bytes crossed",
		bulk, api, login, l.Budgets[0].Level, l.CrossRegion[0].Bytes)

	clock.add(2 * time.Second)
	if resp, _ := k.get("/bulk"); shedBy(t, resp) != "" {
		t.Fatal("two seconds later the budget must let low routes cross again")
	}
}
