package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/valyala/fasthttp"
)

func TestMain_JSONAndText(t *testing.T) {
	s := startStandin(t, "cloud", standin.Options{})
	url := "http://" + s.Addr + "/api/feed"

	var out, errOut bytes.Buffer
	code := Main([]string{"-n", "40", "-conns", "4", "-json", "-region-header", standin.RegionHeader,
		"-H", "X-Trace: 1", "-users", "5", url}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out.String())
	}
	if res.Requests != 40 || res.Successes != 40 || res.Regions["cloud"] != 40 || res.Conns != 4 {
		t.Errorf("result %+v", res)
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Errorf("want exactly one line of JSON, got %q", out.String())
	}

	out.Reset()
	errOut.Reset()
	code = Main([]string{"-n", "10", "-quiet", url}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "requests  10 ") || errOut.Len() != 0 {
		t.Errorf("text run: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}

func TestMain_ProgressLine(t *testing.T) {
	s := startStandin(t, "idc", standin.Options{})
	var out, errOut bytes.Buffer
	code := Main([]string{"-duration", "300ms", "-progress-every", "50ms", "-conns", "2", "http://" + s.Addr + "/"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if len(lines) < 3 || !strings.Contains(lines[0], "requests") || !strings.Contains(lines[0], "req/s") {
		t.Errorf("want a progress line every 50ms on stderr, got %q", errOut.String())
	}
}

func TestMain_Usage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{}, 2, "want exactly one URL"},
		{[]string{"http://127.0.0.1:1/", "extra"}, 2, "want exactly one URL"},
		{[]string{"-nope", "http://127.0.0.1:1/"}, 2, "flag provided but not defined"},
		{[]string{"-H", "no colon", "http://127.0.0.1:1/"}, 2, "want 'Name: value'"},
		{[]string{"-n", "1", "http://192.0.2.7/"}, 1, "not a loopback address"},
		{[]string{"-n", "1", "-conns", "-5", "http://127.0.0.1:1/"}, 1, "conns"},
		{[]string{"-h"}, 0, "usage: shiftgate loadtest"},
	} {
		var out, errOut bytes.Buffer
		code := Main(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.msg) {
			t.Errorf("Main(%q) = %d, stderr %q; want %d and %q", tc.args, code, errOut.String(), tc.code, tc.msg)
		}
	}
}

func TestHeaderFlags(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Header
		ok   bool
	}{
		{"X-A: b", Header{"X-A", "b"}, true},
		{"X-A:b:c", Header{"X-A", "b:c"}, true},
		{"  X-A  :  spaced  ", Header{"X-A", "spaced"}, true},
		{"X-Empty:", Header{"X-Empty", ""}, true},
		{"nocolon", Header{}, false},
		{": v", Header{}, false},
		{"X A: v", Header{}, false},
		{"X-A: v\r\nX-Evil: 1", Header{}, false},
	} {
		var h headerFlags
		err := h.Set(tc.in)
		if (err == nil) != tc.ok || (tc.ok && (len(h) != 1 || h[0] != tc.want)) {
			t.Errorf("Set(%q) = %v, %v; want %v, ok %v", tc.in, h, err, tc.want, tc.ok)
		}
	}
}

// lineWriter passes every write to a channel once, so a test can wait for a line.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line) // keep the partial line
			return len(p), nil
		}
		w.lines <- strings.TrimSpace(line)
	}
}

