package loadtest

import (
	"math"
	"strings"
	"testing"
)

func TestMedianAndSpread(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want spread
	}{
		{nil, spread{}},
		{[]float64{5}, spread{5, 5, 5, 1}},
		{[]float64{3, 1, 2}, spread{2, 1, 3, 3}},
		{[]float64{4, 1, 3, 2}, spread{2.5, 1, 4, 4}},
	} {
		if got := spreadOf(tc.in); got != tc.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// samplesFor builds samples in which shiftgate's figures are a fixed multiple of the
// peers', so the ratios are known by construction.
func samplesFor() []benchSample {
	var out []benchSample
	for round := 1; round <= 3; round++ {
		f := float64(round) // the level drifts by round; ratios within a round do not
		out = append(out,
			benchSample{Round: round, Target: targetDirect, Conns: 64, RPS: 50000 * f, P99MS: 1},
			benchSample{Round: round, Target: targetNginx, Conns: 64, RPS: 10000 * f, P99MS: 4, ReqPerCPU: 20000, CPUS: 1, SysCPUS: 0.85, RSSMiB: 9},
			benchSample{Round: round, Target: targetHAProxy, Conns: 64, RPS: 8000 * f, P99MS: 5, ReqPerCPU: 16000, CPUS: 1, RSSMiB: 15},
			benchSample{Round: round, Target: targetShiftgate, Conns: 64, RPS: 12000 * f, P99MS: 2 + float64(round-1), ReqPerCPU: 24000, CPUS: 1, SysCPUS: 0.5 + f/10, RSSMiB: 20, Errors: 1, StealPct: 2 * f},
		)
	}
	return out
}

func TestSummarize(t *testing.T) {
	rep := summarize(samplesFor(), []string{targetDirect, targetNginx, targetHAProxy, targetShiftgate}, []int{64, 256})
	if len(rep.Summary) != 4 {
		t.Fatalf("summary rows %d, want 4 (no samples at 256)", len(rep.Summary))
	}
	sg := rep.Summary[3]
	if sg.Target != targetShiftgate || sg.Rounds != 3 || sg.RPS != 24000 || sg.P99MS != 3 || sg.Errors != 3 {
		t.Errorf("shiftgate summary %+v", sg)
	}
	// Kernel share: shiftgate 60, 70, 80 % by round, nginx 85 % in each.
	if math.Abs(sg.KernelPct-70) > 1e-9 || math.Abs(rep.Summary[1].KernelPct-85) > 1e-9 || rep.Summary[0].KernelPct != 0 {
		t.Errorf("kernel %% shiftgate %v, nginx %v, direct %v; want 70, 85, 0", sg.KernelPct, rep.Summary[1].KernelPct, rep.Summary[0].KernelPct)
	}
	// Steal: 2, 4, 6 % by round; the summary keeps the worst, like other %.
	if sg.StealPct != 6 || rep.Summary[1].StealPct != 0 {
		t.Errorf("steal %% shiftgate %v, nginx %v; want the worst round's, 6 and 0", sg.StealPct, rep.Summary[1].StealPct)
	}
	if len(rep.Ratios) != 2 {
		t.Fatalf("ratios %+v, want nginx and haproxy", rep.Ratios)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	ng, hp := rep.Ratios[0], rep.Ratios[1]
	if ng.Peer != targetNginx || !near(ng.RPS.Median, 1.2) || !near(ng.RPS.Min, 1.2) || !near(ng.RPS.Max, 1.2) || ng.RPS.N != 3 {
		t.Errorf("nginx req/s ratio %+v, want 1.2 in every round", ng.RPS)
	}
	// p99: shiftgate 2, 3, 4 against nginx's 4: 0.5, 0.75, 1.
	if !near(ng.P99.Median, 0.75) || !near(ng.P99.Min, 0.5) || !near(ng.P99.Max, 1) {
		t.Errorf("nginx p99 ratio %+v", ng.P99)
	}
	if hp.Peer != targetHAProxy || !near(hp.RPS.Median, 1.5) || !near(hp.ReqPerCPU.Median, 1.5) {
		t.Errorf("haproxy ratio %+v", hp)
	}
}

func TestRatioNeedsBothInTheSameRound(t *testing.T) {
	s := []benchSample{
		{Round: 1, Target: targetShiftgate, Conns: 64, RPS: 10},
		{Round: 2, Target: targetNginx, Conns: 64, RPS: 10},
	}
	if r, ok := ratioOf(s, targetNginx, 64); ok {
		t.Errorf("ratio %+v from samples of different rounds", r)
	}
	s = append(s, benchSample{Round: 2, Target: targetShiftgate, Conns: 64, RPS: 30})
	r, ok := ratioOf(s, targetNginx, 64)
	if !ok || r.RPS.N != 1 || r.RPS.Median != 3 {
		t.Errorf("ratio %+v, %v; want one round at 3", r, ok)
	}
}

func TestWriteBenchText(t *testing.T) {
	rep := summarize(samplesFor(), []string{targetDirect, targetNginx, targetHAProxy, targetShiftgate}, []int{64})
	var b strings.Builder
	if err := writeBenchText(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := strings.Join(strings.Fields(b.String()), " ") // columns are padded: compare words
	for _, want := range []string{
		"req/proxy-cpu-s", "median of 3 round(s)",
		"steal %", "64 shiftgate 24000 0.00 3.00 1.00 70 20.0 24000 0 0 6 3",
		"64 nginx 20000 0.00 4.00 1.00 85 9.0 20000 0 0 0 0",
		"64 direct 100000 0.00 1.00 - - - - 0 0 0 0",
		"64 shiftgate nginx 1.20 [1.20 .. 1.20] 0.75 [0.50 .. 1.00] 1.20 [1.20 .. 1.20]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("bench text lacks %q:\n%s", want, out)
		}
	}
}

// TestSummarizeFloors: a floor is compared with the peers, and shiftgate with it.
func TestSummarizeFloors(t *testing.T) {
	samples := samplesFor()
	for round := 1; round <= 3; round++ {
		samples = append(samples, benchSample{Round: round, Target: targetFloorEpoll, Conns: 64, RPS: 1, P99MS: 1, ReqPerCPU: 30000})
	}
	rep := summarize(samples, []string{targetNginx, targetHAProxy, targetShiftgate, targetFloorEpoll}, []int{64})
	want := map[string]float64{
		targetFloorEpoll + "/" + targetNginx:     1.5,
		targetFloorEpoll + "/" + targetHAProxy:   30000.0 / 16000,
		targetShiftgate + "/" + targetFloorEpoll: 0.8,
	}
	for _, r := range rep.Ratios {
		if w, ok := want[r.Target+"/"+r.Peer]; ok {
			if math.Abs(r.ReqPerCPU.Median-w) > 1e-9 {
				t.Errorf("%s / %s req/cpu-s %v, want %v", r.Target, r.Peer, r.ReqPerCPU.Median, w)
			}
			delete(want, r.Target+"/"+r.Peer)
		}
	}
	if len(want) > 0 {
		t.Errorf("ratios missing: %v", want)
	}
}

func TestBusiestLoad(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rows   []benchSummary
		want   string
		wantOK bool
	}{
		{"none", nil, "", false},
		{"one", []benchSummary{{Target: targetNginx, LoadCPUPct: 40}}, targetNginx, true},
		{"the busiest of several", []benchSummary{
			{Target: targetNginx, LoadCPUPct: 75}, {Target: targetShiftgate, LoadCPUPct: 97}, {Target: targetHAProxy, LoadCPUPct: 80},
		}, targetShiftgate, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := busiestLoad(tc.rows)
			if ok != tc.wantOK || got.Target != tc.want {
				t.Errorf("busiestLoad = %q, %v; want %q, %v", got.Target, ok, tc.want, tc.wantOK)
			}
		})
	}
}
