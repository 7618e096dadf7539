package admin

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy"
)

const testToken = "s3cret-token-for-tests"

// newTestServer builds a server (not serving traffic) from a two-route config with an
// admin token, and returns its admin handler.
func newTestServer(t testing.TB) (*proxy.Server, http.Handler) {
	t.Helper()
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(testToken), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := `listen: 127.0.0.1:0
admin: { listen: "127.0.0.1:0", token_file: "` + tok + `" }
state_dir: ` + filepath.Join(dir, "state") + `
regions:
  idc:   { upstreams: ["127.0.0.1:1"] }
  cloud: { upstreams: ["127.0.0.1:2"] }
split: { from: idc, to: cloud, salt: s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 25
  - name: default
    match: { path_prefix: / }
    percent: 0
`
	path := filepath.Join(dir, "shiftgate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, proxy.Options{NoFallbackStore: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(time.Second) }) //nolint:errcheck
	return srv, Handler(srv)
}

func do(h http.Handler, method, target, token string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.Host = "127.0.0.1:9090"
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestDashboardGuard serves the page and its static files without the token (they hold
// nothing of the gateway) under a strict CSP, and every piece of data only with it;
// a foreign Host is refused for the page too.
func TestDashboardGuard(t *testing.T) {
	_, h := newTestServer(t)
	cases := []struct {
		path, token string
		code        int
		inBody      string
		csp         bool
	}{
		{"/dashboard", "", 200, `data-token-required="true"`, true},
		{"/dashboard/", "", 200, `<template id="route-tpl">`, true},
		{"/dashboard/assets/dashboard.js", "", 200, "TOKEN_KEY", true},
		{"/dashboard/assets/dashboard.css", "", 200, "--moved", true},
		{"/dashboard/assets/vendor/uplot/uPlot.iife.min.js", "", 200, "uPlot", true},
		{"/dashboard/assets/vendor/uplot/LICENSE", "", 200, "MIT", true},
		{"/dashboard/assets/", "", 404, "", true},
		{"/dashboard/assets/vendor/", "", 404, "", true},
		{"/dashboard/assets/nope.js", "", 404, "", true},
		{"/dashboard/other", "", 401, "bearer token", false},
		{"/v1/dashboard", "", 401, "bearer token", false},
		{"/v1/events", "", 401, "bearer token", false},
		{"/v1/stats", "", 401, "bearer token", false},
		{"/v1/dashboard", testToken, 200, `"poll_ms"`, false},
		{"/v1/events", testToken, 200, `"kind": "start"`, false},
		{"/v1/events?since=1", testToken, 200, `"events": []`, false},
		{"/v1/events?since=-1", testToken, 400, "since", false},
	}
	for _, c := range cases {
		w := do(h, "GET", c.path, c.token)
		if w.Code != c.code || !strings.Contains(w.Body.String(), c.inBody) {
			t.Errorf("GET %s (token %q): %d %.200s; want %d with %q", c.path, c.token, w.Code, w.Body.String(), c.code, c.inBody)
		}
		if csp := w.Header().Get("Content-Security-Policy"); c.csp != (csp != "") || c.csp && !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: CSP %q", c.path, csp)
		}
	}
	// A page fetched through a DNS name that resolves to the listener is refused.
	r := httptest.NewRequest("GET", "/dashboard", nil)
	r.Host = "evil.example:9090"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d", w.Code)
	}
	// Writes stay behind the token and the JSON rule, whatever the path.
	if w := do(h, "POST", "/dashboard", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("POST /dashboard without the token: %d", w.Code)
	}
}

// TestDashboardInfo reports the optional endpoints this gateway has: stats on, ramp
// plans, no fleet store (the state_dir file).
func TestDashboardInfo(t *testing.T) {
	_, h := newTestServer(t)
	w := do(h, "GET", "/v1/dashboard", testToken)
	var info DashboardInfo
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil {
		t.Fatal(err)
	}
	want := DashboardInfo{PollMs: 1500, Features: DashboardFeatures{Plans: true, Stats: true}}
	if info != want {
		t.Errorf("got %+v, want %+v", info, want)
	}
}

// TestEventsSince lists the events after a sequence number, in order.
func TestEventsSince(t *testing.T) {
	srv, h := newTestServer(t)
	for _, p := range []string{"30", "40"} {
		if _, err := srv.ChangeSplits(t.Context(), "tester", proxy.BulkSplitRequest{
			Routes: map[string]proxy.SplitRequest{"feed": {Percent: json.Number(p)}}}); err != nil {
			t.Fatal(err)
		}
	}
	var body EventsBody
	w := do(h, "GET", "/v1/events?since=1", testToken)
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range body.Events {
		got = append(got, e.Kind+" "+e.Route+" "+e.Detail+" "+e.Who)
	}
	want := []string{"split feed 25/25 -> 30/25 tester", "split feed 30/25 -> 40/25 tester"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events since 1: %q, want %q", got, want)
	}
}

// FuzzEventsQuery: any query answers 200 or 400, never fails otherwise.
func FuzzEventsQuery(f *testing.F) {
	for _, s := range []string{"since=0", "since=18446744073709551615", "since=18446744073709551616", "since=x", "since=", "since=1&since=2", "%zz"} {
		f.Add(s)
	}
	_, h := newTestServer(f)
	f.Fuzz(func(t *testing.T, q string) {
		r := httptest.NewRequest("GET", "/v1/events", nil)
		r.URL.RawQuery = q
		r.Host = "127.0.0.1"
		r.Header.Set("Authorization", "Bearer "+testToken)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 && w.Code != 400 {
			t.Fatalf("%q: %d %s", q, w.Code, w.Body)
		}
		if w.Code == 200 && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%q: invalid JSON %s", q, w.Body)
		}
	})
}
