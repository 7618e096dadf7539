package replay

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/loadtest/freeport"
)

// A log in the proxy's access log format, with the lines replay must skip.
const accessLog = `{"time":"2026-11-30T10:00:00.000Z","peer":"203.0.113.7","method":"GET","host":"app.example","uri":"/api/feed/1?lang=en","status":200,"ms":1.250,"route":"feed","region":"old","reason":"split","key_source":"header:X-User"}
{"time":"2026-11-30T10:00:00.001Z","peer":"203.0.113.8","method":"GET","host":"app.example","uri":"/api/feed/2","status":200,"ms":0.900}
{"time":"2026-11-30T10:00:00.002Z","peer":"203.0.113.9","method":"POST","host":"app.example","uri":"/api/orders","status":201,"ms":3.000}
{"time":"2026-11-30T10:00:00.003Z","peer":"203.0.113.9","method":"HEAD","host":"app.example","uri":"/api/feed/3","status":200,"ms":0.500}
not json at all
{"uri":"/no-method"}
{"path":"/from-path","host":"other.example"}
{"method":"GET"}
{"method":"GET","uri":"http://absolute.example/"}
{"method":"GET","uri":"/api/feed/4","status":404}
`

// recorder is a loopback target that records what it receives.
type recorder struct {
	mu   sync.Mutex
	got  []string // "METHOD HOST URI X-Test"
	addr string
}

func startRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	s := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		r.mu.Lock()
		r.got = append(r.got, string(ctx.Method())+" "+string(ctx.Host())+" "+string(ctx.RequestURI())+" "+string(ctx.Request.Header.Peek("X-Test")))
		r.mu.Unlock()
		if strings.HasSuffix(string(ctx.Path()), "/4") {
			ctx.SetStatusCode(404)
		}
	}}
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ln) }() //nolint:errcheck
	t.Cleanup(func() { s.Shutdown(); <-done })     //nolint:errcheck
	return r
}

func (r *recorder) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := slices.Clone(r.got)
	slices.Sort(s)
	return s
}

func writeLog(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReplaySendsTheLog(t *testing.T) {
	t.Parallel()
	r := startRecorder(t)
	res, err := Run(context.Background(), Options{File: writeLog(t, accessLog), Target: r.addr, Rate: 1000, Headers: []string{"X-Test: yes"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"GET app.example /api/feed/1?lang=en yes",
		"GET app.example /api/feed/2 yes",
		"GET " + r.addr + " /api/feed/4 yes", // no host in the line
		"GET other.example /from-path yes",
		"GET " + r.addr + " /no-method yes",
		"HEAD app.example /api/feed/3 yes",
	}
	slices.Sort(want)
	if got := r.received(); !slices.Equal(got, want) {
		t.Fatalf("target received\n%q\nwant\n%q", got, want)
	}
	if res.Sent != 6 || res.OK != 5 || res.Errors != 0 || res.Status[200] != 5 || res.Status[404] != 1 ||
		res.Filtered != 1 || res.BadLines != 3 || res.Missed != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.P50 <= 0 || res.P99 < res.P50 {
		t.Fatalf("latency p50 %v p99 %v", res.P50, res.P99)
	}
}

func TestReplayOptions(t *testing.T) {
	t.Parallel()
	log := writeLog(t, accessLog)
	f := func(name string, o Options, wantSent int64, wantPrefix []string) {
		t.Helper()
		r := startRecorder(t)
		o.File, o.Target, o.Rate = log, r.addr, 1000
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := r.received()
		if res.Sent != wantSent || int64(len(got)) != wantSent {
			t.Fatalf("%s: sent %d, target received %d, want %d", name, res.Sent, len(got), wantSent)
		}
		for _, p := range wantPrefix {
			if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, p) }) {
				t.Errorf("%s: nothing received starting %q in %q", name, p, got)
			}
		}
	}
	f("max", Options{Max: 3}, 3, []string{"GET app.example /api/feed/1"})
	f("writes allowed", Options{Methods: []string{"get", "post"}}, 6, []string{"POST app.example /api/orders"})
	f("host override", Options{Host: "new.example"}, 6, []string{"GET new.example /api/feed/1"})
	f("loop bounded by max", Options{Loop: true, Max: 20}, 20, nil)
}

