package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/shiftgate/shiftgate/proxy/stats"
	"github.com/shiftgate/shiftgate/routing"
)

// TestStatsCohorts sends users through a 25 % route and finds each of them in the
// cohort the split contract puts them in: /v1/stats counts moved users served by the
// cloud and stayed users served by idc, and lists where the stayed ones came from.
func TestStatsCohorts(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	g := startLive(t, twoRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	const users = 400
	wantMoved := 0
	for u := 0; u < users; u++ {
		key := fmt.Sprintf("u-%d", u)
		if routing.Bucket("cutover-2026", key) < 2500 {
			wantMoved++
		}
		req, _ := http.NewRequest("GET", "http://"+g.addr+"/api/feed", nil)
		req.Header.Set("X-User-Id", key)
		req.Header.Set("User-Agent", "curl/8.5.0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	code, body := g.call(t, "GET", "/v1/stats?route=feed", "")
	if code != 200 {
		t.Fatalf("/v1/stats: %d %s", code, body)
	}
	var snap stats.Snapshot
	if err := json.Unmarshal([]byte(body), &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Routes) != 1 {
		t.Fatalf("routes: %+v", snap.Routes)
	}
	r := snap.Routes[0]
	moved, stayed := r.Cohorts.Moved.Requests, r.Cohorts.Stayed.Requests
	if int(moved) != wantMoved || int(stayed) != users-wantMoved || r.Requests != users {
		t.Errorf("moved %d stayed %d (total %d); want %d and %d of %d", moved, stayed, r.Requests, wantMoved, users-wantMoved, users)
	}
	if r.Regions["cloud"].Requests != moved || r.Regions["idc"].Requests != stayed {
		t.Errorf("per region: %+v", r.Regions)
	}
	if r.Cohorts.Moved.Errors != 0 || r.Cohorts.Stayed.Errors != 0 {
		t.Errorf("errors: moved %d stayed %d", r.Cohorts.Moved.Errors, r.Cohorts.Stayed.Errors)
	}
	// Every stayed request came from 127.0.0.0/24 with a user key and curl.
	found := false
	for _, s := range r.TopSources {
		if strings.HasPrefix(s.Source, "127.0.0.0/24 hdr curl") && s.Count > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("top sources lack the stayed users' source: %+v", r.TopSources)
	}
	// Without a fleet store, fleet=1 is this instance alone, named in instances[].
	code, body = g.call(t, "GET", "/v1/stats?route=feed&fleet=1", "")
	var fleet stats.Snapshot
	if code != 200 || json.Unmarshal([]byte(body), &fleet) != nil || len(fleet.Instances) != 1 || len(fleet.Missing) != 0 ||
		len(fleet.Routes) != 1 || fleet.Routes[0].Requests != users {
		t.Errorf("fleet=1 without a fleet: %d %s", code, body)
	}
	// The fleet view names instances[] and missing[], empty or not; one instance's
	// view names neither.
	var raw map[string]json.RawMessage
	if json.Unmarshal([]byte(body), &raw) != nil || string(raw["missing"]) != "[]" || raw["instances"] == nil {
		t.Errorf("fleet=1 answer without instances[] or an empty missing[]: %s", body)
	}
	_, body = g.call(t, "GET", "/v1/stats?route=feed", "")
	raw = nil
	if json.Unmarshal([]byte(body), &raw) != nil || raw["missing"] != nil || raw["instances"] != nil {
		t.Errorf("one instance's answer names instances or missing: %.300s", body)
	}
	if code, body := g.call(t, "GET", "/v1/stats?route=nope", ""); code != 404 || !strings.Contains(body, "no route") {
		t.Errorf("unknown route: %d %s", code, body)
	}
	if code, body := g.call(t, "GET", "/v1/stats?history=forever", ""); code != 400 {
		t.Errorf("bad history: %d %s", code, body)
	}
}

// TestStatsOff: with stats off the gateway serves as usual and /v1/stats says why it
// has nothing.
func TestStatsOff(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	g := startLive(t, "stats: { off: true }\n"+twoRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	for u := 0; u < 20; u++ {
		req, _ := http.NewRequest("GET", "http://"+g.addr+"/api/feed", nil)
		req.Header.Set("X-User-Id", fmt.Sprintf("u-%d", u))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", u, resp.StatusCode)
		}
	}
	if code, body := g.call(t, "GET", "/v1/stats", ""); code != 404 || !strings.Contains(body, "stats are off") {
		t.Errorf("/v1/stats with stats off: %d %s", code, body)
	}
}
