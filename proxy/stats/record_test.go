package stats

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestRecordCountsPerCohortAndRegion(t *testing.T) {
	clk := newFakeClock(t0)
	s := newTestSet(t, clk, Options{})
	r := s.Route(0)
	r.Record(Moved, regNew, false, ms(20), 100, 1000)
	r.Record(Moved, regNew, true, ms(40), 10, 20)
	r.Record(Stayed, regOld, false, ms(10), 1, 2)
	r.Record(Failover, regOld, false, ms(90), 0, 0)
	r.Record(Fallback, regNew, true, ms(1), 0, 5)
	// Ignored: bad cohort, bad region, nil route, out-of-range route.
	r.Record(Cohort(9), regOld, true, ms(1), 1, 1)
	r.Record(Stayed, 2, true, ms(1), 1, 1)
	r.Record(Stayed, -1, true, ms(1), 1, 1)
	s.Route(5).Record(Stayed, regOld, true, ms(1), 1, 1)
	var nilRoute *Route
	nilRoute.Record(Stayed, regOld, true, ms(1), 1, 1)
	nilRoute.ObserveSource([]byte("x"))

	for _, c := range []struct {
		cohort Cohort
		want   Counts
	}{
		{Moved, Counts{Requests: 2, Errors: 1, BytesIn: 110, BytesOut: 1020}},
		{Stayed, Counts{Requests: 1, BytesIn: 1, BytesOut: 2}},
		{Failover, Counts{Requests: 1}},
		{Fallback, Counts{Requests: 1, Errors: 1, BytesOut: 5}},
	} {
		got := s.Totals(0, c.cohort)
		if got.Counts != c.want {
			t.Errorf("%v totals %+v, want %+v", c.cohort, got.Counts, c.want)
		}
		if got.Hist.Count() != c.want.Requests {
			t.Errorf("%v histogram holds %d, want %d", c.cohort, got.Hist.Count(), c.want.Requests)
		}
		w := s.Window(0, c.cohort, t0, t0.Add(time.Second))
		if w.Counts != c.want {
			t.Errorf("%v window %+v, want %+v", c.cohort, w.Counts, c.want)
		}
	}
	if got := s.Totals(0, Moved).Hist.Quantile(1); got < ms(39) || got > ms(41) {
		t.Errorf("moved p100 = %v, want about 40ms", got)
	}
	if got := r.cellTotals(numCohorts, regOld).Counts; got != (Counts{Requests: 2, BytesIn: 1, BytesOut: 2}) {
		t.Errorf("region old: %+v", got)
	}
	if got := s.Totals(7, Moved); got.Requests != 0 {
		t.Errorf("totals of a route out of range: %+v", got)
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	clk := newFakeClock(t0)
	key := []byte("198.51.100.0/24")
	for _, c := range []struct {
		name   string
		tick   time.Duration // clock move per call: 0, or across seconds (ring rotation)
		sample int
	}{
		{"same second", 0, 1},
		{"new second each call", time.Second, 1},
		{"idle gap each call", time.Hour, 1},
		{"sampled sources", time.Millisecond, 16},
	} {
		r := newTestSet(t, clk, Options{TopSample: c.sample, TopK: 2}).Route(0)
		allocs := testing.AllocsPerRun(1000, func() {
			clk.Add(c.tick)
			r.Record(Moved, regNew, false, ms(12), 300, 4000)
			r.Record(Stayed, regOld, true, ms(9), 300, 4000)
			r.Record(Failover, regOld, false, ms(50), 300, 4000)
			r.ObserveSource(key)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per request, want 0", c.name, allocs)
		}
	}
}

// TestConcurrentRecord runs recorders against a clock that moves and readers that
// snapshot, for the race detector; the cumulative counts must come out exact.
func TestConcurrentRecord(t *testing.T) {
	clk := newFakeClock(t0)
	s := newTestSet(t, clk, Options{Seconds: 8, TenSeconds: 4, TopK: 4})
	r := s.Route(0)
	const workers, per = 4, 5000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var aux sync.WaitGroup
	aux.Add(1)
	go func() { // the clock and the control plane
		defer aux.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			clk.Add(300 * time.Millisecond)
			s.Snapshot(View{History: 5 * time.Second})
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []byte{byte('a' + w)}
			for i := range per {
				r.Record(Cohort(i%int(numCohorts)), i%2, i%10 == 0, time.Duration(i)*time.Microsecond, 1, 2)
				r.ObserveSource(key)
			}
		}()
	}
	wg.Wait()
	close(stop)
	aux.Wait()
	var total Counts
	for _, c := range allCohorts {
		total.add(s.Totals(0, c).Counts)
	}
	want := Counts{Requests: workers * per, Errors: workers * per / 10, BytesIn: workers * per, BytesOut: 2 * workers * per}
	if total != want {
		t.Fatalf("totals %+v, want %+v", total, want)
	}
	if got := r.TopSources().Total(); got != workers*per {
		t.Fatalf("top-K saw %d, want %d", got, workers*per)
	}
}

// TestConcurrentRecordSameSecond: with the clock still, nothing is lost from the ring
// either, whether the slot is fresh, prepared by the second before, or cleared on
// demand after a quiet spell (where only the totals are exact: see TestSlotTake).
func TestConcurrentRecordSameSecond(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(clk *fakeClock, r *Route) // runs at t0-5s
		exact bool
	}{
		{"fresh ring", func(*fakeClock, *Route) {}, true},
		{"prepared by the second before", func(clk *fakeClock, r *Route) {
			clk.Set(t0.Add(-time.Second))
			r.Record(Moved, regNew, false, ms(1), 0, 0)
		}, true},
		{"after a quiet spell", func(clk *fakeClock, r *Route) {
			clk.Set(t0.Add(-time.Duration(len(r.sec.slots)) * time.Second))
			r.Record(Moved, regNew, false, ms(1), 0, 0)
		}, false},
	} {
		clk := newFakeClock(t0.Add(-5 * time.Second))
		s := newTestSet(t, clk, Options{})
		r := s.Route(0)
		c.setup(clk, r)
		clk.Set(t0)
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 2000 {
					r.Record(Stayed, regOld, false, ms(3), 0, 0)
				}
			}()
		}
		wg.Wait()
		w := s.Window(0, Stayed, t0, t0.Add(time.Second))
		if c.exact && (w.Requests != 8000 || w.Hist.Count() != 8000) {
			t.Errorf("%s: window holds %d requests, %d latencies; want 8000", c.name, w.Requests, w.Hist.Count())
		}
		if w.Requests > 8000 || w.Hist.Count() != w.Requests {
			t.Errorf("%s: window holds %d requests, %d latencies", c.name, w.Requests, w.Hist.Count())
		}
		if tot := s.Totals(0, Stayed).Requests; tot != 8000 {
			t.Errorf("%s: totals %d, want 8000", c.name, tot)
		}
	}
}

