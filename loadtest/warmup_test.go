package loadtest

import (
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

	win, other, err := b.readMarks(strings.NewReader("warming\n"+markBegin+"\n"+markEnd+"\n"), tgt, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if other != "warming\n" {
		t.Errorf("other lines %q, want the line that was not a mark", other)
	}
	if win.before.at.IsZero() || win.after.at.Before(win.before.at) || win.after.proxy < win.before.proxy || win.after.rss == 0 {
		t.Errorf("window %+v: want both readings taken, in order", win)
	}

	for _, in := range []string{"", markBegin + "\n", "loadtest: dial refused\n"} {
		if _, _, err := b.readMarks(strings.NewReader(in), tgt, os.Getpid()); err == nil || !strings.Contains(err.Error(), "did not mark") {
			t.Errorf("readMarks(%q) err = %v, want it to say the marks are missing", in, err)
		}
	}
}
