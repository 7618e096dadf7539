package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

func TestEncodeDecodeOverrides(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		in   conf.Overrides
		keys []string
	}{
		{"zero", conf.Overrides{}, nil},
		{"one route", conf.Overrides{Routes: map[string]conf.RouteOverride{"feed": {PercentBP: 2500, WritePercentBP: 500, Who: "ops", At: at}}}, []string{"routes/feed"}},
		{"rollback", conf.Overrides{Rollback: conf.Rollback{On: true, Who: "ops", At: at}}, []string{"rollback"}},
		{"both", conf.Overrides{Routes: map[string]conf.RouteOverride{"a": {PercentBP: 1}, "b/c": {PercentBP: 2}}, Rollback: conf.Rollback{On: true}},
			[]string{"rollback", "routes/a", "routes/b/c"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			enc := encodeOverrides(c.in)
			var keys []string
			kv := map[string]kvEntry{}
			for k, v := range enc {
				keys = append(keys, k)
				kv[k] = kvEntry{val: v, mod: 7}
			}
			slices.Sort(keys)
			if !slices.Equal(keys, c.keys) {
				t.Fatalf("keys %v, want %v", keys, c.keys)
			}
			got, errs := decodeOverrides(kv)
			if len(errs) != 0 {
				t.Fatal(errs)
			}
			if len(got.Routes) != len(c.in.Routes) || got.Rollback != c.in.Rollback {
				t.Fatalf("round trip: got %+v, want %+v", got, c.in)
			}
			for name, r := range c.in.Routes {
				if g := got.Routes[name]; g.PercentBP != r.PercentBP || g.WritePercentBP != r.WritePercentBP || g.Who != r.Who || !g.At.Equal(r.At) {
					t.Errorf("route %s: got %+v, want %+v", name, g, r)
				}
			}
		})
	}
}

func TestDecodeOverridesSkipsBadAndUnknownKeys(t *testing.T) {
	kv := map[string]kvEntry{
		"routes/good":  {val: []byte(`{"percent_bp":100,"write_percent_bp":0}`)},
		"routes/bad":   {val: []byte(`{not json`)},
		"routes/":      {val: []byte(`{}`)},
		"ratelimit/x":  {val: []byte(`{"future":true}`)},
		keyLastChange:  {val: []byte(`{"who":"x"}`)},
		keyRollback:    {val: []byte(`[]`)},
		"routes/other": {val: []byte(`{"percent_bp":5}`)},
	}
	o, errs := decodeOverrides(kv)
	if len(errs) != 2 {
		t.Fatalf("errors %v, want two (routes/bad and rollback)", errs)
	}
	if len(o.Routes) != 2 || o.Routes["good"].PercentBP != 100 || o.Routes["other"].PercentBP != 5 {
		t.Fatalf("routes %+v", o.Routes)
	}
	if o.Rollback.On {
		t.Fatal("a rollback that does not decode must not turn rollback on")
	}
}

func TestDiffOverrides(t *testing.T) {
	base := conf.Overrides{Routes: map[string]conf.RouteOverride{"a": {PercentBP: 100}, "b": {PercentBP: 200}}}
	cases := []struct {
		name       string
		change     func(*conf.Overrides)
		puts, dels []string
	}{
		{"nothing", func(*conf.Overrides) {}, nil, nil},
		{"one route", func(o *conf.Overrides) { o.Routes["a"] = conf.RouteOverride{PercentBP: 150} }, []string{"routes/a"}, nil},
		{"add and remove", func(o *conf.Overrides) { delete(o.Routes, "b"); o.Routes["c"] = conf.RouteOverride{} }, []string{"routes/c"}, []string{"routes/b"}},
		{"rollback on", func(o *conf.Overrides) { o.Rollback.On = true }, []string{"rollback"}, nil},
		{"revision only", func(o *conf.Overrides) { o.Revision = 99 }, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			next := base.Clone()
			c.change(&next)
			puts, dels := diffOverrides(base, next)
			var pk []string
			for k := range puts {
				pk = append(pk, k)
			}
			slices.Sort(pk)
			if !slices.Equal(pk, c.puts) || !slices.Equal(dels, c.dels) {
				t.Fatalf("puts %v dels %v, want %v %v", pk, dels, c.puts, c.dels)
			}
		})
	}
}

