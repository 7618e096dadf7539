package stats

import (
	"math"
	"testing"
	"time"
)

// recordEach records n stayed requests at each of the seconds [from, to), errors on
// every tenth, with latency ms(lat).
func recordEach(clk *fakeClock, r *Route, c Cohort, from, to int64, n int, lat float64) {
	for sec := from; sec < to; sec++ {
		clk.Set(time.Unix(sec, 0).Add(500 * time.Millisecond))
		for i := range n {
			r.Record(c, regOld, i%10 == 0, ms(lat), 1, 1)
		}
	}
}

func TestWindowSumsSeconds(t *testing.T) {
	clk := newFakeClock(t0)
	s := newTestSet(t, clk, Options{})
	r := s.Route(0)
	base := t0.Unix()
	recordEach(clk, r, Stayed, base, base+30, 10, 5)   // 30 s × 10
	recordEach(clk, r, Moved, base+10, base+20, 20, 9) // 10 s × 20
	clk.Set(time.Unix(base+40, 0))

	for _, c := range []struct {
		name     string
		cohort   Cohort
		from, to int64
		want     Counts
	}{
		{"all stayed", Stayed, base, base + 40, Counts{300, 30, 300, 300}},
		{"stayed 5..15", Stayed, base + 5, base + 15, Counts{100, 10, 100, 100}},
		{"moved", Moved, base, base + 40, Counts{200, 20, 200, 200}},
		{"empty span", Moved, base + 20, base + 30, Counts{}},
		{"backwards", Stayed, base + 20, base + 10, Counts{}},
		{"future", Stayed, base + 100, base + 200, Counts{}},
	} {
		w := s.Window(0, c.cohort, time.Unix(c.from, 0), time.Unix(c.to, 0))
		if w.Counts != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, w.Counts, c.want)
		}
		if w.Hist.Count() != c.want.Requests {
			t.Errorf("%s: histogram holds %d", c.name, w.Hist.Count())
		}
	}
	w := s.Window(0, Moved, t0, t0.Add(time.Hour))
	if p99 := w.Hist.Quantile(0.99); math.Abs(float64(p99-ms(9)))/float64(ms(9)) > 0.125 {
		t.Errorf("moved window p99 %v, want 9ms ± 12.5%%", p99)
	}
	// Failover keeps counts but no per-second latencies.
	recordEach(clk, r, Failover, base+40, base+41, 3, 50)
	if w := s.Window(0, Failover, t0, t0.Add(time.Hour)); w.Requests != 3 || w.Hist.Count() != 0 {
		t.Errorf("failover window: %d requests, %d latencies", w.Requests, w.Hist.Count())
	}
}

func TestRingWrapsAround(t *testing.T) {
	clk := newFakeClock(t0)
	s := newTestSet(t, clk, Options{Seconds: 10})
	r := s.Route(0)
	base := t0.Unix()
	recordEach(clk, r, Stayed, base, base+10, 1, 5) // fills the ring: seconds base..base+9
	recordEach(clk, r, Stayed, base+10, base+13, 7, 5)

	// Now base+12: the ring holds base+2..base+12; base and base+1 were overwritten.
	got := s.Window(0, Stayed, time.Unix(base, 0), time.Unix(base+13, 0))
	if got.Requests != 8*1+3*7 {
		t.Fatalf("after the wrap: %d requests, want 29", got.Requests)
	}
	if got.From.Unix() != base+2 || got.To.Unix() != base+13 {
		t.Fatalf("clipped to [%d, %d), want [%d, %d)", got.From.Unix()-base, got.To.Unix()-base, 2, 13)
	}
	// The slot of base+0 (12 slots) now holds base+12: asking for base gets nothing.
	if w := r.window(Stayed, base, base+1, base+12); w.Requests != 0 {
		t.Fatalf("a reused slot answered for its old second: %d", w.Requests)
	}
	// The cumulative counts keep everything.
	if tot := s.Totals(0, Stayed); tot.Requests != 31 {
		t.Fatalf("totals %d, want 31", tot.Requests)
	}
}

func TestRingAfterIdleGap(t *testing.T) {
	clk := newFakeClock(t0)
	s := newTestSet(t, clk, Options{Seconds: 10})
	r := s.Route(0)
	base := t0.Unix()
	recordEach(clk, r, Stayed, base, base+1, 5, 5)
	// Much later the slot of base comes round again, holding base's counts, and
	// unprepared since nothing was recorded the second before.
	later := base + 100*int64(len(r.sec.slots))
	if r.sec.at(later) != r.sec.at(base) {
		t.Fatal("test maths: not the same slot")
	}
	recordEach(clk, r, Stayed, later, later+1, 2, 5)
	if w := s.Window(0, Stayed, time.Unix(later-10, 0), time.Unix(later+1, 0)); w.Requests != 2 {
		t.Fatalf("after an idle gap the slot holds %d, want 2", w.Requests)
	}
	// A request whose clock read is stale (its slot moved on to a later second)
	// counts in the totals only.
	clk.Set(time.Unix(later-int64(len(r.sec.slots)), 0))
	r.Record(Stayed, regOld, false, ms(1), 0, 0)
	clk.Set(time.Unix(later, 0))
	if w := s.Window(0, Stayed, time.Unix(later-10, 0), time.Unix(later+1, 0)); w.Requests != 2 {
		t.Fatalf("a stale request landed in the ring: %d", w.Requests)
	}
	if tot := s.Totals(0, Stayed); tot.Requests != 8 {
		t.Fatalf("totals %d, want 8", tot.Requests)
	}
}

