package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy"
)

// serveEnv makes the test binary run `shiftgate serve` instead of the tests, so a test
// can run the gateway as a real process and kill it.
const serveEnv = "SHIFTGATE_TEST_SERVE_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(serveEnv); path != "" {
		os.Exit(run([]string{"serve", "-config", path}, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// startProcess runs the gateway for config path as a child process.
func startProcess(t *testing.T, path, admin string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serveEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + admin + "/healthz"); err == nil {
			resp.Body.Close()
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gateway process did not come up: %s", stderr.String())
	return nil
}

func adminStatus(t *testing.T, admin string) proxy.Status {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st proxy.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRollbackSurvivesKill turns rollback on through the CLI, kills the gateway
// process with SIGKILL (no shutdown code runs), starts it again on the same config
// and state, and finds the rollback in effect.
func TestRollbackSurvivesKill(t *testing.T) {
	s := startServe(t) // stand-ins and a config; its in-process gateway is stopped below
	s.cancel()
	<-s.done
	s.done <- nil
	path := s.path
	cmd := startProcess(t, path, s.admin)
	if code, out, errs := runCLI("rollback", "-admin", "http://"+s.admin, "on"); code != 0 {
		t.Fatalf("rollback on: %d %s %s", code, out, errs)
	}
	if code, _, errs := runCLI("split", "-admin", "http://"+s.admin, "-writes", "5", "feed", "40"); code != 0 {
		t.Fatalf("split: %s", errs)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	startProcess(t, path, s.admin)
	st := adminStatus(t, s.admin)
	if !st.Rollback.On {
		t.Fatal("rollback is off after kill -9 and restart")
	}
	if r := st.Routes[0]; r.Override == nil || r.Override.Percent != 40 || r.Override.WritePercent != 5 {
		t.Fatalf("split override after restart: %+v", r.Override)
	}
	// And it routes that way: everything to idc.
	for u := 0; u < 50; u++ {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+s.listen+"/api/feed", nil)
		req.Header.Set("X-User-Id", fmt.Sprintf("u-%d", u))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Shift-Region"); got != "idc" {
			t.Fatalf("user u-%d went to %q with rollback on", u, got)
		}
	}
	if !strings.HasPrefix(st.Store, "file ") {
		t.Errorf("store %q", st.Store)
	}
}
