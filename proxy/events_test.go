package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shiftgate/shiftgate/breaker"
	"github.com/shiftgate/shiftgate/conf"
)

// TestEventLogRing keeps the last EventLogSize events in order and answers "since" from
// any point: before the first kept event, inside, at the newest and past it.
func TestEventLogRing(t *testing.T) {
	var l eventLog
	if got := l.since(0); len(got) != 0 {
		t.Fatalf("empty log: %+v", got)
	}
	const n = EventLogSize + 37
	for i := 1; i <= n; i++ {
		l.add(Event{Kind: EventSplit, Detail: fmt.Sprint(i)})
	}
	cases := []struct {
		since     uint64
		want      int
		firstSeq  uint64
		firstText string
	}{
		{0, EventLogSize, n - EventLogSize + 1, fmt.Sprint(n - EventLogSize + 1)},
		{10, EventLogSize, n - EventLogSize + 1, fmt.Sprint(n - EventLogSize + 1)},
		{n - 5, 5, n - 4, fmt.Sprint(n - 4)},
		{n, 0, 0, ""},
		{n + 100, 0, 0, ""},
	}
	for _, c := range cases {
		got := l.since(c.since)
		if len(got) != c.want {
			t.Errorf("since %d: %d events, want %d", c.since, len(got), c.want)
			continue
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq != got[i-1].Seq+1 {
				t.Errorf("since %d: seq %d after %d", c.since, got[i].Seq, got[i-1].Seq)
			}
		}
		if c.want > 0 && (got[0].Seq != c.firstSeq || got[0].Detail != c.firstText || got[len(got)-1].Seq != n) {
			t.Errorf("since %d: first %+v last %+v", c.since, got[0], got[len(got)-1])
		}
	}
}

// TestEventsFromControl records each kind of change the dashboard marks: the start, a
// split set and changed, cleared, rollback on and off with a ramp, a config reload, a
// refused reload and a breaker transition, with who made the change where it is known.
func TestEventsFromControl(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	gw := startGateway(t, twoRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	s, ctx := gw.srv, context.Background()
	pct := func(p string) BulkSplitRequest {
		return BulkSplitRequest{Routes: map[string]SplitRequest{"feed": {Percent: json.Number(p)}}}
	}
	must(s.ChangeSplits(ctx, "alice", pct("30")))
	must(s.ChangeSplits(ctx, "bob", pct("40")))
	must(s.ChangeSplits(ctx, "bob", BulkSplitRequest{DryRun: true, Routes: pct("50").Routes}))
	must(s.ClearSplits(ctx, "carol", []string{"feed"}, false))
	must(s.SetRollback(ctx, "dave", RollbackRequest{On: true}))
	must(s.SetRollback(ctx, "dave", RollbackRequest{On: false, Ramp: "10m"}))
	cfg := reloadWith(t, gw, strings.Replace(twoRegions, "percent: 25", "percent: 35", 1), idc.Addr, cloud.Addr)
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	s.ReloadRefused(fmt.Errorf("routes[0].percent: want 0..100, got 120"))
	s.onBreakerChange(breaker.Key{Route: "feed", Region: "idc"}, breaker.Closed, breaker.Open)

	want := []string{
		"start   config version 1",
		"split feed alice 25/5 -> 30/5",
		"split feed bob 30/5 -> 40/5",
		"clear feed  override 40/5 cleared: the file's 25/5 applies",
		"rollback  dave on: every route to its from",
		"rollback  dave off, ramping back over 10m0s",
		"reload   config version 2",
		"reload_refused   routes[0].percent: want 0..100, got 120",
		"breaker feed  closed -> open",
	}
	got := s.Events(0)
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(got), len(want), got)
	}
	for i, e := range got {
		line := strings.Join([]string{e.Kind, e.Route, e.Who, e.Detail}, " ")
		if !strings.HasPrefix(line, want[i]) || e.Seq != uint64(i+1) || e.At.IsZero() {
			t.Errorf("event %d: %q (seq %d, at %v), want %q", i, line, e.Seq, e.At, want[i])
		}
	}
	if e := got[len(got)-1]; e.Region != "idc" {
		t.Errorf("breaker event region %q", e.Region)
	}
	if tail := s.Events(got[len(got)-2].Seq); len(tail) != 1 || tail[0].Kind != EventBreaker {
		t.Errorf("since the refused reload: %+v", tail)
	}
}

// reloadWith writes text as the gateway's config with the regions' addresses and
// loads it.
func reloadWith(t *testing.T, gw *gateway, text, idc, cloud string) *conf.Config {
	t.Helper()
	text = strings.NewReplacer("{{STATE}}", filepath.Join(gw.dir, "state"), "{{IDC}}", idc, "{{CLOUD}}", cloud).Replace(text)
	path := filepath.Join(gw.dir, "shiftgate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
