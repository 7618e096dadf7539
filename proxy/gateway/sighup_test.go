package gateway

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSIGHUPReadsNamedFiles: a static fallback body edited on disk is served after
// SIGHUP (the watcher's Trigger), though the config file's bytes did not change; a
// SIGHUP with nothing changed reloads nothing. Before, the reload was skipped for
// unchanged bytes, and then taken for a no-op by the server.
func TestSIGHUPReadsNamedFiles(t *testing.T) {
	logs, body, g, get := startWithBodyFile(t)
	waitBody := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for got := get(); got != want; got = get() {
			if time.Now().After(deadline) {
				t.Fatalf("fallback body %q, want %q", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitBody(`{"v":"old"}`)
	version := g.Server.Status().Version
	g.watcher.Trigger() // SIGHUP, nothing changed: said, and nothing reloaded
	deadline := time.Now().Add(30 * time.Second)
	for logs.count("config unchanged") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no word of the SIGHUP with nothing changed:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	os.WriteFile(body, []byte(`{"v":"new"}`), 0o644)
	g.watcher.Trigger() // SIGHUP after the edit
	waitBody(`{"v":"new"}`)
	if v := g.Server.Status().Version; v != version+1 {
		t.Errorf("config version %d after two SIGHUPs, the first with nothing changed: want %d", v, version+1)
	}
}

// TestNamedFileEditReloads: a static fallback body edited on disk, in a directory of
// its own, is served without a SIGHUP (the watcher follows the files the config
// names), as one reload. Before, only the config file was watched.
func TestNamedFileEditReloads(t *testing.T) {
	logs, body, g, get := startWithBodyFile(t)
	if got := get(); got != `{"v":"old"}` {
		t.Fatalf("fallback body %q before the edit", got)
	}
	version := g.Server.Status().Version
	// Renamed into place, as editors and deploy tools write: one event, one reload.
	tmp := body + ".tmp"
	os.WriteFile(tmp, []byte(`{"v":"new"}`), 0o644)
	if err := os.Rename(tmp, body); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for got := get(); got != `{"v":"new"}`; got = get() {
		if time.Now().After(deadline) {
			t.Fatalf("fallback body %q 30s after the edit, want the new one:\n%s", got, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := g.Server.Status().Version; v != version+1 {
		t.Errorf("config version %d after one edit, want %d", v, version+1)
	}
	if n := logs.count("config reloaded"); n != 1 {
		t.Errorf("%d reloads logged for one edit, want 1:\n%s", n, logs.String())
	}
}

// startWithBodyFile starts a gateway whose only route always answers from a static
// fallback read from a body file (its region refuses connections), with the body
// {"v":"old"}. get fetches the answer's body.
func startWithBodyFile(t *testing.T) (logs *lockedBuffer, body string, g *Gateway, get func() string) {
	t.Helper()
	logs = &lockedBuffer{}
	body = filepath.Join(t.TempDir(), "down.json")
	os.WriteFile(body, []byte(`{"v":"old"}`), 0o644)
	_, g, cancel := startFile(t, `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["127.0.0.1:1"] }
  cloud: { upstreams: ["127.0.0.1:1"] }
split: { from: idc, to: cloud, salt: s }
timeouts: { connect: 200ms }
routes:
  - name: all
    match: { path_prefix: / }
    percent: 0
    breaker: { disabled: true }
    fallback: { static: { status: 200, content_type: application/json, body_file: `+body+` } }
`, logs)
	t.Cleanup(func() { cancel(); g.Wait() })
	get = func() string {
		resp, err := http.Get("http://" + g.Addr + "/x")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	return logs, body, g, get
}
