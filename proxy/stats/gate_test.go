package stats

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func near(a, b, eps float64) bool { return math.Abs(a-b) <= eps }

func TestZAndWilson(t *testing.T) {
	if z := zOneSided(0.95); !near(z, 1.644854, 1e-6) {
		t.Errorf("z(0.95) = %v", z)
	}
	if z := zOneSided(0.99); !near(z, 2.326348, 1e-6) {
		t.Errorf("z(0.99) = %v", z)
	}
	for _, c := range []struct {
		x, n   uint64
		lo, hi float64
	}{
		{10, 100, 0.055229, 0.174366}, // the textbook example
		{0, 50, 0, 0.071348},
		{50, 50, 0.928652, 1},
		{0, 0, 0, 1},
	} {
		lo, hi := Wilson(c.x, c.n, 0.95)
		if !near(lo, c.lo, 1e-6) || !near(hi, c.hi, 1e-6) {
			t.Errorf("Wilson(%d/%d) = [%.6f, %.6f], want [%.6f, %.6f]", c.x, c.n, lo, hi, c.lo, c.hi)
		}
	}
	for _, c := range []struct {
		me, mn, se, sn uint64
		z              float64
	}{
		{150, 10000, 50, 10000, 7.1067},
		{12, 1000, 5, 1000, 1.7050},
		{5, 1000, 12, 1000, -1.7050},
		{0, 100, 0, 100, 0},
		{100, 100, 100, 100, 0},
		{1, 0, 0, 10, 0},
	} {
		if z := TwoProportionZ(c.me, c.mn, c.se, c.sn); !near(z, c.z, 1e-4) {
			t.Errorf("z(%d/%d vs %d/%d) = %.4f, want %.4f", c.me, c.mn, c.se, c.sn, z, c.z)
		}
	}
}

// TestErrorGate works through the decision rule: fail needs moved ≥ stayed + 0.5
// points, moved ≥ 1.5 × stayed and z ≥ 1.645 (95 %, one-sided), with ≥ 1000 requests
// on each side.
func TestErrorGate(t *testing.T) {
	req := func(errs, n uint64) Counts { return Counts{Requests: n, Errors: errs} }
	for _, c := range []struct {
		name          string
		crit          ErrorCriteria
		moved, stayed Counts
		want          Outcome
	}{
		// 1.5 % vs 0.5 %: +1 point, ×3, z = 7.11.
		{"clear regression", ErrorCriteria{}, req(150, 10000), req(50, 10000), Fail},
		// 1.2 % vs 0.5 %: +0.7 points, ×2.4, z = 1.705 ≥ 1.645 ...
		{"just significant", ErrorCriteria{}, req(12, 1000), req(5, 1000), Fail},
		// ... but < 2.326 at 99 %.
		{"not significant at 99%", ErrorCriteria{Confidence: 0.99}, req(12, 1000), req(5, 1000), Inconclusive},
		// 1.4 % vs 1.0 %: z = 2.60 is significant, but +0.4 points is below the floor.
		{"significant but small", ErrorCriteria{}, req(140, 10000), req(100, 10000), Pass},
		// 1.6 % vs 1.0 %: +0.6 points, ×1.6, z = 3.75.
		{"over both floors", ErrorCriteria{}, req(160, 10000), req(100, 10000), Fail},
		// 9 % vs 8 %: +1 point and z = 2.54, but ×1.125 < 1.5.
		{"under the ratio floor", ErrorCriteria{}, req(900, 10000), req(800, 10000), Pass},
		// 1.0 % vs 0.5 %: exactly +0.5 points and ×2, but z = 1.30.
		{"at the floor, not significant", ErrorCriteria{}, req(10, 1000), req(5, 1000), Inconclusive},
		// 1.5 % vs 0 %: any ratio is ≥ 1.5 × 0; z = 5.50.
		{"stayed has no errors", ErrorCriteria{}, req(30, 2000), req(0, 2000), Fail},
		{"moved better", ErrorCriteria{}, req(5, 1000), req(12, 1000), Pass},
		{"no errors at all", ErrorCriteria{}, req(0, 5000), req(0, 5000), Pass},
		{"too few moved", ErrorCriteria{}, req(999, 999), req(0, 5000), Inconclusive},
		{"too few stayed", ErrorCriteria{}, req(0, 5000), req(0, 10), Inconclusive},
		{"nothing at all", ErrorCriteria{}, Counts{}, Counts{}, Inconclusive},
		{"lower minimum", ErrorCriteria{MinRequests: 10}, req(5, 20), req(0, 20), Fail},
		// A 1-point floor: +1 point passes the floor, +0.6 does not.
		{"1-point floor, +1", ErrorCriteria{FloorPoints: 1}, req(150, 10000), req(50, 10000), Fail},
		{"1-point floor, +0.6", ErrorCriteria{FloorPoints: 1}, req(160, 10000), req(100, 10000), Pass},
		// A 4× ratio floor: ×3 passes.
		{"4x ratio floor", ErrorCriteria{FloorRatio: 4}, req(150, 10000), req(50, 10000), Pass},
	} {
		g := ErrorGate(c.crit, c.moved, c.stayed)
		if g.Outcome != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, g.Outcome, g.Reason, c.want)
		}
		if g.Samples != (Samples{Moved: c.moved.Requests, Stayed: c.stayed.Requests}) {
			t.Errorf("%s: samples %+v", c.name, g.Samples)
		}
		if g.Moved != c.moved.ErrorRatio() || g.Stayed != c.stayed.ErrorRatio() {
			t.Errorf("%s: readings %v %v", c.name, g.Moved, g.Stayed)
		}
		if c.moved.Requests > 0 && (g.MovedCI[0] > g.Moved || g.MovedCI[1] < g.Moved) {
			t.Errorf("%s: moved interval %v misses %v", c.name, g.MovedCI, g.Moved)
		}
	}
}

