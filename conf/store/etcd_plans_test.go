package store

import (
	"context"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

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

// leadLog records each candidate's terms.
type leadLog struct {
	mu    sync.Mutex
	terms []string
	began map[string]time.Time
	ended map[string]time.Time
	now   map[string]bool
}

func (l *leadLog) run(name string) func(context.Context) {
	return func(ctx context.Context) {
		l.mu.Lock()
		l.terms = append(l.terms, name)
		l.now[name], l.began[name] = true, time.Now()
		l.mu.Unlock()
		<-ctx.Done()
		l.mu.Lock()
		l.now[name], l.ended[name] = false, time.Now()
		l.mu.Unlock()
	}
}

// leaders lists who leads now, sorted.
func (l *leadLog) leaders() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for n, on := range l.now {
		if on {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// TestEtcdElection has instances campaign: one leads, another takes over when the
// first stops cleanly (it resigns), and again when a leader's lease ends without a
// word from it.
func TestEtcdElection(t *testing.T) {
	srv := etcdtest.Start(t)
	log := &leadLog{now: map[string]bool{}, began: map[string]time.Time{}, ended: map[string]time.Time{}}
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
	waitFor(t, 10*time.Second, "a leads", func() bool { return log.leaders() == "a" })
	campaign("b")
	if v, err := stores["b"].Leader(context.Background(), "plans"); err != nil || v != "a 127.0.0.1:1" {
		t.Fatalf("leader seen by b: %q %v", v, err)
	}
	cancels["a"]()
	waitFor(t, 10*time.Second, "b leads after a stops", func() bool { return log.leaders() == "b" })
	log.mu.Lock()
	if log.began["b"].Before(log.ended["a"]) {
		t.Errorf("b began leading before a stopped: a resigns only once its term is over")
	}
	log.mu.Unlock()
	campaign("c")
	// b's lease ends without b resigning (what its death does once the lease
	// runs out): b's term ends, and c takes over.
	raw := rawClient(t, srv.Endpoint)
	resp, err := raw.Get(context.Background(), testPrefix+keyElections+"plans/", clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "b 127.0.0.1:1" {
		t.Fatalf("leader key: %v %v", resp, err)
	}
	if _, err := raw.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	// c is elected at once; b learns of its lost lease at its next keep-alive, so
	// for a moment both may believe they lead (what the plan's compare-and-set on
	// the stored step is for), and then only c does.
	waitFor(t, 5*LeaderTTL, "c alone leads after b's lease", func() bool { return log.leaders() == "c" })
	if v, err := stores["c"].Leader(context.Background(), "plans"); err != nil || v != "c 127.0.0.1:1" {
		t.Fatalf("leader seen by c: %q %v", v, err)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if strings.Join(log.terms, ",") != "a,b,c" {
		t.Errorf("terms %v, want a, b, c", log.terms)
	}
}