func TestPendingLocalOverlay(t *testing.T) {
	kv := map[string]kvEntry{"routes/a": {val: []byte(`{"percent_bp":1}`), mod: 3}, "routes/b": {val: []byte(`{"percent_bp":2}`), mod: 4}}
	p := &pendingLocal{}
	p.add(map[string][]byte{"routes/a": []byte(`{"percent_bp":50}`)}, []string{"routes/b"}, time.Time{})
	p.add(map[string][]byte{"rollback": []byte(`{"on":true}`)}, nil, time.Time{})
	p.add(map[string][]byte{"routes/b": []byte(`{"percent_bp":70}`)}, nil, time.Time{}) // a later change wins
	if got, want := p.keys(), []string{"rollback", "routes/a", "routes/b"}; !slices.Equal(got, want) {
		t.Fatalf("keys %v, want %v", got, want)
	}
	o, errs := decodeOverrides(p.overlay(kv))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if o.Routes["a"].PercentBP != 50 || o.Routes["b"].PercentBP != 70 || !o.Rollback.On {
		t.Fatalf("overlay %+v", o)
	}
	if string(kv["routes/a"].val) != `{"percent_bp":1}` {
		t.Fatal("overlay modified the store's view")
	}
	p.add(nil, []string{"routes/a"}, time.Time{})
	if o, _ := decodeOverrides(p.overlay(kv)); len(o.Routes) != 1 {
		t.Fatalf("a local delete must hide the store's key: %+v", o.Routes)
	}
}

// TestPendingAgainstLatestIntent: at reconciliation, a key another writer changed
// during the outage later than this instance did keeps the later change (superseded);
// one changed earlier, or without a time, is replaced by the local one. Before, the
// instance that reconnected last won, even with the older change: an audit saw a
// fleet flip back to a rollback an operator had turned off since.
func TestPendingAgainstLatestIntent(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	p := &pendingLocal{Base: 10, At: t0}
	p.add(map[string][]byte{"rollback": []byte(`{"on":true,"at":"2026-12-03T04:00:00Z"}`)}, nil, t0)
	p.add(map[string][]byte{"cutoff": []byte(`{"on":true}`)}, nil, t0)
	p.add(map[string][]byte{"routes/feed": []byte(`{"percent_bp":5000,"write_percent_bp":5000}`)}, nil, t0)
	later := func(on bool, d time.Duration) []byte {
		return []byte(fmt.Sprintf(`{"on":%v,"at":%q}`, on, t0.Add(d).Format(time.RFC3339Nano)))
	}
	kv := map[string]kvEntry{
		"rollback":    {val: later(false, time.Second), mod: 12},                             // turned off later elsewhere
		"cutoff":      {val: later(false, -time.Minute), mod: 13},                            // changed earlier elsewhere
		"routes/feed": {val: []byte(`{"percent_bp":1000,"write_percent_bp":1000}`), mod: 14}, // no time: local wins
	}
	puts, _, written, overwrote, notApplied, superseded := p.against(kv)
	if !slices.Equal(superseded, []string{"rollback"}) || puts["rollback"] != nil {
		t.Errorf("superseded %v (puts %q): want the rollback turned off later to stay", superseded, puts["rollback"])
	}
	if !slices.Equal(written, []string{"cutoff", "routes/feed"}) || !slices.Equal(overwrote, []string{"cutoff", "routes/feed"}) || len(notApplied) != 0 {
		t.Errorf("written %v, overwrote %v, not applied %v; want cutoff and routes/feed replaced", written, overwrote, notApplied)
	}
	// A split raised here above a later, lower one elsewhere is written all the same:
	// the lower one would move back users this instance served.
	raised := &pendingLocal{Base: 10, At: t0}
	raised.add(map[string][]byte{"routes/feed": []byte(`{"percent_bp":7000,"write_percent_bp":7000,"at":"2026-12-03T04:00:00Z"}`)}, nil, t0)
	lower := map[string]kvEntry{"routes/feed": {val: []byte(`{"percent_bp":6000,"write_percent_bp":6000,"at":"2026-12-03T04:00:09Z"}`), mod: 12}}
	if _, _, written, _, _, superseded := raised.against(lower); len(superseded) != 0 || !slices.Equal(written, []string{"routes/feed"}) {
		t.Errorf("a raised split against a later lower one: written %v, superseded %v; want it written", written, superseded)
	}
	// A pending file from before KeyAt: the value's own time, else At.
	old := &pendingLocal{Base: 10, At: t0.Add(2 * time.Second), Puts: map[string]json.RawMessage{"rollback": later(true, 2*time.Second)}}
	if _, _, written, _, _, superseded := old.against(kv); len(superseded) != 0 || !slices.Equal(written, []string{"rollback"}) {
		t.Errorf("an older pending file's later change: written %v, superseded %v; want it written", written, superseded)
	}
}

