package loadtest

import (
	"maps"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		line string
		want cpuTime
		ok   bool
	}{
		// utime 150 and stime 75 ticks: 1.5 s in user space, 0.75 s in the kernel.
		{"1234 (nginx) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 75 0 0 20 0 1 0 100 1000 10 18446744073709551615",
			cpuTime{user: 1500 * time.Millisecond, sys: 750 * time.Millisecond}, true},
		// A command name with spaces and parentheses.
		{"99 (a (b) c) R 1 99 99 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0", cpuTime{user: 70 * time.Millisecond, sys: 30 * time.Millisecond}, true},
		{"99 (x) R 1 2 3", cpuTime{}, false},
		{"no parenthesis", cpuTime{}, false},
		{"1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 3", cpuTime{}, false},
	} {
		got, err := parseStatCPU([]byte(tc.line))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseStatCPU(%q) = %v, %v; want %v, ok %v", tc.line, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseStatusRSS(t *testing.T) {
	for _, tc := range []struct {
		text string
		want int64
		ok   bool
	}{
		{"Name:\tnginx\nVmPeak:\t  9000 kB\nVmRSS:\t    8852 kB\nThreads:\t1\n", 8852 << 10, true},
		{"Name:\tx\nVmRSS:\t12 MB\n", 0, false},
		{"Name:\tkthread\n", 0, false},
	} {
		got, err := parseStatusRSS([]byte(tc.text))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseStatusRSS(%q) = %v, %v; want %v, ok %v", tc.text, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseCoreTimes(t *testing.T) {
	for _, tc := range []struct {
		name string
		stat string
		want map[int]coreTime
		ok   bool
	}{
		{"busy is user + nice + system, steal the eighth field",
			"cpu  300 0 100 900 0 0 7 40 0 0\ncpu0 100 1 50 400 0 0 3 25 0 0\ncpu1 200 0 49 500 0 0 4 15 0 0\nintr 1 2\n",
			map[int]coreTime{0: {1510 * time.Millisecond, 250 * time.Millisecond}, 1: {2490 * time.Millisecond, 150 * time.Millisecond}}, true},
		{"an old kernel without the steal field",
			"cpu  3 0 1 9\ncpu0 3 0 1 9 0 0 0\n",
			map[int]coreTime{0: {40 * time.Millisecond, 0}}, true},
		{"short line", "cpu0 1 2\n", nil, false},
		{"garbage in a field", "cpu0 1 x 3 4 0 0 0 0\n", nil, false},
		{"no core lines", "cpu  1 2 3 4\nintr 5\n", nil, false},
	} {
		got, err := parseCoreTimes([]byte(tc.stat))
		if (err == nil) != tc.ok || !maps.Equal(got, tc.want) {
			t.Errorf("%s: parseCoreTimes = %v, %v; want %v, ok %v", tc.name, got, err, tc.want, tc.ok)
		}
	}
}

func TestStealPct(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	before := map[int]coreTime{0: {steal: ms(100)}, 1: {steal: ms(100)}, 2: {steal: ms(0)}}
	after := map[int]coreTime{0: {steal: ms(200)}, 1: {steal: ms(150)}, 2: {steal: ms(900)}}
	for _, tc := range []struct {
		name   string
		cores  []int
		window float64
		want   float64
	}{
		{"pinned cores: the worst of the two", []int{0, 1}, 2, 5}, // 100 ms of 2 s
		{"every core when nothing is pinned", nil, 2, 45},         // core 2: 900 ms
		{"one core", []int{1}, 0.5, 10},                           // 50 ms of 0.5 s
		{"no window", []int{0}, 0, 0},                             // no division by zero
		{"a core missing from the readings counts none", []int{7}, 1, 0},
	} {
		if got := stealPct(before, after, tc.cores, tc.window); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: stealPct = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestQuietest: a run disturbed by other processes or by the hypervisor is taken
// again, up to the retries, and the least disturbed one is kept.
func TestQuietest(t *testing.T) {
	for _, tc := range []struct {
		name     string
		runs     []benchSample // what successive measurements give
		retries  int
		want     int // index in runs of the sample kept
		measured int
	}{
		{"quiet at once", []benchSample{{RPS: 1}}, 2, 0, 1},
		{"other load, then quiet", []benchSample{{RPS: 1, OtherCPUPct: 30}, {RPS: 2, OtherCPUPct: 1}}, 2, 1, 2},
		{"steal, then quiet", []benchSample{{RPS: 1, StealPct: 25}, {RPS: 2, StealPct: 3}}, 2, 1, 2},
		{"disturbed throughout: the least", []benchSample{{RPS: 1, StealPct: 40}, {RPS: 2, OtherCPUPct: 15}, {RPS: 3, StealPct: 20}}, 2, 1, 3},
		{"no retries", []benchSample{{RPS: 1, StealPct: 40}}, 0, 0, 1},
	} {
		n := 0
		got, err := quietest(func() (benchSample, error) { n++; return tc.runs[n-1], nil }, tc.retries, func(benchSample) {})
		if err != nil || got.RPS != tc.runs[tc.want].RPS || n != tc.measured {
			t.Errorf("%s: kept %+v after %d runs (%v); want %+v after %d", tc.name, got, n, err, tc.runs[tc.want], tc.measured)
		}
	}
}

func TestHasCores(t *testing.T) {
	cores := map[int]coreTime{0: {}, 1: {}}
	if err := hasCores(cores, []int{0, 1}); err != nil {
		t.Errorf("cores 0 and 1 present: %v", err)
	}
	if err := hasCores(cores, nil); err != nil {
		t.Errorf("nothing pinned: %v", err)
	}
	if err := hasCores(cores, []int{0, 5}); err == nil || !strings.Contains(err.Error(), "cpu5") {
		t.Errorf("core 5 missing: %v, want an error naming cpu5", err)
	}
}

func TestWorstOf(t *testing.T) {
	steal := func(s benchSample) float64 { return s.StealPct }
	for _, tc := range []struct {
		samples []benchSample
		want    float64
	}{
		{nil, 0},
		{[]benchSample{{StealPct: 3}, {StealPct: 12}, {StealPct: 7}}, 12},
	} {
		if got := worstOf(tc.samples, steal); got != tc.want {
			t.Errorf("worstOf(%v) = %v, want %v", tc.samples, got, tc.want)
		}
	}
}

// TestProcReadersOnSelf reads this test process's own /proc files: the parsers must
// agree with the kernel's real layout, not only with the samples above.
func TestProcReadersOnSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	pid := os.Getpid()
	// Burn a little CPU so the reading cannot be zero.
	deadline := time.Now().Add(30 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	cpu, err := procCPU(pid)
	if err != nil || cpu.total() <= 0 {
		t.Errorf("procCPU(self) = %v, %v; want > 0", cpu, err)
	}
	rss, err := procRSS(pid)
	if err != nil || rss < 1<<20 {
		t.Errorf("procRSS(self) = %v, %v; want at least 1 MiB", rss, err)
	}
	if cores, err := coreTimes(); err != nil || cores[0].busy <= 0 {
		t.Errorf("coreTimes() = %v, %v; want core 0 with busy time", cores, err)
	}
}

func TestPinned(t *testing.T) {
	if got := pinned(-1, "nginx", "-t"); len(got) != 2 || got[0] != "nginx" {
		t.Errorf("pinned(-1) = %q", got)
	}
	if got := pinned(1, "nginx", "-t"); len(got) != 5 || got[0] != "taskset" || got[2] != "1" || got[3] != "nginx" {
		t.Errorf("pinned(1) = %q", got)
	}
}

func TestParentOf(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want int
	}{
		{"123 (nginx) S 77 123 123 0 -1", 77},
		{"9 (a (b) c) R 1 9 9", 1},
		{"garbage", -1},
		{"5 (x) S", -1},
	} {
		if got := parentOf([]byte(tc.stat)); got != tc.want {
			t.Errorf("parentOf(%q) = %d, want %d", tc.stat, got, tc.want)
		}
	}
}

func TestParseWrk(t *testing.T) {
	res, err := parseWrk([]byte("Running 2s test\n  1 threads\nSHIFTGATE-BENCH 20000 3 5 2000000 1500 4200 1700\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 20000 || res.Errors != 8 || res.Successes != 19995 || res.RPS != 10000 ||
		res.Latency.P50 != 1500*time.Microsecond || res.Latency.P99 != 4200*time.Microsecond {
		t.Errorf("parseWrk: %+v", res)
	}
	if _, err := parseWrk([]byte("Requests/sec: 1\n")); err == nil {
		t.Error("output without the bench line accepted")
	}
}

// TestProcCPUSplitsUserTime checks which of the two fields is which: a loop that
// makes no system call must show up as user time. With utime and stime swapped it
// would read as kernel time.
func TestProcCPUSplitsUserTime(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	pid := os.Getpid()
	before, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Compute until the kernel has charged 300 ms of CPU to this process (ticks are
	// 10 ms); a busy machine only stretches the wall time.
	var used cpuTime
	x := uint64(1)
	for wall := time.Now().Add(30 * time.Second); time.Now().Before(wall); {
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		now, err := procCPU(pid)
		if err != nil {
			t.Fatal(err)
		}
		if used = now.sub(before); used.total() >= 300*time.Millisecond {
			break
		}
	}
	if used.total() < 300*time.Millisecond {
		t.Fatalf("only %v of CPU charged in 30 s (x %d)", used.total(), x)
	}
	if used.user <= used.sys {
		t.Errorf("a computing loop read as user %v, kernel %v; want mostly user time", used.user, used.sys)
	}
}
