package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/loadtest/freeport"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/proxy"
)

// freeAddr returns a loopback address for a server the test starts a moment later
// (outside the ephemeral range, so no client's connection takes it meanwhile).
func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheck(t *testing.T) {
	code, out, _ := runCLI("check", "-config", "../shared/examples/cutover.yaml")
	if code != 0 || !strings.Contains(out, "ok: 2 regions, 2 routes") {
		t.Fatalf("check on the reference config: %d %q", code, out)
	}
	dir := t.TempDir()
	b, _ := os.ReadFile("../shared/examples/cutover.yaml")
	broken := strings.Replace(string(b), "write_percent: 5", "write_percent: 40", 1)
	os.WriteFile(filepath.Join(dir, "feed-fallback.json"), []byte("{}"), 0o644)
	path := filepath.Join(dir, "cutover.yaml")
	os.WriteFile(path, []byte(broken), 0o644)
	code, _, errs := runCLI("check", "-config", path)
	if code != 1 || !strings.Contains(errs, path+":34: routes[0].write_percent: 40 is above percent 25") {
		t.Fatalf("check on a broken file: exit %d, %q", code, errs)
	}
}

func TestBucketVectors(t *testing.T) {
	code, out, _ := runCLI("bucket", "-salt", "cutover-2026", "42", "u-1001", "u-qa-1", "d-7f3a", "203.0.113.7", "2001:db8::1")
	want := "42\t2799\nu-1001\t7356\nu-qa-1\t900\nd-7f3a\t7630\n203.0.113.7\t3466\n2001:db8::1\t5774\n"
	if code != 0 || out != want {
		t.Fatalf("bucket: %d\n%s\nwant\n%s", code, out, want)
	}
}

const serveConfig = `listen: {{LISTEN}}
admin: { listen: {{ADMIN}} }
state_dir: ./state
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
client_ip: { trusted_proxies: ["10.0.0.0/8"] }
split: { from: idc, to: cloud, salt: cutover-2026, keys: ["header:X-User-Id", "cookie:uid", "query:u", "ip"] }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 25
    write_percent: 5
    force: { cloud: ["u-qa-1"] }
    fallback: { cache: { ttl: 1m } }
  - name: default
    match: { path_prefix: / }
    percent: 0
`

type served struct {
	srv        *proxy.Server
	path       string
	listen     string
	admin      string
	cancel     func()
	done       chan error
	idc, cloud *standin.Server
}

