package proxy

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/valyala/fasthttp"
)

const readAtStartConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: s }
routes:
  - name: all
    match: { path_prefix: / }
    percent: 0
timeouts: { idle: {{IDLE}} }
limits: { max_body_bytes: {{MAXBODY}} }
`

// TestReloadReadAtStart: a reload that changes a key only a restart applies
// (timeouts.idle) says so in the log, in status and in a gauge, and stops saying so
// once the file agrees with the running process again; limits.max_body_bytes, which
// the handler enforces, applies at once.
func TestReloadReadAtStart(t *testing.T) {
	b := startBackend(t, replyOK)
	logs := &syncBuffer{}
	vars := map[string]string{"IDC": b.addr, "CLOUD": b.addr, "IDLE": "60s", "MAXBODY": "1MiB"}
	gw := startGatewayOpt(t, readAtStartConfig, vars, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	s := gw.srv
	reload := func(idle, maxBody string) {
		t.Helper()
		text := strings.NewReplacer("{{IDLE}}", idle, "{{MAXBODY}}", maxBody).Replace(readAtStartConfig)
		if err := s.Reload(reloadWith(t, gw, text, b.addr, b.addr)); err != nil {
			t.Fatal(err)
		}
	}
	post := func(n int) int {
		t.Helper()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + gw.addr + "/up")
		req.Header.SetMethod("POST")
		req.SetBody(make([]byte, n))
		if err := (&fasthttp.Client{}).Do(req, resp); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode()
	}
	if got := post(4096); got != 200 {
		t.Fatalf("POST of 4 KiB under a 1 MiB limit: %d", got)
	}

	reload("5s", "1KiB")
	pending := s.Status().RestartPending
	if len(pending) != 1 || pending[0] != (conf.KeyChange{Key: "timeouts.idle", Running: "1m0s", File: "5s"}) {
		t.Fatalf("status restart_pending = %+v, want timeouts.idle 1m0s -> 5s", pending)
	}
	if !strings.Contains(metricsText(s), "\nshiftgate_config_restart_pending 1\n") {
		t.Error("gauge shiftgate_config_restart_pending is not 1")
	}
	if l := logs.lines(map[string]any{"key": "timeouts.idle", "running": "1m0s", "file": "5s"}); len(l) != 1 {
		t.Errorf("log lines naming the key read at start: %d, want 1", len(l))
	}
	if got := post(4096); got != fasthttp.StatusRequestEntityTooLarge {
		t.Errorf("POST of 4 KiB after max_body_bytes went to 1 KiB: %d, want 413", got)
	}

	reload("60s", "1MiB")
	if p := s.Status().RestartPending; len(p) != 0 {
		t.Errorf("restart_pending after the file went back: %+v", p)
	}
	if !strings.Contains(metricsText(s), "\nshiftgate_config_restart_pending 0\n") {
		t.Error("gauge shiftgate_config_restart_pending is not 0 after the file went back")
	}
}