func TestHistoryPerSecond(t *testing.T) {
	clk := newFakeClock(t0)
	s := newTestSet(t, clk, Options{})
	r := s.Route(0)
	base := t0.Unix()
	for i := range int64(5) {
		recordEach(clk, r, Stayed, base+i, base+i+1, int(i+1)*10, float64(10*(i+1)))
	}
	clk.Set(time.Unix(base+5, 300_000_000)) // the current second, base+5, is left out
	h := s.History(0, Stayed, 5*time.Second, time.Second)
	if len(h.T) != 5 || h.T[0] != base || h.T[4] != base+4 {
		t.Fatalf("times %v", h.T)
	}
	for i := range 5 {
		if h.Req[i] != uint64(i+1)*10 || h.Err[i] != uint64(i+1) {
			t.Errorf("second %d: %d requests %d errors", i, h.Req[i], h.Err[i])
		}
		want := float64(10 * (i + 1))
		if math.Abs(h.P99[i]-want)/want > 0.125 {
			t.Errorf("second %d: p99 %v ms, want %v ± 12.5%%", i, h.P99[i], want)
		}
	}
	// 2 s steps sum pairs, ending with the last complete second: [+1,+3) and [+3,+5).
	h2 := s.History(0, Stayed, 4*time.Second, 2*time.Second)
	if len(h2.Req) != 2 || h2.T[0] != base+1 || h2.Req[0] != 20+30 || h2.Req[1] != 40+50 {
		t.Errorf("2 s steps: %v at %v", h2.Req, h2.T)
	}
	// Failover has no p99.
	hf := s.History(0, Failover, 3*time.Second, time.Second)
	for _, q := range hf.P99 {
		if !math.IsNaN(q) {
			t.Errorf("failover p99 %v, want NaN", q)
		}
	}
}

func TestTenSecondRingKeepsWhatTheSecondRingLost(t *testing.T) {
	clk := newFakeClock(t0)
	s := newTestSet(t, clk, Options{Seconds: 30, TenSeconds: 12})
	r := s.Route(0)
	base := t0.Unix()                                  // a multiple of 10: blocks start at base, base+10, ...
	recordEach(clk, r, Stayed, base, base+20, 3, 20)   // blocks 0 and 1
	recordEach(clk, r, Moved, base+10, base+20, 1, 40) // block 1
	clk.Set(time.Unix(base+22, 0))
	s.Tick()                                            // rolls blocks 0 and 1
	recordEach(clk, r, Stayed, base+22, base+27, 3, 20) // block 2, rolled once complete
	// Tick with no traffic after, then move far beyond the 1 s ring.
	clk.Set(time.Unix(base+32, 0))
	s.Tick()
	clk.Set(time.Unix(base+100, 0))
	s.Tick() // nothing left in the 1 s ring to roll; blocks 0..2 stay
	if w := s.Window(0, Stayed, t0, t0.Add(time.Hour)); w.Requests != 0 {
		t.Fatalf("the 1 s ring still holds %d", w.Requests)
	}
	h := s.History(0, Stayed, 100*time.Second, 10*time.Second)
	if len(h.T) != 10 {
		t.Fatalf("%d steps, want 10", len(h.T))
	}
	byT := map[int64]int{}
	for i, ts := range h.T {
		byT[ts] = i
	}
	for _, c := range []struct {
		block int64
		req   uint64
	}{{0, 30}, {10, 30}, {20, 15}, {30, 0}} {
		i, ok := byT[base+c.block]
		if !ok {
			t.Fatalf("no step at +%d: %v", c.block, h.T)
		}
		if h.Req[i] != c.req || h.Err[i] != c.req/3 {
			t.Errorf("block +%d: %d requests %d errors, want %d, %d", c.block, h.Req[i], h.Err[i], c.req, c.req/3)
		}
		if c.req > 0 && math.Abs(h.P99[i]-20)/20 > 0.125 {
			t.Errorf("block +%d: p99 %v, want 20ms", c.block, h.P99[i])
		}
	}
	hm := s.History(0, Moved, 100*time.Second, 10*time.Second)
	if i := byT[base+10]; hm.Req[i] != 10 || math.Abs(hm.P99[i]-40)/40 > 0.125 {
		t.Errorf("moved block: %d requests p99 %v", hm.Req[i], hm.P99[i])
	}
	// 20 s steps take the larger p99 of two blocks and sum their counts.
	h20 := s.History(0, Stayed, 100*time.Second, 20*time.Second)
	var sum uint64
	for _, n := range h20.Req {
		sum += n
	}
	if sum != 75 {
		t.Errorf("20 s steps sum to %d, want 75", sum)
	}
}

func TestRollUpIsIdempotent(t *testing.T) {
	clk := newFakeClock(t0)
	s := newTestSet(t, clk, Options{})
	r := s.Route(0)
	base := t0.Unix()
	recordEach(clk, r, Stayed, base, base+10, 2, 5)
	clk.Set(time.Unix(base+13, 0))
	for range 3 {
		s.Tick()
	}
	r.roll.mu.Lock()
	b, ok := r.roll.block10(base / 10)
	r.roll.mu.Unlock()
	if !ok || b.c[Stayed].req != 20 {
		t.Fatalf("block: ok=%v %+v", ok, b)
	}
	// An idle route allocates no 10 s ring.
	idle := newTestSet(t, newFakeClock(t0.Add(time.Hour)), Options{})
	idle.Tick()
	if idle.Route(0).roll.ring != nil {
		t.Fatal("an idle route allocated its 10 s ring")
	}
}