// TestSlotTake walks a slot through its states by hand: a request that finds it being
// cleared waits for the clearing to end, or gives up after maxYields.
func TestSlotTake(t *testing.T) {
	g := newRing1(4)
	s := g.at(100)
	if !s.take(100, false) || s.epoch.Load() != 100 {
		t.Fatal("an unused slot was not taken")
	}
	s.c[Stayed].reqErr.Store(7)
	if s.take(99, true) {
		t.Fatal("a stale second took a newer slot")
	}
	if !s.take(106, false) || s.c[Stayed].reqErr.Load() != 0 {
		t.Fatal("reusing a slot did not clear it")
	}

	s.epoch.Store(claimed) // another request is clearing it
	if s.take(112, false) {
		t.Fatal("take without waiting waited")
	}
	yields := 0
	yield = func() { // the clearing request finishes during the third wait
		if yields++; yields == 3 {
			s.epoch.Store(112)
		}
	}
	defer func() { yield = runtime.Gosched }()
	if !s.take(112, true) || yields != 3 {
		t.Fatalf("a waiting take gave up on a slot that became its second (after %d yields)", yields)
	}
	yields = 0
	yield = func() { yields++ }
	s.epoch.Store(claimed) // a clearer that never finishes
	if s.take(118, true) || yields != maxYields {
		t.Fatalf("take on a slot claimed for good: yielded %d times, want %d, then give up", yields, maxYields)
	}
}

func BenchmarkRecord(b *testing.B) {
	clk := newFakeClock(t0)
	s := newTestSet(b, clk, Options{})
	r := s.Route(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Record(Stayed, regOld, i%100 == 0, time.Duration(i%50_000)*time.Microsecond, 512, 4096)
	}
}

// BenchmarkRecordClock is Record with the coarse Clock the proxy would use.
func BenchmarkRecordClock(b *testing.B) {
	c := NewClock(100 * time.Millisecond)
	defer c.Stop()
	s, _ := NewRegistry(Options{Now: c.Now}).Bind(twoRegions)
	r := s.Route(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.Record(Stayed, regOld, i%100 == 0, time.Duration(i%50_000)*time.Microsecond, 512, 4096)
	}
}

// BenchmarkRecordParallel has every core record on one route: the worst case for
// the shared counters' cache lines.
func BenchmarkRecordParallel(b *testing.B) {
	c := NewClock(100 * time.Millisecond)
	defer c.Stop()
	s, _ := NewRegistry(Options{Now: c.Now}).Bind(twoRegions)
	r := s.Route(0)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			r.Record(Cohort(i&1), i&1, false, time.Duration(i%50_000)*time.Microsecond, 512, 4096)
		}
	})
}

func BenchmarkObserveSource(b *testing.B) {
	for _, sample := range []int{1, 16} {
		b.Run("1in"+itoa(sample), func(b *testing.B) {
			s, _ := NewRegistry(Options{Now: time.Now, TopSample: sample}).Bind(twoRegions)
			r := s.Route(0)
			keys := zipfKeys(4096, 10_000)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.ObserveSource(keys[i&4095])
			}
		})
	}
}
