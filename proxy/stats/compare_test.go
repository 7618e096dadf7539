package stats

import (
	"testing"
	"time"
)

// TestComparisonsFromWindows drives both comparisons through recorded traffic: the
// last minute against the same minute (moved vs stayed) and against the 9 minutes
// before (stayed vs past).
func TestComparisonsFromWindows(t *testing.T) {
	type phase struct {
		cohort        Cohort
		from, to      int64 // seconds after t0
		perSec, errEv int   // requests per second; every errEv-th errs (0: none)
		lat           float64
	}
	record := func(clk *fakeClock, r *Route, ps []phase) {
		for _, p := range ps {
			region := regOld
			if p.cohort == Moved {
				region = regNew
			}
			for sec := t0.Unix() + p.from; sec < t0.Unix()+p.to; sec++ {
				clk.Set(time.Unix(sec, 0))
				for i := range p.perSec {
					r.Record(p.cohort, region, p.errEv > 0 && i%p.errEv == 0, ms(p.lat), 0, 0)
				}
			}
		}
	}
	for _, c := range []struct {
		name              string
		phases            []phase
		movedVsStayed     Outcome
		stayedVsPast      Outcome
		movedReq, pastReq uint64
	}{
		{
			name: "few samples are inconclusive, never pass",
			phases: []phase{
				{Stayed, 0, 600, 1, 0, 10},
				{Moved, 540, 600, 1, 0, 10},
			},
			movedVsStayed: Inconclusive, stayedVsPast: Inconclusive, movedReq: 60, pastReq: 540,
		},
		{
			name: "healthy move",
			phases: []phase{
				{Stayed, 0, 600, 40, 100, 10},
				{Moved, 540, 600, 40, 100, 11},
			},
			movedVsStayed: Pass, stayedVsPast: Pass, movedReq: 2400, pastReq: 21600,
		},
		{
			name: "the move breaks things",
			phases: []phase{
				{Stayed, 0, 600, 40, 100, 10},
				{Moved, 540, 600, 40, 20, 30}, // 5 % errors, 3× slower
			},
			movedVsStayed: Fail, stayedVsPast: Pass, movedReq: 2400, pastReq: 21600,
		},
		{
			name: "the old region breaks on its own",
			phases: []phase{
				{Stayed, 0, 540, 40, 100, 10},
				{Stayed, 540, 600, 40, 20, 30},
				{Moved, 540, 600, 40, 20, 30},
			},
			movedVsStayed: Pass, stayedVsPast: Fail, movedReq: 2400, pastReq: 21600,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := newFakeClock(t0)
			s := newTestSet(t, clk, Options{})
			record(clk, s.Route(0), c.phases)
			clk.Set(t0.Add(600*time.Second + 100*time.Millisecond))
			snap := s.Snapshot(View{History: -1})
			cmp := snap.Routes[0].Compare
			if cmp.MovedVsStayed.Verdict != c.movedVsStayed {
				t.Errorf("moved vs stayed: %s %+v", cmp.MovedVsStayed.Verdict, cmp.MovedVsStayed.Gates)
			}
			if cmp.StayedVsPast.Verdict != c.stayedVsPast {
				t.Errorf("stayed vs past: %s %+v", cmp.StayedVsPast.Verdict, cmp.StayedVsPast.Gates)
			}
			if got := cmp.MovedVsStayed.A.Requests; got != c.movedReq {
				t.Errorf("moved window holds %d, want %d", got, c.movedReq)
			}
			if got := cmp.StayedVsPast.B.Requests; got != c.pastReq {
				t.Errorf("past window holds %d, want %d", got, c.pastReq)
			}
			if a, b := cmp.MovedVsStayed.A, cmp.MovedVsStayed.B; a.From != b.From || a.To != b.To || a.To != t0.Unix()+600 {
				t.Errorf("windows differ or end wrong: [%d,%d) [%d,%d)", a.From, a.To, b.From, b.To)
			}
			if cmp.StayedVsPast.B.To != cmp.StayedVsPast.A.From {
				t.Errorf("past window does not end where now starts")
			}
		})
	}
}

func TestCompareDeltas(t *testing.T) {
	a := latencies(1000, ms(20))
	a.Errors = 20
	b := latencies(1000, ms(10))
	b.Errors = 10
	cmp := Compare(MovedVsStayed, Criteria{}, a, b, false)
	if !near(cmp.ErrorDeltaPoints, 1, 1e-9) {
		t.Errorf("error delta %v points, want 1", cmp.ErrorDeltaPoints)
	}
	if !near(cmp.P99Delta, 19.968/9.984-1, 1e-6) {
		t.Errorf("p99 delta %v", cmp.P99Delta)
	}
	if cmp.A.Hist != nil {
		t.Error("histogram kept without keepHist")
	}
	if len(cmp.Gates) != 2 || cmp.Verdict != Fail {
		t.Errorf("verdict %s from %+v", cmp.Verdict, cmp.Gates)
	}
	if worse(Pass, Inconclusive) != Inconclusive || worse(Fail, Inconclusive) != Fail || worse(Pass, Pass) != Pass {
		t.Error("worse() order")
	}
}