// latencies returns a tally of n each of the given latencies.
func latencies(pairs ...any) Tally {
	var t Tally
	for i := 0; i < len(pairs); i += 2 {
		n, d := pairs[i].(int), pairs[i+1].(time.Duration)
		for range n {
			t.Hist.Observe(d)
		}
		t.Requests += uint64(n)
	}
	return t
}

// TestLatencyGate works through p99 with tolerance 1.25 at 95 %. On the grid, 10 ms
// falls in [9.728, 10.240) ms, reported 9.984; 14 ms in [13.824, 14.336), reported
// 14.080. With 1000 values, p99 is rank 990 and its interval ranks 984..996.
func TestLatencyGate(t *testing.T) {
	stayed := latencies(1000, ms(10))
	for _, c := range []struct {
		name          string
		crit          LatencyCriteria
		moved, stayed Tally
		want          Outcome
		movedMs       float64
	}{
		{"11ms within 1.25 × 9.984", LatencyCriteria{}, latencies(1000, ms(11)), stayed, Pass, 11.008},
		{"20ms far above", LatencyCriteria{}, latencies(1000, ms(20)), stayed, Fail, 19.968},
		// p99 is 14.08 > 12.48, but rank 984 is still 10 ms: 9.728 < 10.24 × 1.25.
		{"tail above, interval overlaps", LatencyCriteria{}, latencies(985, ms(10), 15, ms(14)), stayed, Inconclusive, 14.08},
		// Ranks 981..1000 are 14 ms: 13.824 > 12.8.
		{"tail above, interval clear", LatencyCriteria{}, latencies(980, ms(10), 20, ms(14)), stayed, Fail, 14.08},
		{"too few moved", LatencyCriteria{}, latencies(999, ms(50)), stayed, Inconclusive, 50.176},
		{"no stayed", LatencyCriteria{}, latencies(1000, ms(50)), Tally{}, Inconclusive, 50.176},
		{"slack for the round trip", LatencyCriteria{Slack: 30 * time.Millisecond}, latencies(1000, ms(40)), stayed, Pass, 39.936},
		{"tolerance 2", LatencyCriteria{Tolerance: 2}, latencies(1000, ms(19)), stayed, Pass, 18.944},
		{"p50", LatencyCriteria{Quantile: 0.5}, latencies(600, ms(10), 400, ms(20)), stayed, Pass, 9.984},
	} {
		g := LatencyGate(c.crit, c.moved, c.stayed)
		if g.Outcome != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, g.Outcome, g.Reason, c.want)
		}
		if !near(g.Moved, c.movedMs, 1e-9) {
			t.Errorf("%s: moved reading %v ms, want %v", c.name, g.Moved, c.movedMs)
		}
		if c.stayed.Hist.Count() > 0 && !near(g.Stayed, 9.984, 1e-9) {
			t.Errorf("%s: stayed reading %v ms", c.name, g.Stayed)
		}
	}
}

func TestGateJSONShape(t *testing.T) {
	g := ErrorGate(ErrorCriteria{}, Counts{Requests: 2000, Errors: 40}, Counts{Requests: 2000, Errors: 10})
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "outcome", "moved", "stayed", "samples"} {
		if _, ok := m[k]; !ok {
			t.Errorf("gate JSON lacks %q: %s", k, b)
		}
	}
	if m["outcome"] != "fail" || m["name"] != "error_ratio" || m["moved"] != 0.02 {
		t.Errorf("gate JSON %s", b)
	}
	if s, _ := m["samples"].(map[string]any); s["moved"] != 2000.0 || s["stayed"] != 2000.0 {
		t.Errorf("samples %v", m["samples"])
	}
}
