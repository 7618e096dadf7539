package stats

import (
	"errors"
	"testing"
	"time"
)

func TestBindCarriesUnchangedRoutes(t *testing.T) {
	clk := newFakeClock(t0)
	reg := NewRegistry(Options{Now: clk.Now})
	cfg := Config{
		Self: "old", Regions: []string{"old", "new"},
		Routes: []RouteInfo{{"api", "old", "new"}, {"img", "old", "new"}, {"ws", "old", "new"}},
	}
	s1, err := reg.Bind(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s1.Route(i).Record(Stayed, regOld, false, ms(1), 0, 0)
	}

	// Reload: api unchanged but moved to index 1; img now moves the other way; ws gone.
	cfg2 := Config{
		Self: "old", Regions: []string{"old", "new"},
		Routes: []RouteInfo{{"new-route", "old", "new"}, {"api", "old", "new"}, {"img", "new", "old"}},
	}
	s2, err := reg.Bind(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Route(1) != s1.Route(0) || s2.Totals(1, Stayed).Requests != 1 {
		t.Error("api's recorder did not carry over")
	}
	if s2.Route(2) == s1.Route(1) || s2.Totals(2, Stayed).Requests != 0 {
		t.Error("img changed direction but kept its history")
	}
	if s2.Route(1).Name() != "api" || s2.Len() != 3 {
		t.Error("route order")
	}
	// The old set keeps working for requests still on it.
	s1.Route(0).Record(Stayed, regOld, false, ms(1), 0, 0)
	if s2.Totals(1, Stayed).Requests != 2 {
		t.Error("a request on the old set did not reach the shared recorder")
	}
	if n := reg.Retain(s2); n != 1 {
		t.Errorf("Retain dropped %d, want 1 (ws)", n)
	}
	// ws comes back: it starts afresh.
	s3, _ := reg.Bind(Config{Regions: []string{"old", "new"}, Self: "old", Routes: []RouteInfo{{"ws", "old", "new"}}})
	if s3.Totals(0, Stayed).Requests != 0 {
		t.Error("a retired route came back with history")
	}
	// A changed region list or self region is a new identity.
	s4, _ := reg.Bind(Config{Self: "old", Regions: []string{"old", "new", "third"}, Routes: []RouteInfo{{"api", "old", "new"}}})
	if s4.Route(0) == s2.Route(1) {
		t.Error("api kept its cells across a change of the region list")
	}
}

func TestBindRefusesBadConfig(t *testing.T) {
	f := func(cfg Config, wantErr bool) {
		t.Helper()
		_, err := NewRegistry(Options{}).Bind(cfg)
		if (err != nil) != wantErr || (err != nil && !errors.Is(err, ErrConfig)) {
			t.Errorf("%+v: err %v, want error %v", cfg, err, wantErr)
		}
	}
	regions := []string{"a", "b"}
	f(Config{Regions: regions, Routes: []RouteInfo{{"r", "a", "b"}}}, false)
	f(Config{}, false)
	f(Config{Regions: []string{"a", "a"}}, true)
	f(Config{Regions: []string{""}}, true)
	f(Config{Regions: regions, Self: "c"}, true)
	f(Config{Regions: regions, Routes: []RouteInfo{{"", "a", "b"}}}, true)
	f(Config{Regions: regions, Routes: []RouteInfo{{"r", "a", "b"}, {"r", "b", "a"}}}, true)
	f(Config{Regions: regions, Routes: []RouteInfo{{"r", "a", "x"}}}, true)
}

func TestMemoryPerRoute(t *testing.T) {
	got := MemoryPerRoute(Options{}, 2)
	// 4 cohorts × 2 regions × 2976 + 602 × 840 + 8640 × 80 + 256 × 68 + 512 × 4.
	want := 8*2976 + 602*840 + 8640*80 + 256*68 + 512*4
	if got != want {
		t.Fatalf("MemoryPerRoute = %d, want %d", got, want)
	}
	t.Logf("memory per active route, 2 regions: %d bytes (%.2f MiB)", got, float64(got)/(1<<20))
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.withDefaults()
	if o.Seconds != 600 || o.TenSeconds != 8640 || o.TopK != 256 || o.TopSample != 16 || o.Now == nil {
		t.Fatalf("defaults %+v", o)
	}
	if d := time.Since(o.Now()); d > time.Minute || d < -time.Minute {
		t.Fatal("default clock is not the wall clock")
	}
}

func TestNilSetRoute(t *testing.T) {
	var s *Set
	if r := s.Route(0); r != nil {
		t.Fatalf("nil Set's Route(0) = %v, want nil", r)
	}
	s.Route(0).Record(Moved, 0, false, 0, 0, 0) // must not panic
}
