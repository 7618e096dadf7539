package stats

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// recordStream records a deterministic stream on r over [t0+540, t0+600); part picks
// every n-th request starting at k, so streams split between instances add up.
func recordStream(clk *fakeClock, r *Route, k, n int) {
	i := 0
	for sec := t0.Unix() + 540; sec < t0.Unix()+600; sec++ {
		clk.Set(time.Unix(sec, 0))
		for j := range 60 {
			i++
			if i%n != k {
				continue
			}
			r.Record(Stayed, regOld, j%30 == 0, ms(float64(3+j%11)), 10, 100)
			r.Record(Moved, regNew, j%20 == 0, ms(float64(4+j%13)), 10, 200)
			if j%15 == 0 {
				r.Record(Failover, regOld, false, ms(60), 1, 1)
			}
		}
	}
	clk.Set(t0.Add(600 * time.Second))
}

func view() View { return View{Histograms: true, History: 2 * time.Minute} }

// viaJSON sends a snapshot through JSON, as a fleet view fetches it.
func viaJSON(t *testing.T, s Snapshot) Snapshot {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out Snapshot
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// comparable returns the parts of a route's snapshot that must match exactly
// between a merge and a single recorder of everything.
func comparable(r RouteSnapshot) string {
	strip := func(rd Reading) Reading { rd.Hist = nil; return rd }
	out := fmt.Sprint(r.Requests, r.RPS)
	for _, k := range []string{"old", "new"} {
		out += fmt.Sprintf("|%s %+v", k, strip(r.Regions[k]))
	}
	for _, c := range allCohorts {
		out += fmt.Sprintf("|%v %+v", c, strip(*r.Cohorts.at(c)))
	}
	for _, c := range []Comparison{r.Compare.MovedVsStayed, r.Compare.StayedVsPast} {
		out += fmt.Sprintf("|%s %+v %+v %v %v %s", c.Name, strip(c.A), strip(c.B), c.ErrorDeltaPoints, c.P99Delta, c.Verdict)
		for _, g := range c.Gates {
			out += fmt.Sprintf(" %+v", g)
		}
	}
	for _, c := range allCohorts {
		if s := *r.History.at(c); s != nil {
			b, _ := json.Marshal(s)
			out += "|" + string(b)
		}
	}
	return out
}

func TestMergeEqualsOneRecorder(t *testing.T) {
	clkAll := newFakeClock(t0)
	all := newTestSet(t, clkAll, Options{})
	recordStream(clkAll, all.Route(0), 0, 1)

	var parts []Snapshot
	for k := range 3 {
		clk := newFakeClock(t0)
		s := newTestSet(t, clk, Options{Instance: fmt.Sprint("gw-", k)})
		recordStream(clk, s.Route(0), k, 3)
		parts = append(parts, viaJSON(t, s.Snapshot(view())))
	}
	merged := Merge(parts...)
	want := all.Snapshot(view())
	if got, w := comparable(merged.Routes[0]), comparable(want.Routes[0]); got != w {
		t.Fatalf("merged:\n%s\none recorder:\n%s", got, w)
	}
	if fmt.Sprint(merged.Instances) != "[gw-0 gw-1 gw-2]" {
		t.Errorf("instances %v", merged.Instances)
	}
	// Associativity, through JSON at every step.
	left := Merge(viaJSON(t, Merge(parts[0], parts[1])), parts[2])
	right := Merge(parts[0], viaJSON(t, Merge(parts[1], parts[2])))
	lb, _ := json.Marshal(left)
	rb, _ := json.Marshal(right)
	if string(lb) != string(rb) {
		t.Fatalf("(a+b)+c != a+(b+c):\n%s\n%s", lb, rb)
	}
	// The inputs are not modified.
	again := Merge(parts...)
	ab, _ := json.Marshal(again)
	mb, _ := json.Marshal(merged)
	if string(ab) != string(mb) {
		t.Fatal("merging twice gave different results: the inputs changed")
	}
}

func TestMergeWithoutHistograms(t *testing.T) {
	var snaps []Snapshot
	var p99s []float64
	for k := range 2 {
		clk := newFakeClock(t0)
		s := newTestSet(t, clk, Options{})
		recordStream(clk, s.Route(0), k, 2)
		snap := s.Snapshot(View{History: -1})
		snaps = append(snaps, snap)
		p99s = append(p99s, snap.Routes[0].Cohorts.Stayed.P99)
	}
	m := Merge(snaps...)
	st := m.Routes[0].Cohorts.Stayed
	if st.P99 != max(p99s[0], p99s[1]) || st.Hist != nil {
		t.Errorf("p99 merged without histograms: %v from %v", st.P99, p99s)
	}
	for _, c := range []Comparison{m.Routes[0].Compare.MovedVsStayed, m.Routes[0].Compare.StayedVsPast} {
		if c.Gates[1].Outcome != Inconclusive {
			t.Errorf("%s: latency gate %s without histograms", c.Name, c.Gates[1].Outcome)
		}
	}
}

func TestMergeTopSourcesKeepsBounds(t *testing.T) {
	truth := map[string]uint64{}
	var lists []topList
	for inst := range 3 {
		tk := NewTopK(16)
		for _, key := range zipfKeys(20_000, 500+uint64(inst)*100) {
			tk.Add(key, 1)
			truth[string(key)]++
		}
		top, floor := tk.Top(0)
		lists = append(lists, topList{top, floor})
	}
	merged, floor := mergeTop(lists)
	if len(merged) != 16 {
		t.Fatalf("%d merged rows, want 16", len(merged))
	}
	listed := map[string]bool{}
	for _, row := range merged {
		listed[row.Source] = true
		tr := truth[row.Source]
		if row.Count < tr || row.Count-row.Error > tr {
			t.Errorf("%s: %d ± %d does not bound the true %d", row.Source, row.Count, row.Error, tr)
		}
	}
	for key, c := range truth {
		if !listed[key] && c > floor {
			t.Errorf("%s seen %d > floor %d times is missing", key, c, floor)
		}
	}
	// Worked example: "a" is on both, "b" only on the first (second's floor 2).
	m, f := mergeTop([]topList{
		{[]Source{{"a", 10, 1}, {"b", 5, 0}}, 0},
		{[]Source{{"a", 7, 2}, {"c", 3, 2}}, 2},
	})
	want := []Source{{"a", 17, 3}, {"b", 7, 2}}
	if fmt.Sprint(m) != fmt.Sprint(want) || f != 3 {
		t.Errorf("merged %v floor %d, want %v floor 3 (c cut at 3)", m, f, want)
	}
}
