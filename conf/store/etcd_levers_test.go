package store

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

func TestEncodeDecodeLevers(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	in := conf.Overrides{
		SiteLimit:   &conf.LimitOverride{RPS: 20000, Ramp: 2 * time.Minute, Who: "ops", At: at},
		RouteLimits: map[string]conf.LimitOverride{"feed": {RPS: 5000, Who: "ops", At: at}, "off": {RPS: 0}},
		Budgets:     map[string]conf.BudgetOverride{"idc/cloud": {BytesPerSec: 100e6, Who: "ops", At: at}, "cloud/idc": {}},
	}
	enc := encodeOverrides(in)
	var keys []string
	kv := map[string]kvEntry{}
	for k, v := range enc {
		keys = append(keys, k)
		kv[k] = kvEntry{val: v, mod: 3}
	}
	slices.Sort(keys)
	want := []string{"budgets/cloud/idc", "budgets/idc/cloud", "limits/routes/feed", "limits/routes/off", "limits/site"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	got, errs := decodeOverrides(kv)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if !reflect.DeepEqual(got.SiteLimit, in.SiteLimit) || !reflect.DeepEqual(got.RouteLimits, in.RouteLimits) || !reflect.DeepEqual(got.Budgets, in.Budgets) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
	}
	if who := whoChanged(in, []string{"limits/site"}); who != "ops" {
		t.Fatalf("who %q", who)
	}

	// A diff touches only the lever that changed.
	next := in.Clone()
	next.RouteLimits["feed"] = conf.LimitOverride{RPS: 10}
	delete(next.Budgets, "cloud/idc")
	next.SiteLimit = nil
	puts, dels := diffOverrides(in, next)
	if len(puts) != 1 || puts["limits/routes/feed"] == nil || !slices.Equal(dels, []string{"budgets/cloud/idc", "limits/site"}) {
		t.Fatalf("puts %v dels %v", puts, dels)
	}
}

// TestDecodeLeversTolerant: a bad lever value is reported and left out; the others
// still apply; unknown keys are ignored.
func TestDecodeLeversTolerant(t *testing.T) {
	kv := map[string]kvEntry{
		"limits/site":         {val: []byte(`null`)},
		"limits/routes/feed":  {val: []byte(`{"rps":-5}`)},
		"limits/routes/api":   {val: []byte(`{"rps":300,"ramp":60000000000}`)},
		"limits/routes/":      {val: []byte(`{"rps":1}`)},
		"limits/routes/big":   {val: []byte(`{"rps":1e300}`)},
		"limits/routes/neg":   {val: []byte(`{"rps":5,"ramp":-1}`)},
		"limits/routes/from":  {val: []byte(`{"rps":5,"ramp":1,"from":-3}`)},
		"budgets/e/f":         {val: []byte(`{"bytes_per_sec":5,"ramp":1,"from":-3}`)},
		"budgets/idc":         {val: []byte(`{"bytes_per_sec":1}`)},
		"budgets/idc/cloud":   {val: []byte(`{"bytes_per_sec":125000}`)},
		"budgets/a/b":         {val: []byte(`{"bytes_per_sec":-1}`)},
		"budgets/c/d":         {val: []byte(`7`)},
		"limits/future-thing": {val: []byte(`{"x":1}`)},
	}
	o, errs := decodeOverrides(kv)
	if len(errs) != 9 {
		t.Fatalf("%d errors, want 9 (site, feed, big, neg, from, budgets/idc, a/b, c/d, e/f): %v", len(errs), errs)
	}
	if o.SiteLimit != nil {
		t.Fatal("a null site limit must not lift the cap")
	}
	if len(o.RouteLimits) != 1 || o.RouteLimits["api"].RPS != 300 || o.RouteLimits["api"].Ramp != time.Minute {
		t.Fatalf("route limits %+v", o.RouteLimits)
	}
	if len(o.Budgets) != 1 || o.Budgets["idc/cloud"].BytesPerSec != 125000 {
		t.Fatalf("budgets %+v", o.Budgets)
	}
}

// FuzzDecodeLevers feeds lever keys and values as anyone with etcd access could write
// them: never a panic, never a negative or non-finite rate, and what decoded encodes
// back to the same overrides.
func FuzzDecodeLevers(f *testing.F) {
	f.Add("limits/site", []byte(`{"rps":20000,"ramp":120000000000,"who":"ops","at":"2026-03-01T12:00:00Z"}`))
	f.Add("limits/routes/feed", []byte(`{"rps":5000}`))
	f.Add("budgets/idc/cloud", []byte(`{"bytes_per_sec":100000000}`))
	f.Add("budgets/idc/cloud/x", []byte(`{"bytes_per_sec":1}`))
	f.Add("limits/site", []byte(`{"rps":"fast"}`))
	f.Add("limits/routes/", []byte(`[]`))
	f.Fuzz(func(t *testing.T, key string, val []byte) {
		o, errs := decodeOverrides(map[string]kvEntry{key: {val: val, mod: 1}})
		if len(errs) > 0 {
			return
		}
		if o.SiteLimit != nil && conf.CheckRPS(o.SiteLimit.RPS) != nil {
			t.Fatalf("%q=%q decoded a site cap of %v", key, val, o.SiteLimit.RPS)
		}
		for name, l := range o.RouteLimits {
			if name == "" || conf.CheckRPS(l.RPS) != nil || l.Ramp < 0 || !(l.From >= 0) || math.IsInf(l.From, 0) {
				t.Fatalf("%q=%q decoded route %q %+v", key, val, name, l)
			}
		}
		for k, b := range o.Budgets {
			if _, _, ok := conf.SplitBudgetKey(k); !ok || !(b.BytesPerSec >= 0) || b.Ramp < 0 || !(b.From >= 0) || math.IsInf(b.From, 0) {
				t.Fatalf("%q=%q decoded budget %q %+v", key, val, k, b)
			}
		}
		kv := map[string]kvEntry{}
		for k, v := range encodeOverrides(o) {
			kv[k] = kvEntry{val: v}
		}
		again, errs := decodeOverrides(kv)
		a, _ := json.Marshal(o)
		b, _ := json.Marshal(again)
		if len(errs) > 0 || string(a) != string(b) {
			t.Fatalf("round trip of %q=%q: %s then %s (%v)", key, val, a, b, errs)
		}
	})
}
