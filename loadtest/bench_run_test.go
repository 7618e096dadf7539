package loadtest

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfEnv makes the test binary act as the shiftgate binary's backend and loadtest
// verbs, so the bench can run its children from it.
const selfEnv = "SHIFTGATE_LOADTEST_TEST_SELF"

func TestMain(m *testing.M) {
	if os.Getenv(selfEnv) == "1" && len(os.Args) > 1 {
		switch os.Args[1] {
		case "backend":
			os.Exit(BackendMain(os.Args[2:], os.Stdout, os.Stderr))
		case "loadtest":
			os.Exit(Main(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(m.Run())
}

// TestBenchRun runs a tiny bench end to end: the backend and the load generator as
// child processes, with nginx and HAProxy where installed, and the floor proxies built
// from this checkout. shiftgate itself needs the full binary (serve); bench.sh -quick
// covers it.
func TestBenchRun(t *testing.T) {
	t.Setenv(selfEnv, "1")
	// Under -race every child would otherwise sleep a second on exit.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	targets := []string{targetDirect}
	for _, peer := range []string{targetNginx, targetHAProxy} {
		if _, err := lookPathSbin(peer); err == nil {
			targets = append(targets, peer)
		}
	}
	// The floors, built from this checkout: the bench starts them like the peers.
	floor := filepath.Join(t.TempDir(), "floor")
	if out, err := exec.Command("go", "build", "-o", floor, "./bench/floor").CombinedOutput(); err != nil {
		t.Fatalf("build the floor binary: %v\n%s", err, out)
	}
	targets = append(targets, floorTargets...)
	o, code := parseBenchFlags([]string{
		"-targets", strings.Join(targets, ","), "-conns", "4", "-rounds", "2", "-floor", floor,
		"-duration", "150ms", "-warmup", "0", "-proxy-cpu", "-1", "-load-cpu", "-1", "-users", "10",
	}, os.Stderr)
	if code >= 0 {
		t.Fatalf("flags: exit %d", code)
	}
	var log strings.Builder
	b := &bench{o: o, log: &log}
	samples, err := b.run(t.Context())
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, log.String())
	}
	if want := 2 * len(targets); len(samples) != want {
		t.Fatalf("%d samples, want %d", len(samples), want)
	}
	for _, s := range samples {
		if s.Requests == 0 || s.Errors != 0 || s.RPS <= 0 || s.P99MS <= 0 {
			t.Errorf("sample %+v: want requests, no errors", s)
		}
		if s.Target != targetDirect && (s.RSSMiB <= 0 || s.CPUS < 0) {
			t.Errorf("sample %+v: want the proxy's RSS", s)
		}
	}
	// Every child was stopped and the temporary directory removed.
	for _, p := range b.procs {
		select {
		case <-p.exited:
		case <-time.After(time.Second):
			t.Errorf("%s (pid %d) still running after the bench", p.name, p.pid())
		}
	}
	if _, err := os.Stat(b.dir); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s left behind: %v", b.dir, err)
	}
	rep := summarize(samples, o.targets, o.conns)
	peers := len(targets) - 1 - len(floorTargets) // nginx and HAProxy where installed
	if len(rep.Summary) != len(targets) || len(rep.Ratios) != peers*len(floorTargets) {
		t.Errorf("summary %d rows, ratios %d; want %d and each floor against each peer", len(rep.Summary), len(rep.Ratios), len(targets))
	}
}

// TestBenchRate: with -rate the generator offers that load and no more (closed loop
// on loopback would send thousands of requests in the same time), and the warm-up,
// on the same connections, is not counted.
func TestBenchRate(t *testing.T) {
	t.Setenv(selfEnv, "1")
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	const rate, d = 200, 500 * time.Millisecond
	for _, warmup := range []time.Duration{0, 400 * time.Millisecond} {
		t.Run("warmup="+warmup.String(), func(t *testing.T) {
			o, code := parseBenchFlags([]string{
				"-targets", targetDirect, "-conns", "4", "-rounds", "1", "-rate", "200",
				"-duration", d.String(), "-warmup", warmup.String(), "-proxy-cpu", "-1", "-load-cpu", "-1", "-users", "10",
			}, os.Stderr)
			if code >= 0 {
				t.Fatalf("flags: exit %d", code)
			}
			var log strings.Builder
			samples, err := (&bench{o: o, log: &log}).run(t.Context())
			if err != nil {
				t.Fatalf("bench: %v\n%s", err, log.String())
			}
			// The schedule holds rate×d requests in the measured part (and 80 more in
			// the warm-up, which would show if they were counted).
			offered := int64(rate * d.Seconds())
			if len(samples) != 1 || samples[0].Requests == 0 || samples[0].Requests > offered || samples[0].Errors != 0 {
				t.Fatalf("samples %+v: want at most %d requests (the offered load), no errors", samples, offered)
			}
		})
	}
}

func TestBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"-conns", "64,x"}, 2, "-conns"},
		{[]string{"-conns", "0"}, 2, "-conns"},
		{[]string{"-targets", "nginx,envoy"}, 2, "unknown or repeated target"},
		{[]string{"-targets", "nginx,nginx"}, 2, "unknown or repeated target"},
		{[]string{"-rounds", "0"}, 2, "-rounds"},
		{[]string{"-tls", "-targets", "nginx,floor-epoll"}, 2, "plain HTTP only"},
		{[]string{"extra"}, 2, "unexpected argument"},
		{[]string{"-rate", "-5"}, 2, "-rate"},
		{[]string{"-rate", "1000", "-driver", "wrk"}, 2, "-rate"},
		{[]string{"-rate", "1000", "-new-conns"}, 2, "-rate"},
		{[]string{"-h"}, 0, "usage: shiftgate loadtest bench"},
	} {
		var errOut strings.Builder
		_, code := parseBenchFlags(tc.args, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.msg) {
			t.Errorf("parseBenchFlags(%q) = %d, %q; want %d, %q", tc.args, code, errOut.String(), tc.code, tc.msg)
		}
	}
	// -profile: profiles take whole seconds inside the measured part, into a directory.
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	os.WriteFile(notDir, nil, 0o644)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-profile", filepath.Join(dir, "p"), "-duration", "1500ms"}, "too short"},
		{[]string{"-profile", notDir}, "-profile"},
		{[]string{"-profile", filepath.Join(dir, "n"), "-targets", "nginx,haproxy"}, "no shiftgate target"},
	} {
		var errOut strings.Builder
		if _, code := parseBenchFlags(tc.args, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.msg) {
			t.Errorf("parseBenchFlags(%q) = %d, %q; want 2, %q", tc.args, code, errOut.String(), tc.msg)
		}
	}
	if o, code := parseBenchFlags([]string{"-quick", "-profile", filepath.Join(dir, "q")}, &strings.Builder{}); code != -1 || o.profile == "" {
		t.Errorf("-quick -profile: exit %d; want the 2 s runs of -quick to take 1 s profiles", code)
	} else if _, err := os.Stat(filepath.Join(dir, "q")); err != nil {
		t.Errorf("-profile did not make its directory: %v", err)
	}
	// The floors need their binary; the bench says how to build it before starting anything.
	o, code := parseBenchFlags([]string{"-targets", "nginx,floor-netpoll,floor-epoll-raw"}, &strings.Builder{})
	if code != -1 {
		t.Fatalf("floor targets: exit %d", code)
	}
	if err := (&bench{o: o, log: io.Discard}).checkTools(); !errors.Is(err, errNoFloor) {
		t.Errorf("floor targets without -floor: %v, want %v", err, errNoFloor)
	}
	for target, want := range map[string]string{
		targetFloorEpollRaw:     "-listen L -backend B -mode epoll -raw",
		targetFloorEpollNetpoll: "-listen L -backend B -mode epoll -raw -wait netpoll",
		targetFloorEpollHeld:    "-listen L -backend B -mode epoll -raw -wait held",
	} {
		if got := floorArgs(target, "L", "B"); strings.Join(got, " ") != want {
			t.Errorf("%s argv %q, want %q", target, got, want)
		}
	}
	o, code = parseBenchFlags([]string{"-quick", "-rounds", "2"}, &strings.Builder{})
	if code != -1 || o.rounds != 2 || o.duration != 2*time.Second || o.warmup != 500*time.Millisecond ||
		len(o.conns) != 2 || len(o.targets) != 5 {
		t.Errorf("-quick -rounds 2: %+v (code %d); want 2 rounds of 2s, 0.5s warm-up", o, code)
	}
}
