package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store/etcdtest"
)

func TestPlanProgressKeys(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := conf.PlanProgress{State: conf.PlanRunning, Step: 2, StepAt: at, PercentBP: 2500, WritePercentBP: 2500, Who: "plan@a", At: at}
	p = p.WithEvent(conf.PlanEvent{Event: "advance", Step: 2, PercentBP: 2500, At: at,
		Gates: []conf.PlanGateRecord{{Name: "error_ratio", Outcome: "pass", MovedN: 40, StayedN: 900}}})
	in := conf.Overrides{Plans: map[string]conf.PlanProgress{"feed": p}}
	enc := encodeOverrides(in)
	if _, ok := enc["plans/feed"]; !ok || len(enc) != 1 {
		t.Fatalf("keys %v", enc)
	}
	kv := map[string]kvEntry{}
	for k, v := range enc {
		kv[k] = kvEntry{val: v, mod: 3}
	}
	// A newer instance's field, a value that does not decode, an empty name.
	kv["plans/other"] = kvEntry{val: []byte(`{"state":"paused","step":1,"step_at":"2026-03-01T12:00:00Z","future":{"x":1}}`)}
	kv["plans/bad"] = kvEntry{val: []byte(`{"step":"two"}`)}
	kv["plans/"] = kvEntry{val: []byte(`{}`)}
	got, errs := decodeOverrides(kv)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "overrides/plans/bad") {
		t.Fatalf("errors %v, want plans/bad alone", errs)
	}
	g := got.Plans["feed"]
	if len(got.Plans) != 2 || !g.SameStep(p) || g.PercentBP != 2500 || len(g.History) != 1 || g.History[0].Gates[0].StayedN != 900 {
		t.Fatalf("decoded %+v", got.Plans)
	}
	if o := got.Plans["other"]; o.State != conf.PlanPaused || o.Step != 1 {
		t.Errorf("tolerant decode: %+v", o)
	}
	if who := whoChanged(in, []string{"plans/feed"}); who != "plan@a" {
		t.Errorf("who = %q", who)
	}
	puts, dels := diffOverrides(in, conf.Overrides{})
	if len(puts) != 0 || len(dels) != 1 || dels[0] != "plans/feed" {
		t.Errorf("diff: %v %v", puts, dels)
	}
}

func FuzzDecodePlanProgress(f *testing.F) {
	f.Add([]byte(`{"state":"running","step":2,"step_at":"2026-03-01T12:00:00Z","percent_bp":2500,"history":[{"event":"start"}]}`))
	f.Add([]byte(`{"state":7}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, val []byte) {
		o, errs := decodeOverrides(map[string]kvEntry{"plans/feed": {val: val, mod: 1}})
		if len(errs) > 0 {
			return
		}
		kv := map[string]kvEntry{}
		for k, v := range encodeOverrides(o) {
			kv[k] = kvEntry{val: v}
		}
		again, errs := decodeOverrides(kv)
		if len(errs) > 0 || len(again.Plans) != len(o.Plans) || !again.Plans["feed"].SameStep(o.Plans["feed"]) {
			t.Fatalf("round trip of %q: %+v then %+v (%v)", val, o, again, errs)
		}
	})
}

// leadLog records, per candidate, when it led.
type leadLog struct {
	mu    sync.Mutex
	terms []string
	now   map[string]bool
}

func (l *leadLog) run(name string) func(context.Context) {
	return func(ctx context.Context) {
		l.mu.Lock()
		l.terms = append(l.terms, name)
		for other, on := range l.now {
			if on {
				l.mu.Unlock()
				panic(name + " leads while " + other + " does")
			}
		}
		l.now[name] = true
		l.mu.Unlock()
		<-ctx.Done()
		l.mu.Lock()
		l.now[name] = false
		l.mu.Unlock()
	}
}

func (l *leadLog) leader() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for n, on := range l.now {
		if on {
			return n
		}
	}
	return ""
}

// TestEtcdElection has two instances campaign: one leads, the other takes over when
// the first stops cleanly (at once) and, later, when a leader's connection dies
// without a word (after the lease).
func TestEtcdElection(t *testing.T) {
	srv := etcdtest.Start(t)
	log := &leadLog{now: map[string]bool{}}
	stores := map[string]*Etcd{}
	cancels := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	campaign := func(name string) {
		s := newStore(t, srv.Endpoint, "", name)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		stores[name], cancels[name] = s, cancel
		wg.Add(1)
		go func() { defer wg.Done(); s.Lead(ctx, "plans", name+" 127.0.0.1:1", log.run(name)) }()
	}
	campaign("a")
	waitFor(t, 10*time.Second, "a leads", func() bool { return log.leader() == "a" })
	campaign("b")
	if v, err := stores["b"].Leader(context.Background(), "plans"); err != nil || v != "a 127.0.0.1:1" {
		t.Fatalf("leader seen by b: %q %v", v, err)
	}
	cancels["a"]()
	waitFor(t, 10*time.Second, "b leads after a stops", func() bool { return log.leader() == "b" })
	campaign("c")
	// b's connection dies: its lease is no longer kept alive, and c takes over once
	// it expires; b's own term ends when its session notices.
	stores["b"].Close()
	waitFor(t, 5*LeaderTTL, "c leads after b's lease", func() bool { return log.leader() == "c" })
	if v, err := stores["c"].Leader(context.Background(), "plans"); err != nil || v != "c 127.0.0.1:1" {
		t.Fatalf("leader seen by c: %q %v", v, err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if strings.Join(log.terms, ",") != "a,b,c" {
		t.Errorf("terms %v, want a, b, c", log.terms)
	}
}