// A run that would never end on its own stops at Duration, and at ctx.
func TestReplayStops(t *testing.T) {
	t.Parallel()
	r := startRecorder(t)
	log := writeLog(t, accessLog)
	res, err := Run(context.Background(), Options{File: log, Target: r.addr, Rate: 200, Loop: true, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent < 1 || int64(len(r.received())) != res.Sent {
		t.Fatalf("sent %d, received %d", res.Sent, len(r.received()))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err = Run(ctx, Options{File: log, Target: r.addr, Loop: true})
	if err != nil || res.Sent > 1 {
		t.Fatalf("cancelled run: %+v, %v", res, err)
	}
	// A log with nothing to replay does not spin when looping.
	res, err = Run(context.Background(), Options{File: writeLog(t, `{"method":"POST","uri":"/x"}`+"\n"), Target: r.addr, Loop: true})
	if err != nil || res.Sent != 0 || res.Filtered != 1 {
		t.Fatalf("nothing to replay: %+v, %v", res, err)
	}
}

func TestReplayTargetDown(t *testing.T) {
	t.Parallel()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Options{File: writeLog(t, accessLog), Target: addr, Rate: 1000, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 6 || res.Errors != 6 || res.OK != 0 || len(res.Status) != 0 {
		t.Fatalf("result %+v", res)
	}
}

func TestReplayRefuses(t *testing.T) {
	t.Parallel()
	f := func(o Options, want string) {
		t.Helper()
		if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run(%+v) = %v, want an error containing %q", o, err, want)
		}
	}
	log := writeLog(t, accessLog)
	f(Options{Target: "127.0.0.1:1"}, "no access log")
	f(Options{File: log}, "no target")
	f(Options{File: log, Target: "127.0.0.1:1", Headers: []string{"NoColon"}}, "header")
	f(Options{File: log, Target: "127.0.0.1:1", Rate: -1}, "negative")
	f(Options{File: filepath.Join(t.TempDir(), "missing"), Target: "127.0.0.1:1"}, "no such file")
}

func TestParseLine(t *testing.T) {
	t.Parallel()
	f := func(line string, want entry, wantErr bool) {
		t.Helper()
		got, err := parseLine([]byte(line))
		if (err != nil) != wantErr || got != want {
			t.Errorf("parseLine(%s) = %+v, %v; want %+v, error %v", line, got, err, want, wantErr)
		}
	}
	f(`{"method":"get","uri":"/a","host":"h"}`, entry{"GET", "/a", "h"}, false)
	f(`{"uri":"/a"}`, entry{"GET", "/a", ""}, false)
	f(`{"path":"/p"}`, entry{"GET", "/p", ""}, false)
	f(`{"uri":"/a b"}`, entry{}, true)
	f(`{"method":"G ET","uri":"/a"}`, entry{}, true)
	f(`{"uri":"a"}`, entry{}, true)
	f(`[]`, entry{}, true)
	f(``, entry{}, true)
}

// FuzzParseLine: log lines come from files anyone may have edited; never panic, and
// what is accepted is a request target.
func FuzzParseLine(f *testing.F) {
	for _, l := range strings.Split(accessLog, "\n") {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseLine(b)
		if err == nil && (!strings.HasPrefix(e.uri, "/") || e.method == "" || strings.ContainsAny(e.uri+e.method+e.host, " \r\n")) {
			t.Fatalf("accepted %+v from %q", e, b)
		}
	})
}

func BenchmarkParseLine(b *testing.B) {
	line := []byte(strings.SplitN(accessLog, "\n", 2)[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseLine(line); err != nil {
			b.Fatal(err)
		}
	}
}
