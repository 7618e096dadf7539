package conf

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCutoffSet(t *testing.T) {
	site := Cutoff{On: true}
	ab := Cutoff{Routes: []string{"a", "b"}}
	f := func(name string, from Cutoff, on bool, routes []string, wantOn bool, wantRoutes ...string) {
		t.Helper()
		before := slices.Clone(from.Routes)
		got := from.Set(on, routes)
		if got.On != wantOn || !slices.Equal(got.Routes, wantRoutes) {
			t.Errorf("%s: got on=%v routes=%v, want on=%v routes=%v", name, got.On, got.Routes, wantOn, wantRoutes)
		}
		if !slices.Equal(from.Routes, before) {
			t.Errorf("%s: Set modified its receiver's routes: %v, was %v", name, from.Routes, before)
		}
	}
	f("site on", Cutoff{}, true, nil, true)
	f("site off ends everything", Cutoff{On: true, Routes: []string{"a"}}, false, nil, false)
	f("routes on", Cutoff{}, true, []string{"b", "a", "b"}, false, "a", "b")
	f("routes added", ab, true, []string{"c", "a"}, false, "a", "b", "c")
	f("route off", ab, false, []string{"a"}, false, "b")
	f("last route off", Cutoff{Routes: []string{"a"}}, false, []string{"a"}, false)
	f("route off keeps site", Cutoff{On: true, Routes: []string{"a"}}, false, []string{"a"}, true)
	f("route on under site", site, true, []string{"a"}, true, "a")
	f("unknown route off", ab, false, []string{"z"}, false, "a", "b")
}

func TestCutoffRoute(t *testing.T) {
	c := Cutoff{Routes: []string{"a", "c"}}
	for route, want := range map[string]bool{"a": true, "b": false, "c": true, "": false} {
		if got := c.Route(route); got != want {
			t.Errorf("Route(%q) = %v, want %v", route, got, want)
		}
	}
	if !(Cutoff{On: true}).Route("anything") {
		t.Error("a site-wide cut-off must cut off every route")
	}
}

// TestCutoffInOverrides: a cut-off survives the overrides' JSON (the state_dir file)
// and Clone, and the zero cut-off is left out of the JSON so that files written
// before it existed and after read the same.
func TestCutoffInOverrides(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	o := Overrides{Revision: 3, Cutoff: Cutoff{Routes: []string{"feed"}, Who: "ops", At: at}}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var back Overrides
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Cutoff.Routes, []string{"feed"}) || back.Cutoff.Who != "ops" || !back.Cutoff.At.Equal(at) {
		t.Fatalf("round trip: %+v from %s", back.Cutoff, b)
	}
	c := o.Clone()
	c.Cutoff.Routes[0] = "changed"
	if o.Cutoff.Routes[0] != "feed" {
		t.Fatal("Clone shares the cut-off's routes")
	}
	zero, _ := json.Marshal(Overrides{})
	if strings.Contains(string(zero), "cutoff") {
		t.Fatalf("zero cut-off written: %s", zero)
	}
}
