package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDrainTellsTheLoadBalancerFirst: on a stop, /readyz answers 503 at once while
// the traffic listener keeps serving for timeouts.shutdown_delay, and /healthz keeps
// answering; only then does the gateway stop accepting. Before, the admin listener
// and the traffic listener closed together at the signal: a probe saw a refused
// connection, never the 503, and a load balancer kept sending to a closed port.
// The delay here is long and ended by the test, so nothing depends on timing.
func TestDrainTellsTheLoadBalancerFirst(t *testing.T) {
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go backend.Serve(bl) //nolint:errcheck
	t.Cleanup(func() { backend.Close() })

	path, g, cancel := startFile(t, `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["`+bl.Addr().String()+`"] }
  cloud: { upstreams: ["`+bl.Addr().String()+`"] }
split: { from: idc, to: cloud, salt: s }
timeouts: { shutdown_delay: 5m }
routes:
  - name: all
    match: { path_prefix: / }
    percent: 0
`, nil)
	defer cancel()
	g.endDelay = make(chan struct{})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(url string) (int, error) {
		resp, err := client.Get(url)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	admin, traffic := "http://"+g.AdminAddr, "http://"+g.Addr+"/x"
	// Ready once the listener serves (Start returns as its loop begins).
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		code, err := get(admin + "/readyz")
		if code == 200 {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("/readyz before the stop: %d %v", code, err)
		}
	}

	cancel() // what SIGTERM does
	waited := make(chan error, 1)
	go func() { waited <- g.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, err := get(admin + "/readyz")
		if err != nil {
			t.Fatalf("/readyz during the drain: %v (want an answer, 503)", err)
		}
		if code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d 30s after the stop", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Not ready, and still serving what a load balancer sends meanwhile.
	if code, err := get(traffic); code != 200 {
		t.Errorf("traffic during the shutdown delay: %d %v; want served", code, err)
	}
	if code, err := get(admin + "/healthz"); code != 200 {
		t.Errorf("/healthz during the drain: %d %v", code, err)
	}
	// The gateway still follows its config (and, in a fleet, the store) while it
	// serves through the delay: an edit now goes into service.
	b, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(b), "percent: 0", "percent: 40", 1)), 0o644)
	for start := time.Now(); g.Server.Status().Routes[0].Percent != 40; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("a config edit during the shutdown delay was not applied: the watcher stopped at the signal")
		}
	}
	select {
	case err := <-waited:
		t.Fatalf("Wait returned during the shutdown delay: %v", err)
	default:
	}

	close(g.endDelay)
	if err := <-waited; err != nil {
		t.Errorf("Wait: %v", err)
	}
	if _, err := get(traffic); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("traffic after the drain: %v; want the connection refused", err)
	}
}

// startFile writes yamlText ({{STATE}}: a fresh state dir) to a config file in a temp
// dir and starts a gateway on it, its log to logw (nil: discarded), with the Gateway
// itself in hand (startLive hides it): the caller ends it with cancel, then Wait.
func startFile(t *testing.T, yamlText string, logw io.Writer) (path string, g *Gateway, cancel context.CancelFunc) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "shiftgate.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(yamlText, "{{STATE}}", filepath.Join(dir, "state"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if logw == nil {
		logw = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := Start(ctx, Options{ConfigPath: path, Logger: slog.New(slog.NewJSONHandler(logw, nil)),
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	return path, g, cancel
}
