package loadtest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// countingServer serves 200s on loopback and counts the connections it accepted, the
// requests it answered, and those that arrived from cut on.
type countingServer struct {
	url      string
	accepted atomic.Int64
	answered atomic.Int64
	cut      atomic.Pointer[time.Time]
	afterCut atomic.Int64
}

func startCounting(t *testing.T) *countingServer {
	t.Helper()
	cs := &countingServer{}
	cs.url = serveWith(t, &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			cs.answered.Add(1)
			if c := cs.cut.Load(); c != nil && !time.Now().Before(*c) {
				cs.afterCut.Add(1)
			}
			ctx.SetBodyString("ok")
		},
		ConnState: func(_ net.Conn, st fasthttp.ConnState) {
			if st == fasthttp.StateNew {
				cs.accepted.Add(1)
			}
		},
	}) + "/"
	return cs
}

// TestRunWarmup: the warm-up runs on the connections the measured part then uses;
// what Run reports (requests, latencies, elapsed time) covers the measured part only,
// and OnMeasure marks its beginning and end, in that order.
func TestRunWarmup(t *testing.T) {
	const (
		conns  = 4
		warmup = 200 * time.Millisecond
		d      = 300 * time.Millisecond
	)
	for _, tc := range []struct {
		name string
		rate float64
		// Every worker always has a request in flight in the closed loop, so all
		// connections open at once, in the warm-up. In the open loop the shared pool
		// opens one when more requests overlap than ever before, which may come later.
		connsOpenInWarmup bool
	}{
		{"closed loop", 0, true},
		{"open loop", 400, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := startCounting(t)
			var (
				mu              sync.Mutex
				marks           []bool
				acceptedAtBegin int64
			)
			began := time.Now()
			// Every request Run reports was sent from its measured part on, which
			// starts no earlier than began+warmup, so it reached the server after that.
			cut := began.Add(warmup)
			cs.cut.Store(&cut)
			res, err := Run(t.Context(), Options{
				URL: cs.url, Conns: conns, Rate: tc.rate, Warmup: warmup, Duration: d,
				OnMeasure: func(begin bool) {
					mu.Lock()
					defer mu.Unlock()
					marks = append(marks, begin)
					if begin {
						acceptedAtBegin = cs.accepted.Load()
					}
				},
			})
			wall := time.Since(began)
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, res)
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(marks, []bool{true, false}) {
				t.Fatalf("OnMeasure calls %v, want [true false]", marks)
			}
			if acceptedAtBegin == 0 || (tc.connsOpenInWarmup && cs.accepted.Load() != acceptedAtBegin) {
				t.Errorf("connections accepted: %d by the measured part's start, %d at the end; want the warm-up's connections reused",
					acceptedAtBegin, cs.accepted.Load())
			}
			before := cs.answered.Load() - cs.afterCut.Load()
			if before <= conns {
				t.Fatalf("the warm-up sent %d requests; want more than %d", before, conns)
			}
			// Every answered request is counted once: in the warm-up's count or in the
			// measured figures; the warm-up's count covers every answer before the cut.
			if res.Warmup != warmup || res.WarmupErrors != 0 || res.WarmupRequests < before ||
				res.WarmupRequests+res.Requests != cs.answered.Load() {
				t.Errorf("warm-up %v: %d requests, %d errors, measured %d; the server answered %d, %d before the cut",
					res.Warmup, res.WarmupRequests, res.WarmupErrors, res.Requests, cs.answered.Load(), before)
			}
			if res.Requests == 0 || res.Requests > cs.afterCut.Load() {
				t.Errorf("reported %d requests; the server answered %d in all, %d of them after the warm-up: want 1..%[3]d",
					res.Requests, cs.answered.Load(), cs.afterCut.Load())
			}
			if tc.rate > 0 {
				// Intended send times i/rate; those inside [warmup, warmup+d) are measured.
				if inWindow := int64(tc.rate * d.Seconds()); res.Requests > inWindow {
					t.Errorf("reported %d requests; the schedule has %d in the measured part", res.Requests, inWindow)
				}
			}
			if res.Elapsed < d || wall < warmup+res.Elapsed {
				t.Errorf("elapsed %v over a run of %v: want the measured part only (at least %v, and the warm-up of %v outside it)",
					res.Elapsed, wall, d, warmup)
			}
		})
	}
}

