package stats

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

// busySet records a little of everything on route "api" over the 60 s before
// t0+600 and returns the Set with its clock at t0+600.
func busySet(t *testing.T, instance string, seed int) *Set {
	t.Helper()
	clk := newFakeClock(t0)
	s := newTestSet(t, clk, Options{Instance: instance, TopK: 4})
	r := s.Route(0)
	for sec := t0.Unix() + 540; sec < t0.Unix()+600; sec++ {
		clk.Set(time.Unix(sec, 0))
		for i := range 20 + seed {
			r.Record(Stayed, regOld, i%25 == 0, ms(float64(5+i%7+seed)), 100, 1000)
			r.Record(Moved, regNew, i%40 == 0, ms(float64(8+i%5)), 100, 2000)
			r.ObserveSource([]byte{'s', byte('a' + (i+seed)%6)})
		}
		r.Record(Failover, regOld, false, ms(70), 10, 10)
		r.Record(Fallback, regNew, true, ms(1), 0, 50)
	}
	clk.Set(t0.Add(600 * time.Second))
	return s
}

func TestSnapshotJSONShape(t *testing.T) {
	s := busySet(t, "gw-a", 0)
	b, err := json.Marshal(s.Snapshot(View{}))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	route := m["routes"].([]any)[0].(map[string]any)
	if route["name"] != "api" || route["requests"] != 60.0*(20+20+1+1) {
		t.Fatalf("route: name %v requests %v", route["name"], route["requests"])
	}
	readingKeys := []string{"requests", "errors", "p50_ms", "p99_ms", "bytes_in", "bytes_out"}
	regions := route["regions"].(map[string]any)
	for _, reg := range []string{"old", "new"} {
		rd := regions[reg].(map[string]any)
		for _, k := range readingKeys {
			if _, ok := rd[k]; !ok {
				t.Errorf("regions.%s lacks %s", reg, k)
			}
		}
		if _, ok := rd["hist"]; ok {
			t.Errorf("regions.%s has a histogram without View.Histograms", reg)
		}
	}
	if regions["new"].(map[string]any)["requests"] != 60.0*21 {
		t.Errorf("regions.new %v", regions["new"])
	}
	cohorts := route["cohorts"].(map[string]any)
	for _, c := range []string{"moved", "stayed", "failover", "fallback"} {
		rd := cohorts[c].(map[string]any)
		for _, k := range append(readingKeys, "p95_ms") {
			if _, ok := rd[k]; !ok {
				t.Errorf("cohorts.%s lacks %s", c, k)
			}
		}
	}
	cmp := route["compare"].(map[string]any)
	for _, k := range []string{"moved_vs_stayed", "stayed_vs_past"} {
		c := cmp[k].(map[string]any)
		for _, f := range []string{"a", "b", "verdict", "gates", "error_delta_points", "p99_delta"} {
			if _, ok := c[f]; !ok {
				t.Errorf("compare.%s lacks %s", k, f)
			}
		}
	}
	top := route["top_sources"].([]any)
	if len(top) != 4 {
		t.Errorf("%d top sources, want 4 (K)", len(top))
	}
	for _, row := range top {
		for _, k := range []string{"source", "count", "error"} {
			if _, ok := row.(map[string]any)[k]; !ok {
				t.Errorf("top source lacks %s", k)
			}
		}
	}
	hist := route["history"].(map[string]any)
	if hist["step_s"] != 1.0 {
		t.Errorf("history step %v", hist["step_s"])
	}
	for _, c := range []string{"moved", "stayed", "failover", "fallback"} {
		cols, ok := hist[c].([]any)
		if !ok || len(cols) != 6 {
			t.Fatalf("history.%s: %v", c, hist[c])
		}
		for i, col := range cols {
			if n := len(col.([]any)); n != 300 {
				t.Errorf("history.%s column %d has %d points, want 300", c, i, n)
			}
		}
	}
	// The last 60 seconds have moved traffic; before, p99 is null.
	p99 := hist["moved"].([]any)[3].([]any)
	if p99[0] != nil || p99[299] == nil {
		t.Errorf("moved p99 series: first %v last %v", p99[0], p99[299])
	}
	if _, ok := route["pairs"].(map[string]any)["old>new"]; !ok {
		t.Errorf("pairs: %v", route["pairs"])
	}
	if m["instance"] != "gw-a" || m["self_region"] != "old" {
		t.Errorf("instance %v self %v", m["instance"], m["self_region"])
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	snap := busySet(t, "gw-a", 1).Snapshot(View{Histograms: true})
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	b2, err := json.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(b2) {
		t.Fatalf("a decoded snapshot encodes differently:\n%s\n%s", b, b2)
	}
}

func TestSeriesJSON(t *testing.T) {
	s := Series{T: []int64{10, 11}, Req: []uint64{3, 0}, Err: []uint64{1, 0}, P99: []float64{2.5, math.NaN()}, BytesIn: []uint64{7, 0}, BytesOut: []uint64{8, 0}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[[10,11],[3,0],[1,0],[2.5,null],[7,0],[8,0]]`; string(b) != want {
		t.Fatalf("encoded %s, want %s", b, want)
	}
	for _, c := range []struct {
		in string
		ok bool
	}{
		{`[[10,11],[3,0],[1,0],[2.5,null],[7,0],[8,0]]`, true},
		{`[[10],[3],[1],[null]]`, true},
		{`[[10,11],[3],[1],[]]`, true}, // short columns pad
		{`[[10],[3],[1]]`, false},
		{`[[10.5],[3],[1],[null]]`, false},
		{`[[null],[3],[1],[null]]`, false},
		{`[[10],[-3],[1],[null]]`, false},
		{`{"t":1}`, false},
	} {
		var got Series
		err := json.Unmarshal([]byte(c.in), &got)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v", c.in, err)
		}
		if err == nil && (len(got.Req) != len(got.T) || len(got.P99) != len(got.T) || len(got.BytesOut) != len(got.T)) {
			t.Errorf("%s: columns not padded: %+v", c.in, got)
		}
	}
}

func FuzzSnapshotJSON(f *testing.F) {
	f.Add([]byte(`{"routes":[{"name":"api","requests":3,"regions":{"old":{"requests":3,"hist":{"shift":0,"b":[[5,3]]}}},"top_sources":[{"source":"a","count":3,"error":0}],"top_floor":1,"history":{"step_s":1,"moved":[[1],[1],[0],[null]]}}]}`))
	f.Add([]byte(`{"routes":[{"name":"api","compare":{"moved_vs_stayed":{"a":{"requests":5,"hist":{"shift":2,"b":[[1,5]]}},"b":{"requests":0}}}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Snapshot
		if json.Unmarshal(b, &s) != nil {
			return
		}
		// Whatever a peer sends and decodes merges without panicking, and twice.
		m := Merge(s, s)
		if _, err := json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	})
}

func TestViewDefaults(t *testing.T) {
	v := View{}.withDefaults()
	want := View{Compare: time.Minute, Past: 9 * time.Minute, History: 5 * time.Minute, HistoryStep: time.Second,
		Criteria: Criteria{Error: ErrorCriteria{}.withDefaults(), Latency: LatencyCriteria{}.withDefaults()}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("defaults %+v", v)
	}
}
