package mirror

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestVerdict(t *testing.T) {
	t.Parallel()
	f := func(raw, noise, rel, abs float64, want string) {
		t.Helper()
		if got := verdict(raw, noise, rel, abs); got != want {
			t.Errorf("verdict(raw %v, noise %v, rel %v, abs %v) = %s, want %s", raw, noise, rel, abs, got, want)
		}
	}
	f(0.1, 0, 0.2, 0.0003, VerdictDiffering)   // never differs between two old upstreams
	f(1, 1, 0.2, 0.0003, VerdictNoise)         // a timestamp: differs everywhere
	f(0.5, 0.6, 0.2, 0.0003, VerdictNoise)     // less than noise
	f(0.55, 0.45, 0.2, 0.0003, VerdictNoise)   // relative difference 0.1: within the margin
	f(0.7, 0.4, 0.2, 0.0003, VerdictDiffering) // relative 0.27, absolute 0.3
	f(0.0002, 0, 0.2, 0.0003, VerdictNoise)    // under the absolute margin
	f(0.0004, 0, 0.2, 0.0003, VerdictDiffering)
	f(0, 0, 0, 0, VerdictNoise) // never differed
}

func testOptions() *Options {
	o := Options{}.withDefaults()
	return &o
}

func TestRouteStatsCounts(t *testing.T) {
	t.Parallel()
	s := newRouteStats("feed", testOptions())
	seen := map[string]bool{}
	title := Difference{Field: "title", Path: "title", A: `"A"`, B: `"B"`}
	ts := func(i int) Difference {
		return Difference{Field: "items[*].ts", Path: "items[" + strconv.Itoa(i) + "].ts", A: "1", B: "2"}
	}
	// 10 comparisons: title differs in 2, every one has a timestamp difference at two
	// indices (which counts once per request).
	for i := range 10 {
		diffs := []Difference{ts(0), ts(1)}
		if i < 2 {
			diffs = append(diffs, title)
		}
		s.recordRaw("/api/feed/"+strconv.Itoa(i), diffs, false, time.Millisecond, 2*time.Millisecond, seen)
	}
	// 4 noise comparisons: the timestamp differs in all.
	for range 4 {
		s.recordNoise([]Difference{ts(0), ts(3)}, seen)
	}
	r := s.result()
	if r.Compared != 10 || r.Differing != 10 || r.Same != 0 || r.NoiseCompared != 4 {
		t.Fatalf("counters %+v", r.Counters)
	}
	if len(r.Fields) != 2 {
		t.Fatalf("fields %+v", r.Fields)
	}
	got := r.Fields[0]
	if got.Field != "title" || got.Verdict != VerdictDiffering || got.RawRate != 0.2 || got.NoiseRate != 0 || got.Differing != 2 {
		t.Errorf("title: %+v", got)
	}
	got = r.Fields[1]
	if got.Field != "items[*].ts" || got.Verdict != VerdictNoise || got.RawRate != 1 || got.NoiseRate != 1 {
		t.Errorf("timestamp: %+v", got)
	}
	if r.Latency.Samples != 10 || r.Latency.PrimaryP50Ms != 1 || r.Latency.MirrorP99Ms != 2 {
		t.Errorf("latency %+v", r.Latency)
	}
}

func TestSamplesBounded(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.Samples, o.SampleBytes = 3, 10
	s := newRouteStats("r", o)
	seen := map[string]bool{}
	for i := range 7 {
		s.recordRaw("/p/"+strconv.Itoa(i), []Difference{{Field: "f", Path: "f", A: strings.Repeat("a", 50), B: "b"}}, false, 0, 0, seen)
	}
	f := s.result().Fields[0]
	if len(f.Samples) != 3 {
		t.Fatalf("%d samples, want 3", len(f.Samples))
	}
	for i, x := range f.Samples {
		if want := "/p/" + strconv.Itoa(4+i); x.Path != want {
			t.Errorf("sample %d path %q, want %q (the latest, oldest first)", i, x.Path, want)
		}
		if len(x.Primary) > 10 || !strings.HasSuffix(x.Primary, "…") {
			t.Errorf("sample value %q not cut to 10 bytes", x.Primary)
		}
	}
}

func TestFieldsBounded(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.MaxFields = 4
	s := newRouteStats("r", o)
	seen := map[string]bool{}
	for i := range 10 {
		k := "k" + strconv.Itoa(i)
		s.recordRaw("/", []Difference{{Field: k, Path: k}}, false, 0, 0, seen)
	}
	r := s.result()
	if len(r.Fields) != 5 {
		t.Fatalf("%d fields, want 4 and :other", len(r.Fields))
	}
	for _, f := range r.Fields {
		if f.Field == fieldOther && f.Differing != 6 {
			t.Errorf(":other counted %d, want 6", f.Differing)
		}
	}
}

func TestLatencyWindow(t *testing.T) {
	t.Parallel()
	l := latencyRing{size: 100}
	for i := 1; i <= 1000; i++ {
		l.add(time.Duration(i)*time.Millisecond, time.Duration(2*i)*time.Millisecond)
	}
	// The window holds 901..1000 ms.
	got := l.summary()
	want := Latency{Samples: 100, PrimaryP50Ms: 950, PrimaryP99Ms: 999, MirrorP50Ms: 1900, MirrorP99Ms: 1998}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if (&latencyRing{size: 4}).summary() != (Latency{}) {
		t.Fatal("an empty window must read zero")
	}
}

// The JSON names are the contract of /v1/diff and `shiftgate diff -json`.
func TestSnapshotJSONShape(t *testing.T) {
	t.Parallel()
	s := newRouteStats("feed", testOptions())
	s.recordRaw("/a", []Difference{{Field: "title", Path: "title", A: `"A"`, B: `"B"`}}, false, 0, 0, map[string]bool{})
	b, err := json.Marshal(Snapshot{Routes: []RouteResult{s.result()}})
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Routes []map[string]json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "compared", "dropped", "errors", "fields", "latency", "same", "differing", "noise_compared"} {
		if _, ok := v.Routes[0][k]; !ok {
			t.Errorf("route has no %q: %s", k, b)
		}
	}
	var fields []map[string]json.RawMessage
	if err := json.Unmarshal(v.Routes[0]["fields"], &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"field", "verdict", "raw_rate", "noise_rate", "samples"} {
		if _, ok := fields[0][k]; !ok {
			t.Errorf("field has no %q: %s", k, b)
		}
	}
}
