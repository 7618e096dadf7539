package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

// syncBuffer is a log sink tests read while the server writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log lines whose fields include every key=value of want.
func (s *syncBuffer) lines(want map[string]any) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		match := true
		for k, v := range want {
			if m[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

// controlServer is a Server of twoRegions (feed 25/5) with a settable clock and a
// JSON log the test reads; it serves no listener.
func controlServer(t *testing.T, text string) (*Server, *syncBuffer, func(time.Duration)) {
	t.Helper()
	cfg, err := conf.Parse("", []byte(strings.ReplaceAll(text, "{{STATE}}", t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 4, 0, 0, 0, time.UTC)
	logs := &syncBuffer{}
	srv, err := New(cfg, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), NoFallbackStore: true,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(time.Second) })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	return srv, logs, advance
}

func routeStatus(t *testing.T, s *Server, name string) RouteStatus {
	t.Helper()
	for _, r := range s.Status().Routes {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no route %s in status", name)
	return RouteStatus{}
}

func twoRegionsText() string {
	return strings.NewReplacer("{{IDC}}", "127.0.0.1:1", "{{CLOUD}}", "127.0.0.1:2").Replace(twoRegions)
}

// TestConfigVersionMovesOnConfigOnly: split and rollback changes and the steps of a
// rollback ramp leave the config version alone; a new config file moves it.
func TestConfigVersionMovesOnConfigOnly(t *testing.T) {
	srv, _, advance := controlServer(t, twoRegionsText())
	ctx := context.Background()
	v := srv.Status().Version
	if _, err := srv.ChangeSplits(ctx, "test", BulkSplitRequest{Routes: map[string]SplitRequest{"feed": {Percent: "40"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SetRollback(ctx, "test", RollbackRequest{On: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.SetRollback(ctx, "test", RollbackRequest{On: false, Ramp: "10m"}); err != nil {
		t.Fatal(err)
	}
	before := routeStatus(t, srv, "feed").Effective
	advance(5 * time.Minute)
	srv.rampStep()
	mid := routeStatus(t, srv, "feed").Effective
	advance(time.Minute)
	srv.rampStep()
	if after := routeStatus(t, srv, "feed").Effective; !(before < mid && mid < after && after < 40) {
		t.Fatalf("ramp did not step: %v -> %v -> %v", before, mid, after)
	}
	if got := srv.Status().Version; got != v {
		t.Fatalf("config version %d after split, rollback and ramp steps, want %d (unchanged)", got, v)
	}
	cfg, err := conf.Parse("", []byte(strings.Replace(strings.ReplaceAll(twoRegionsText(), "{{STATE}}", t.TempDir()), "percent: 0", "percent: 1", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := srv.Status().Version; got != v+1 {
		t.Errorf("config version %d after a new file, want %d", got, v+1)
	}
}

// TestStatusSource: status names, per route, the file's split, the override and
// which of them is in force; a reload whose file split an override shadows says so
// in the log.
func TestStatusSource(t *testing.T) {
	srv, logs, _ := controlServer(t, twoRegionsText())
	ctx := context.Background()
	if r := routeStatus(t, srv, "feed"); r.Source != "file" || r.Override != nil || r.Percent != 25 || r.WritePercent != 5 {
		t.Fatalf("before any override: %+v", r)
	}
	if _, err := srv.ChangeSplits(ctx, "test", BulkSplitRequest{Routes: map[string]SplitRequest{"feed": {Percent: "40"}}}); err != nil {
		t.Fatal(err)
	}
	r := routeStatus(t, srv, "feed")
	if r.Source != "override" || r.Override == nil || r.Percent != 40 || r.WritePercent != 5 || r.FilePercent != 25 || r.FileWritePercent != 5 {
		t.Fatalf("with an override: %+v", r)
	}
	if b, _ := json.Marshal(srv.Status()); !strings.Contains(string(b), `"source":"override"`) || !strings.Contains(string(b), `"version":"`) {
		t.Errorf("status JSON lacks source or version: %s", b)
	}
	// The file moves feed to 30 %: the override keeps 40 % in force, and the log says so.
	text := strings.Replace(strings.ReplaceAll(twoRegionsText(), "{{STATE}}", t.TempDir()), "percent: 25", "percent: 30", 1)
	cfg, err := conf.Parse("", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if r := routeStatus(t, srv, "feed"); r.Source != "override" || r.Percent != 40 || r.FilePercent != 30 {
		t.Fatalf("after the file changed: %+v", r)
	}
	if l := logs.lines(map[string]any{"route": "feed", "level": "WARN"}); len(l) != 1 || !strings.Contains(l[0]["msg"].(string), "shadows the file's split") {
		t.Errorf("shadowed reload logged as %v", l)
	}
	if _, err := srv.ClearSplits(ctx, "test", []string{"feed"}, false); err != nil {
		t.Fatal(err)
	}
	if r := routeStatus(t, srv, "feed"); r.Source != "file" || r.Override != nil || r.Percent != 30 || r.Effective != 30 {
		t.Errorf("after clearing: %+v", r)
	}
}

// TestSplitMovesBackRefused: a lower percent or write percent is refused (409) with
// the share it would move back, and audited; forced, it goes through and the audit
// says forced. Without write_percent the write split stays where it was, capped.
func TestSplitMovesBackRefused(t *testing.T) {
	srv, logs, _ := controlServer(t, twoRegionsText())
	ctx := context.Background()
	split := func(p string, w *string, force bool) (BulkSplitResult, error) {
		one := SplitRequest{Percent: json.Number(p)}
		if w != nil {
			n := json.Number(*w)
			one.WritePercent = &n
		}
		return srv.ChangeSplits(ctx, "10.9.9.9:1234", BulkSplitRequest{Routes: map[string]SplitRequest{"feed": one}, Force: force})
	}
	str := func(s string) *string { return &s }
	if _, err := split("50", str("25"), false); err != nil {
		t.Fatal(err)
	}
	// Without write_percent, writes stay at 25 while reads go to 60.
	if res, err := split("60", nil, false); err != nil || res.Results[0].AfterWrite != 25 || res.Results[0].After != 60 {
		t.Fatalf("split 60 without writes: %+v %v", res, err)
	}
	_, err := split("10", nil, false)
	var e *Error
	if !errors.As(err, &e) || e.Status != 409 || e.Refused == nil || e.Refused.MoveBack != 0.5 || !strings.Contains(err.Error(), "moves 50.00% of users' reads") {
		t.Fatalf("split 60 -> 10: %v", err)
	}
	if r := routeStatus(t, srv, "feed"); r.Percent != 60 || r.WritePercent != 25 {
		t.Fatalf("a refused split changed the route: %+v", r)
	}
	// Split 60 -> 10 also moves writes 25 -> 10: 15 % of the users' writes.
	if e.Refused.MoveBackWrites != 0.15 {
		t.Errorf("share of writes moving back %v, want 0.15", e.Refused.MoveBackWrites)
	}
	// Lowering writes alone moves no read back, and says how many writes.
	if _, err := split("60", str("20"), false); !errors.As(err, &e) || e.Status != 409 || e.Refused.MoveBack != 0 ||
		e.Refused.MoveBackWrites != 0.05 || !strings.Contains(err.Error(), "and 5.00% of their writes back") {
		t.Fatalf("write 25 -> 20: %v (%+v)", err, e.Refused)
	}
	if l := logs.lines(map[string]any{"msg": "audit", "what": "split refused", "share_moving_back_writes": 0.05}); len(l) != 1 {
		t.Errorf("the writes' refusal audited as %v", l)
	}
	if l := logs.lines(map[string]any{"msg": "audit", "what": "split refused", "who": "10.9.9.9:1234"}); len(l) != 2 {
		t.Errorf("%d refusals audited, want 2", len(l))
	}
	// Forced, without write_percent: writes are capped at the new percent.
	if res, err := split("10", nil, true); err != nil || res.Results[0].After != 10 || res.Results[0].AfterWrite != 10 || !res.Results[0].Forced {
		t.Fatalf("forced split 10: %+v %v", res, err)
	}
	if l := logs.lines(map[string]any{"msg": "audit", "what": "split", "forced": true, "after": "10/10"}); len(l) != 1 {
		t.Errorf("forced split audited as %v", l)
	}
}