func TestBackendMain(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	out := &lineWriter{lines: make(chan string, 4)}
	done := make(chan int, 1)
	go func() {
		done <- backendMain(ctx, []string{"-region", "idc", "-body-size", "100"}, out, io.Discard)
	}()
	var addr string
	select {
	case line := <-out.lines:
		var ok bool
		if addr, ok = strings.CutPrefix(line, "listening "); !ok {
			t.Fatalf("first line %q, want 'listening ADDR'", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("backend did not report its address")
	}
	status, body, err := fasthttp.Get(nil, "http://"+addr+"/x")
	if err != nil || status != 200 || len(body) != 100 {
		t.Errorf("GET: status %d, %d bytes, err %v; want 200 and 100 bytes", status, len(body), err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("backend did not stop")
	}
	if _, _, err := fasthttp.Get(nil, "http://"+addr+"/x"); err == nil {
		t.Error("backend still answers after stop")
	}
}

func TestBackendMainUsage(t *testing.T) {
	for _, args := range [][]string{{"-body-size", "-1"}, {"extra"}, {"-listen"}} {
		if code := backendMain(t.Context(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("backendMain(%q) = %d, want 2", args, code)
		}
	}
	if code := backendMain(t.Context(), []string{"-listen", "256.0.0.1:0"}, io.Discard, io.Discard); code != 1 {
		t.Errorf("unlistenable address: exit %d, want 1", code)
	}
}

// FuzzHeaderFlag: -H values come from the command line; an accepted one can never
// smuggle a second header or break the request line.
func FuzzHeaderFlag(f *testing.F) {
	for _, s := range []string{"X-A: b", "a:b:c", "X: \r\nY: z", ":", "  :  ", "X-Ä: ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var h headerFlags
		if err := h.Set(s); err != nil {
			return
		}
		got := h[0]
		if got.Name == "" || strings.ContainsAny(got.Name, " \t\r\n:") || strings.ContainsAny(got.Value, "\r\n") {
			t.Fatalf("Set(%q) accepted %+v", s, got)
		}
	})
}

// TestMain_UserHeaderFromH: a user id given with -H is what every request carries,
// not replaced by the -users draw; with an explicit -users too, the command refuses.
func TestMain_UserHeaderFromH(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		for _, v := range ctx.Request.Header.PeekAll("X-User-Id") {
			seen[string(v)]++
		}
		mu.Unlock()
	}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown()
	url := "http://" + l.Addr().String() + "/"
	var out, errOut bytes.Buffer
	if code := Main([]string{"-n", "20", "-quiet", "-H", "x-user-id: u-fixed", url}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	mu.Lock()
	if len(seen) != 1 || seen["u-fixed"] != 20 {
		t.Errorf("the backend saw user ids %v, want u-fixed 20 times", seen)
	}
	mu.Unlock()
	errOut.Reset()
	if code := Main([]string{"-n", "1", "-users", "5", "-H", "X-User-Id: u", url}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "both set the user id") {
		t.Errorf("-users with -H X-User-Id: exit %d, %q", code, errOut.String())
	}
	if _, err := Run(context.Background(), Options{URL: url, N: 1, Users: 5, Headers: []Header{{Name: "X-User-Id", Value: "u"}}}); err == nil || !strings.Contains(err.Error(), "set by Headers and by Users") {
		t.Errorf("Run with both: %v", err)
	}
}

// TestMain_NoAnswerFails: a run in which no request got an answer (nothing listens)
// prints its result and exits 1, as the CLI's "no gateway answering" does; a run
// answered with errors (a 503 is an answer) still exits 0. Before, the first exited 0.
func TestMain_NoAnswerFails(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Main([]string{"-n", "5", "-conns", "1", "-quiet", "http://127.0.0.1:1/"}, &out, &errOut) // nothing listens on port 1
	if code != 1 || !strings.Contains(out.String(), "errors 5") || !strings.Contains(errOut.String(), "no answer to any of 5 requests") {
		t.Errorf("run against nothing: exit %d, stdout %q, stderr %q; want 1 and the result", code, out.String(), errOut.String())
	}

	s := startStandin(t, "idc", standin.Options{FailPercent: 100})
	out.Reset()
	errOut.Reset()
	code = Main([]string{"-n", "5", "-conns", "1", "-quiet", "http://" + s.Addr + "/"}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "status_5xx 5") {
		t.Errorf("run answered 503: exit %d, stdout %q, stderr %q; want 0", code, out.String(), errOut.String())
	}
}