func startServe(t *testing.T) *served {
	t.Helper()
	idc, err := standin.Start("idc", "127.0.0.1:0", standin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cloud, err := standin.Start("cloud", "127.0.0.1:0", standin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &served{listen: freeAddr(t), admin: freeAddr(t), idc: idc, cloud: cloud, done: make(chan error, 1)}
	text := strings.NewReplacer("{{LISTEN}}", s.listen, "{{ADMIN}}", s.admin, "{{IDC}}", idc.Addr, "{{CLOUD}}", cloud.Addr).Replace(serveConfig)
	s.path = filepath.Join(t.TempDir(), "shiftgate.yaml")
	os.WriteFile(s.path, []byte(text), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	ready := make(chan *proxy.Server, 1)
	go func() { s.done <- serve(ctx, s.path, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	select {
	case s.srv = <-ready:
	case err := <-s.done:
		t.Fatalf("serve: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not start")
	}
	t.Cleanup(func() {
		cancel()
		<-s.done
		idc.Close()
		cloud.Close()
	})
	return s
}

// TestRouteAgreesWithServe explains decisions with `shiftgate route` and checks the
// running gateway routes the same requests the same way.
func TestRouteAgreesWithServe(t *testing.T) {
	s := startServe(t)
	c := &fasthttp.HostClient{Addr: s.listen}
	cases := [][]string{}
	for u := 0; u < 300; u++ {
		cases = append(cases, []string{"GET", "/api/feed", "X-User-Id: " + fmt.Sprintf("u-%d", u)})
		cases = append(cases, []string{"POST", "/api/feed", "X-User-Id: " + fmt.Sprintf("u-%d", u)})
	}
	cases = append(cases,
		[]string{"GET", "/api/feed", "Cookie: uid=abc; other=1"},
		[]string{"GET", "/api/feed?u=from-query"},
		[]string{"GET", "/api/feed", "X-User-Id: u-qa-1"},
		[]string{"GET", "/api/feed"},
		[]string{"GET", "/elsewhere", "X-User-Id: u-7"},
	)
	for _, tc := range cases {
		args := []string{"route", "-config", s.path, "-json"}
		for _, h := range tc[2:] {
			args = append(args, "-H", h)
		}
		args = append(args, tc[0], tc[1])
		code, out, errs := runCLI(args...)
		if code != 0 {
			t.Fatalf("route %v: %d %s", tc, code, errs)
		}
		var ex map[string]any
		if err := json.Unmarshal([]byte(out), &ex); err != nil {
			t.Fatalf("route -json: %v: %s", err, out)
		}
		for _, k := range []string{"route", "key_source", "key", "bucket", "threshold", "region", "reason"} {
			if _, ok := ex[k]; !ok {
				t.Fatalf("route -json lacks %q: %s", k, out)
			}
		}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.Header.SetMethod(tc[0])
		req.SetRequestURI("http://gw" + tc[1])
		for _, h := range tc[2:] {
			k, v, _ := strings.Cut(h, ": ")
			req.Header.Set(k, v)
		}
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := string(resp.Header.Peek("X-Served-By")); got != ex["region"] {
			t.Fatalf("%v: route says %v (%v), serve sent it to %q", tc, ex["region"], ex["reason"], got)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
}

// TestAdminVerbs drives split, rollback and status through the CLI against serve.
func TestAdminVerbs(t *testing.T) {
	s := startServe(t)
	admin := "http://" + s.admin
	if code, out, errs := runCLI("split", "-admin", admin, "-dry-run", "feed", "50"); code != 0 || !strings.Contains(out, "moving forward: 25.00%") {
		t.Fatalf("split -dry-run: %d %q %q", code, out, errs)
	}
	if code, out, errs := runCLI("split", "-admin", admin, "-writes", "10", "feed", "50"); code != 0 || !strings.Contains(out, "now 50% (writes 10%)") {
		t.Fatalf("split: %d %q %q", code, out, errs)
	}
	if code, _, errs := runCLI("split", "-admin", admin, "-writes", "60", "feed", "50"); code != 1 || !strings.Contains(errs, "above percent") {
		t.Fatalf("split with writes above reads: %d %q", code, errs)
	}
	if code, _, errs := runCLI("rollback", "-config", s.path, "on"); code != 0 {
		t.Fatalf("rollback on: %d %q", code, errs)
	}
	code, out, _ := runCLI("status", "-admin", admin)
	if code != 0 || !strings.Contains(out, "rollback: ON") || !strings.Contains(out, "50/10") {
		t.Fatalf("status: %d\n%s", code, out)
	}
	if code, _, _ := runCLI("rollback", "-admin", admin, "-ramp", "1m", "off"); code != 0 {
		t.Fatal("rollback -ramp off failed")
	}
	if code, out, _ := runCLI("status", "-admin", admin); code != 0 || !strings.Contains(out, "ramping back") {
		t.Fatalf("status while ramping: %s", out)
	}
	if code, _, errs := runCLI("split", "-admin", "http://"+freeAddr(t), "feed", "5"); code != 1 || !strings.Contains(errs, "admin API at") {
		t.Fatalf("split against nothing: %d %q", code, errs)
	}
}

// TestServeRefusesBrokenFile: a broken file at start is refused even with a valid
// persisted state, while a broken file during a reload keeps the old config.
func TestServeRefusesBrokenFile(t *testing.T) {
	s := startServe(t)
	if code, _, _ := runCLI("rollback", "-admin", "http://"+s.admin, "on"); code != 0 {
		t.Fatal("rollback on failed")
	}
	good, _ := os.ReadFile(s.path)
	os.WriteFile(s.path, []byte(strings.Replace(string(good), "percent: 25", "percent: 250", 1)), 0o644)
	time.Sleep(600 * time.Millisecond)
	if st := s.srv.Status(); st.Routes[0].FilePercent != 25 || !st.Rollback.On {
		t.Fatalf("after a broken reload: %+v", st.Routes[0])
	}
	// The switch works while the file on disk is broken.
	if code, _, errs := runCLI("rollback", "-admin", "http://"+s.admin, "off"); code != 0 {
		t.Fatalf("rollback off with a broken file on disk: %s", errs)
	}
	if code, _, errs := runCLI("rollback", "-admin", "http://"+s.admin, "on"); code != 0 || !s.srv.Status().Rollback.On {
		t.Fatalf("rollback on with a broken file on disk: %s", errs)
	}
	s.cancel()
	if err := <-s.done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	s.done <- nil // for the cleanup
	err := serve(context.Background(), s.path, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err == nil || !strings.Contains(err.Error(), "routes[0].percent") {
		t.Fatalf("serve on a broken file: %v", err)
	}
}

// TestWarm fills the fallback cache through a running gateway, then serves it with
// every region down.
func TestWarm(t *testing.T) {
	s := startServe(t)
	list := filepath.Join(t.TempDir(), "urls.txt")
	os.WriteFile(list, []byte("# feed pages\n/api/feed?page=1\nhttp://example.com/api/feed?page=2\n\n"), 0o644)
	code, out, errs := runCLI("warm", "-config", s.path, list)
	if code != 0 || !strings.Contains(out, "warmed 2 paths, 0 failed") {
		t.Fatalf("warm: %d %q %q", code, out, errs)
	}
	s.idc.Close()
	s.cloud.Close()
	c := &fasthttp.HostClient{Addr: s.listen}
	for _, p := range []string{"/api/feed?page=1", "/api/feed?page=2"} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://gw" + p)
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode() != 200 || string(resp.Header.Peek("X-Shift-Fallback")) != "cache" {
			t.Errorf("%s with regions down: %d %q", p, resp.StatusCode(), resp.Header.Peek("X-Shift-Fallback"))
		}
	}
	if code, _, _ := runCLI("warm", "-config", s.path, list); code != 1 {
		t.Error("warm with regions down should report failures")
	}
}

func TestCheckAgainst(t *testing.T) {
	s := startServe(t)
	b, _ := os.ReadFile(s.path)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		return p
	}
	up := write("up.yaml", strings.Replace(string(b), "percent: 25", "percent: 50", 1))
	code, out, errs := runCLI("check", "-config", up, "-against", "http://"+s.admin)
	if code != 0 || !regexp.MustCompile(`feed\s+25%\s+50%\s+25.00%\s+0.00%`).MatchString(out) {
		t.Fatalf("check -against, raise: %d\n%s%s", code, out, errs)
	}
	salt := write("salt.yaml", strings.Replace(string(b), "salt: cutover-2026", "salt: other", 1))
	code, out, _ = runCLI("check", "-config", salt, "-against", "http://"+s.admin)
	if code != 1 || !strings.Contains(out, "refused without force_reshuffle") {
		t.Fatalf("check -against, new salt: %d\n%s", code, out)
	}
	// About 25 % × 75 % of users move each way under a new salt.
	var fwd, back float64
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "feed") {
			f := strings.Fields(line)
			fmt.Sscanf(f[3], "%f%%", &fwd)
			fmt.Sscanf(f[4], "%f%%", &back)
		}
	}
	if fwd < 17 || fwd > 20.5 || back < 17 || back > 20.5 {
		t.Errorf("new salt moves %.2f%% forward and %.2f%% back, want about 18.75%% each", fwd, back)
	}
}

// TestBulkSplit changes two routes in one call; an invalid pair changes nothing.
func TestBulkSplit(t *testing.T) {
	s := startServe(t)
	admin := "http://" + s.admin
	code, out, errs := runCLI("split", "-admin", admin, "feed", "40", "default", "10")
	if code != 0 || !strings.Contains(out, "route feed: 25% (writes 5%) now 40% (writes 5%)") || !strings.Contains(out, "route default: 0% (writes 0%) now 10%") {
		t.Fatalf("bulk split: %d %q %q", code, out, errs)
	}
	st := s.srv.Status()
	if st.Routes[0].Percent != 40 || st.Routes[1].Percent != 10 || st.Revision != 1 {
		t.Fatalf("after bulk split: revision %d, %+v %+v", st.Revision, st.Routes[0], st.Routes[1])
	}
	if code, _, errs := runCLI("split", "-admin", admin, "feed", "50", "nope", "10"); code != 1 || !strings.Contains(errs, `no route "nope"`) {
		t.Fatalf("bulk split with an unknown route: %d %q", code, errs)
	}
	if st := s.srv.Status(); st.Routes[0].Percent != 40 {
		t.Fatalf("a refused bulk split changed feed to %v", st.Routes[0].Percent)
	}
	if code, _, _ := runCLI("split", "-admin", admin, "feed", "50", "default"); code != 2 {
		t.Fatal("odd argument count accepted")
	}
}

// TestShutdownDrains: stopping serve (SIGTERM's path) lets a request in flight finish.
func TestShutdownDrains(t *testing.T) {
	s := startServe(t)
	slow := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		time.Sleep(500 * time.Millisecond)
		ctx.SetBodyString("late but whole")
	}}
	ln, err := net.Listen("tcp", s.idc.Addr)
	if err != nil {
		// The stand-in holds the port: close it and take it over.
		s.idc.Close()
		if ln, err = net.Listen("tcp", s.idc.Addr); err != nil {
			t.Fatal(err)
		}
	}
	go slow.Serve(ln)
	defer slow.Shutdown()
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		c := &fasthttp.HostClient{Addr: s.listen}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://gw/elsewhere") // the default route: idc
		err := c.DoTimeout(req, resp, 5*time.Second)
		done <- result{resp.StatusCode(), string(resp.Body()), err}
	}()
	time.Sleep(150 * time.Millisecond) // the request is now inside the slow backend
	s.cancel()
	if err := <-s.done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	s.done <- nil // for the cleanup
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "late but whole" {
		t.Fatalf("in-flight request during shutdown: %v %d %q", r.err, r.status, r.body)
	}
}

// TestStatusRestartPending: an edit to a key the gateway reads only at start is
// reloaded with everything else and shown by `shiftgate status` as pending a restart.
func TestStatusRestartPending(t *testing.T) {
	s := startServe(t)
	good, _ := os.ReadFile(s.path)
	os.WriteFile(s.path, append(good, "timeouts: { idle: 5s }\n"...), 0o644)
	deadline := time.Now().Add(10 * time.Second)
	for len(s.srv.RestartPending()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the edit was not reloaded within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, errs := runCLI("status", "-admin", "http://"+s.admin)
	if code != 0 || !strings.Contains(out, "RESTART PENDING") || !strings.Contains(out, "timeouts.idle (running 1m0s, file 5s)") {
		t.Fatalf("status: %d\n%s%s", code, out, errs)
	}
}