func TestRunWarmupRefused(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{URL: "http://127.0.0.1:1/", Duration: time.Second, Warmup: -time.Second}, "warmup: want >= 0"},
		{Options{URL: "http://127.0.0.1:1/", N: 10, Warmup: time.Second}, "warmup needs a duration"},
	} {
		if _, err := Run(t.Context(), tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%+v) = %v, want an error mentioning %q", tc.o, err, tc.want)
		}
	}
}

// TestMainMarks: -mark prints the measured part's beginning and end on stderr, in
// order, and the bench reads them.
func TestMainMarks(t *testing.T) {
	cs := startCounting(t)
	var stdout, stderr strings.Builder
	code := Main([]string{"-quiet", "-json", "-mark", "-warmup", "100ms", "-duration", "200ms", "-conns", "2", cs.url}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if stderr.String() != markBegin+"\n"+markEnd+"\n" {
		t.Errorf("stderr %q, want the two marks in order", stderr.String())
	}
}

// TestReadMarks: the bench reads its counters at the generator's marks, and a
// generator that printed none is an error, not a window of zeros.
func TestReadMarks(t *testing.T) {
	self := &proc{name: "self", cmd: &exec.Cmd{Process: &os.Process{Pid: os.Getpid()}}}
	b := &bench{backend: self, o: benchOptions{proxyCPU: -1, loadCPU: -1}}
	tgt := benchTarget{name: "self", proc: self}

	win, other, err := b.readMarks(context.Background(), strings.NewReader("warming\n"+markBegin+"\n"+markEnd+"\n"), tgt, 1, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if other != "warming\n" {
		t.Errorf("other lines %q, want the line that was not a mark", other)
	}
	if win.before.at.IsZero() || win.after.at.Before(win.before.at) || win.after.proxy.total() < win.before.proxy.total() || win.after.rss == 0 {
		t.Errorf("window %+v: want both readings taken, in order", win)
	}

	for _, in := range []string{"", markBegin + "\n", "loadtest: dial refused\n"} {
		if _, _, err := b.readMarks(context.Background(), strings.NewReader(in), tgt, 1, os.Getpid()); err == nil || !strings.Contains(err.Error(), "did not mark") {
			t.Errorf("readMarks(%q) err = %v, want it to say the marks are missing", in, err)
		}
	}
}

// TestProgressLine: while the warm-up lasts the progress line shows its counts, marked
// as not measured; from the measured part's start it shows the measured counts, with
// the first line's rate counted from that start, not from the warm-up's.
func TestProgressLine(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name        string
		measureFrom time.Time
		ticks       []int // ms after start
		counts      []progressCounts
		want        []string
	}{
		{
			name: "warm-up then measured", measureFrom: at(1000),
			ticks:  []int{500, 1000, 1500, 2000},
			counts: []progressCounts{{warm: 400, warmFailed: 1}, {warm: 800, warmFailed: 1}, {sent: 200, failed: 2, warm: 800, warmFailed: 1}, {sent: 600, failed: 2, warm: 800, warmFailed: 1}},
			want: []string{
				"0.5s  400 requests  800 req/s  1 errors  (warm-up, not measured)",
				// The tick at the measured part's start closes the warm-up and is the
				// measured part's first line, with 0 sent.
				"1.0s  800 requests  800 req/s  1 errors  (warm-up, not measured)\n1.0s  0 requests  0 req/s  0 errors",
				"1.5s  200 requests  400 req/s  2 errors",
				"2.0s  600 requests  800 req/s  2 errors",
			},
		},
		{
			// A warm-up shorter than the interval gets one line, at its end.
			name: "short warm-up", measureFrom: at(300),
			ticks:  []int{1000},
			counts: []progressCounts{{sent: 700, warm: 300}},
			want:   []string{"0.3s  300 requests  1000 req/s  0 errors  (warm-up, not measured)\n1.0s  700 requests  1000 req/s  0 errors"},
		},
		{
			name: "no warm-up", measureFrom: start,
			ticks:  []int{500, 1000},
			counts: []progressCounts{{sent: 100}, {sent: 300, failed: 1}},
			want:   []string{"0.5s  100 requests  200 req/s  0 errors", "1.0s  300 requests  400 req/s  1 errors"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProgress(start, tc.measureFrom)
			for i, ms := range tc.ticks {
				got := strings.Join(strings.Fields(p.line(at(ms), tc.counts[i])), " ")
				if want := strings.Join(strings.Fields(tc.want[i]), " "); got != want {
					t.Errorf("tick %d ms: %q, want %q", ms, got, want)
				}
			}
		})
	}
}
