// Package etcdtest runs a real, single-member etcd server for tests: Debian's
// etcd-server binary, on free loopback ports, with its data in a test's temp dir and
// short election timeouts, started and stopped by PID.
//
// A test that needs etcd calls Start. When the binary is missing the test is skipped
// on a developer's machine and fails under CI (CI=true): a test that silently skips
// proves nothing.
package etcdtest

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/loadtest/freeport"
)

// Binary is where Debian's etcd-server package installs the server.
const Binary = "/usr/bin/etcd"

// Server is one etcd process. Its methods are meant for the test goroutine that
// started it; they are not safe for concurrent use.
type Server struct {
	// Endpoint is the client URL, http://127.0.0.1:PORT. It stays the same across
	// Stop and Restart.
	Endpoint string

	t       testing.TB
	bin     string
	args    []string
	dataDir string
	client  int
	peer    int
	cmd     *exec.Cmd
	done    chan struct{}
	logs    *bytes.Buffer
}

// Start starts etcd on two free loopback ports and waits until it reports healthy.
// args are more etcd flags, such as "--max-txn-ops", "1024". The process is stopped
// by PID when the test ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := findBinary()
	if bin == "" {
		const msg = "etcd server binary not found (apt-get install etcd-server)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + ": CI must install it; a test that silently skips proves nothing")
		}
		t.Skip(msg)
	}
	s := &Server{t: t, bin: bin, args: args, dataDir: filepath.Join(t.TempDir(), "etcd"), client: freePort(t), peer: freePort(t)}
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", s.client)
	t.Cleanup(s.Stop)
	s.Restart()
	return s
}

func findBinary() string {
	if _, err := os.Stat(Binary); err == nil {
		return Binary
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	return ""
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Restart starts the process again on the same ports and data dir (a no-op when it
// runs) and waits until it is healthy.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	peer := fmt.Sprintf("http://127.0.0.1:%d", s.peer)
	s.logs = &bytes.Buffer{}
	cmd := exec.Command(s.bin,
		"--name", "test",
		"--data-dir", s.dataDir,
		"--listen-client-urls", s.Endpoint,
		"--advertise-client-urls", s.Endpoint,
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer,
		"--initial-cluster-state", "new",
		// Short timeouts: a single member elects itself within a few heartbeats.
		"--election-timeout", "100",
		"--heartbeat-interval", "10",
		"--logger", "zap",
		"--log-level", "warn",
	)
	cmd.Args = append(cmd.Args, s.args...)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("etcd: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(s.done) //nolint:errcheck // exit status is not news
	s.waitHealthy(10 * time.Second)
}

func (s *Server) waitHealthy(limit time.Duration) {
	s.t.Helper()
	c := &http.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			s.t.Fatalf("etcd exited at start:\n%s", s.logs)
		default:
		}
		resp, err := c.Get(s.Endpoint + "/health")
		if err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body) //nolint:errcheck // judged by content
			resp.Body.Close()
			if strings.Contains(b.String(), `"health":"true"`) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("etcd not healthy after %s:\n%s", limit, s.logs)
}

// Stop ends the process by its PID (SIGTERM, then SIGKILL after 5 s) and waits for
// it. The data dir stays, so Restart brings the same data back.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGTERM) //nolint:errcheck // already gone is fine
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // already gone is fine
		<-s.done
	}
	s.cmd = nil
}

// Logs returns what the process printed (warnings and errors) since it last started.
func (s *Server) Logs() string { return s.logs.String() }
