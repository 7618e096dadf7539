package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy"
)

// TestLimitVerbs drives `shiftgate limit` and `shiftgate budget` against a running
// gateway: caps set, lifted, cleared and ramped, a budget set and cleared, the tables
// and status lines, refusals on bad input, and the values surviving a restart.
func TestLimitVerbs(t *testing.T) {
	s := startServe(t)
	admin := "http://" + s.admin
	ok := func(want string, args ...string) string {
		t.Helper()
		code, out, errs := runCLI(args...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("%v: exit %d\n%s%s\nwant %q", args, code, out, errs, want)
		}
		return out
	}
	fails := func(wantCode int, want string, args ...string) {
		t.Helper()
		code, out, errs := runCLI(args...)
		if code != wantCode || !strings.Contains(errs, want) {
			t.Fatalf("%v: exit %d (want %d)\n%s%s\nwant %q", args, code, wantCode, out, errs, want)
		}
	}

	ok("limits: per instance", "limit", "-admin", admin)
	ok("site: off (file) -> 20000 rps (override)", "limit", "-admin", admin, "site", "20000")
	ok("route feed: off (file) -> 5000 rps (override), ramp 2m0s", "limit", "-admin", admin, "-ramp", "2m", "feed", "5000")
	out := ok("feed", "limit", "-admin", admin)
	if !strings.Contains(out, "site: 20000 rps (override, file off), enforced here 20000 rps") || !strings.Contains(out, "5000 rps  override") {
		t.Fatalf("limit table:\n%s", out)
	}
	ok("site: 20000 rps (override) -> off (override)", "limit", "-admin", admin, "site", "off")
	ok("site: off (override) -> off (file)", "limit", "-admin", admin, "-clear", "site")
	ok("site: off (file) -> 300 rps (override)", "limit", "-admin", admin, "site", "300")
	ok("note: budget idc->cloud binds the instances whose self_region is idc", "budget", "-admin", admin, "idc", "cloud", "800Mbit")
	ok("idc->cloud  800Mbit  override", "budget", "-admin", admin)
	ok("limits: per instance (no fleet store): this gateway enforces each cap whole; site cap 300 rps, 1 route cap(s), 1 byte budget(s)",
		"status", "-admin", admin)

	fails(2, "want requests per second above 0", "limit", "-admin", admin, "site", "fast")
	fails(2, "want requests per second above 0", "limit", "-admin", admin, "site", "0")
	fails(1, `no route "nope"`, "limit", "-admin", admin, "nope", "5")
	fails(2, "ramp: want a duration", "limit", "-admin", admin, "-ramp", "soon", "site", "5")
	fails(2, "no unit", "budget", "-admin", admin, "idc", "cloud", "800")
	fails(1, `no region "mars"`, "budget", "-admin", admin, "idc", "mars", "1Gbit")
	fails(2, "usage: shiftgate limit", "limit", "-admin", admin, "site")
	fails(1, "no override to clear", "budget", "-admin", admin, "-clear", "cloud", "idc")

	// The caps hold: the site cap of 300 rps refuses a burst beyond its 30 requests.
	c := &http.Client{Timeout: 2 * time.Second}
	refused := 0
	for i := 0; i < 200 && refused == 0; i++ {
		resp, err := c.Get("http://" + s.listen + "/api/feed")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 503 {
			refused++
			if resp.Header.Get("X-Shift-Shed") != "site" || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("refusal headers %v", resp.Header)
			}
		}
	}
	if refused == 0 {
		t.Fatal("200 requests at once passed a site cap of 300 rps")
	}

	// A restart serves the same levers, from state_dir.
	s.cancel()
	if err := <-s.done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // before startServe's cleanup, which waits for this serve to end
	done := make(chan error, 1)
	ready := make(chan *proxy.Server, 1)
	go func() { done <- serve(ctx, s.path, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not start again")
	}
	s.cancel, s.done = cancel, done
	code, out, _ := runCLI("limit", "-admin", admin, "-json")
	var l proxy.LimitsStatus
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil {
		t.Fatalf("limit -json: %d %s", code, out)
	}
	if l.Site.RPS != 300 || l.Site.Source != "override" || len(l.Budgets) != 1 || l.Budgets[0].Rate != "800Mbit" {
		t.Fatalf("after restart: site %+v budgets %+v", l.Site, l.Budgets)
	}
	for _, r := range l.Routes {
		if r.Name == "feed" && (r.RPS != 5000 || r.Override == nil || r.Override.Ramp != 2*time.Minute) {
			t.Fatalf("feed after restart: %+v", r)
		}
	}
	ok("budget idc->cloud: 800Mbit (override) -> off (file)", "budget", "-admin", admin, "-clear", "idc", "cloud")
	ok("route feed: 5000 rps (override) -> off (file)", "limit", "-admin", admin, "-clear", "feed", "site")
}