// FuzzDecodeOverrides feeds values as anyone with etcd access could write them: a
// bad value is reported, never a panic, and a good one round-trips.
func FuzzDecodeOverrides(f *testing.F) {
	f.Add("routes/feed", []byte(`{"percent_bp":2500,"write_percent_bp":500,"who":"ops","at":"2026-03-01T12:00:00Z"}`))
	f.Add("rollback", []byte(`{"on":true,"ramp_for":60000000000}`))
	f.Add("routes/", []byte(`null`))
	f.Add("last-change", []byte(`{`))
	f.Fuzz(func(t *testing.T, key string, val []byte) {
		o, errs := decodeOverrides(map[string]kvEntry{key: {val: val, mod: 1}})
		if len(errs) > 0 {
			return
		}
		// Whatever decoded encodes back to keys that decode to the same thing.
		kv := map[string]kvEntry{}
		for k, v := range encodeOverrides(o) {
			kv[k] = kvEntry{val: v}
		}
		again, errs := decodeOverrides(kv)
		if len(errs) > 0 || len(again.Routes) != len(o.Routes) || again.Rollback.On != o.Rollback.On {
			t.Fatalf("round trip of %q=%q: %+v then %+v (%v)", key, val, o, again, errs)
		}
	})
}

// BenchmarkApplyBulk measures what an instance does with a 200-key transaction
// before handing it to the proxy: fold the keys and decode them.
func BenchmarkApplyBulk(b *testing.B) {
	kv := map[string]kvEntry{}
	for i := 0; i < 200; i++ {
		kv[fmt.Sprintf("routes/route-%03d", i)] = kvEntry{val: []byte(`{"percent_bp":5000,"write_percent_bp":1000,"who":"127.0.0.1:5000","at":"2026-03-01T12:00:00Z"}`), mod: int64(i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if o, errs := decodeOverrides(kv); len(o.Routes) != 200 || errs != nil {
			b.Fatal(errs)
		}
	}
}

// TestPendingPlanGoesWithItsSplit: a plan rolled back on an instance cut off from etcd
// (its guard) while the driver raised the route's split: the split is not lowered
// (users are not moved back), and the plan's rolled-back progress is not written
// over the driver's either, so the store keeps a running plan with its split rather
// than a rolled-back plan with a raised split that no one judges. Before, the plan key
// was written alone when its change was the later one.
func TestPendingPlanGoesWithItsSplit(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	p := &pendingLocal{Base: 10, At: t0}
	p.add(map[string][]byte{
		"plans/feed":  []byte(`{"state":"rolled_back","step":1,"percent_bp":2500,"at":"2026-12-03T04:00:30Z"}`),
		"routes/feed": []byte(`{"percent_bp":0,"write_percent_bp":0,"at":"2026-12-03T04:00:30Z"}`),
	}, nil, t0.Add(30*time.Second))
	kv := map[string]kvEntry{ // the driver advanced the plan earlier, during the cut-off
		"plans/feed":  {val: []byte(`{"state":"running","step":2,"percent_bp":5000,"at":"2026-12-03T04:00:10Z"}`), mod: 12},
		"routes/feed": {val: []byte(`{"percent_bp":5000,"write_percent_bp":5000,"at":"2026-12-03T04:00:10Z"}`), mod: 12},
	}
	puts, _, written, overwrote, notApplied, _ := p.against(kv)
	if len(written) != 0 || len(puts) != 0 || len(overwrote) != 0 || !slices.Equal(notApplied, []string{"plans/feed", "routes/feed"}) {
		t.Fatalf("written %v (puts %d), overwrote %v, not applied %v; want both kept as the store has them", written, len(puts), overwrote, notApplied)
	}
	// Where the store did not move the split, the rollback is written whole.
	quiet := map[string]kvEntry{
		"plans/feed":  {val: []byte(`{"state":"running","step":1,"percent_bp":2500,"at":"2026-12-03T04:00:00Z"}`), mod: 9},
		"routes/feed": {val: []byte(`{"percent_bp":2500,"write_percent_bp":2500,"at":"2026-12-03T04:00:00Z"}`), mod: 9},
	}
	if _, _, written, _, notApplied, _ := p.against(quiet); !slices.Equal(written, []string{"plans/feed", "routes/feed"}) || len(notApplied) != 0 {
		t.Fatalf("against an unchanged store: written %v, not applied %v; want both written", written, notApplied)
	}
}
