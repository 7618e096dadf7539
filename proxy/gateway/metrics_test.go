package gateway

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMetricsPassPromtool runs `promtool check metrics` (Debian package prometheus)
// on a live gateway's /metrics after some traffic, a breaker trip and a refused
// reload. Without promtool the test skips, except in CI (CI=true), where it fails.
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found: apt-get install -y prometheus")
		}
		t.Skip("promtool not found (apt-get install -y prometheus)")
	}
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	cfg := strings.Replace(twoRegions, "    write_percent: 5\n",
		"    write_percent: 5\n    fallback: { cache: { ttl: 1m } }\n    breaker: { min_requests: 2, failure_ratio: 0.5 }\n", 1)
	g := startLive(t, cfg, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	for i := 0; i < 20; i++ {
		if i == 10 {
			cloud.Close() // failures, a breaker trip, fallbacks
		}
		req, _ := http.NewRequest("GET", "http://"+g.addr+"/api/feed", nil)
		req.Header.Set("X-User-Id", "u-qa-1") // bucket 900: cloud at 25 %
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	replaceFile(t, g.path, []byte("percent: [\n")) // a refused reload
	waitForCond(t, 5*time.Second, "the refused reload to be counted", func() bool {
		return counterValue(g.srv, "shiftgate_config_reload_errors_total") == 1
	})

	resp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	for _, want := range []string{"# HELP shiftgate_requests_total ", "# TYPE shiftgate_upstream_duration_seconds histogram",
		`shiftgate_breaker_transitions_total{route="feed",region="cloud",from="closed",to="open"} 1`} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = &body
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// waitFor polls cond until it holds or d has passed.
func waitForCond(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
