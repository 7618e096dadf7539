package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/proxy"
)

// liveGateway is a gateway run by the real assembly, with its file watched and its
// admin API served, the way `shiftgate serve` runs it.
type liveGateway struct {
	srv   *proxy.Server
	addr  string
	admin string
	dir   string
	path  string
}

// startLive writes yamlText (after replacing each {{NAME}} with vars[NAME] and
// {{STATE}} with a fresh temp dir) and runs it on loopback until the test ends.
func startLive(t *testing.T, yamlText string, vars map[string]string) *liveGateway {
	t.Helper()
	return startLiveWith(t, t.TempDir(), yamlText, vars, nil)
}

// startLiveWith is startLive in dir with a given override store (nil: the config's).
func startLiveWith(t *testing.T, dir, yamlText string, vars map[string]string, st store.Store) *liveGateway {
	t.Helper()
	return startLiveLogged(t, dir, yamlText, vars, st, nil)
}

// startLiveLogged is startLiveWith with the gateway's log written to logw (nil:
// discarded, or stderr with -v).
func startLiveLogged(t *testing.T, dir, yamlText string, vars map[string]string, st store.Store, logw io.Writer) *liveGateway {
	t.Helper()
	text := strings.ReplaceAll(yamlText, "{{STATE}}", filepath.Join(dir, "state"))
	for k, v := range vars {
		text = strings.ReplaceAll(text, "{{"+k+"}}", v)
	}
	path := filepath.Join(dir, "shiftgate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if logw != nil {
		log = slog.New(slog.NewJSONHandler(logw, nil))
	} else if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := Start(ctx, Options{ConfigPath: path, Logger: log, Store: st,
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", Debounce: 50e6})
	if err != nil {
		cancel()
		t.Fatalf("start: %v\n%s", err, text)
	}
	t.Cleanup(func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Errorf("gateway stopped with: %v", err)
		}
	})
	return &liveGateway{srv: g.Server, addr: g.Addr, admin: "http://" + g.AdminAddr, dir: dir, path: path}
}

// startRegion starts a labelled stand-in region on a free loopback port.
func startRegion(t testing.TB, name string) *standin.Server {
	t.Helper()
	s, err := standin.Start(name, "127.0.0.1:0", standin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// twoRegions is a minimal config with regions idc ({{IDC}}) and cloud ({{CLOUD}}).
const twoRegions = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
client_ip: { trusted_proxies: ["10.0.0.0/8"] }
internal: { trusted_callers: ["10.1.0.0/16"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
timeouts: { connect: 500ms, response_header: 2s, body: 5s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 25
    write_percent: 5
  - name: default
    match: { path_prefix: / }
    percent: 0
`

// counterValue reads one unlabelled series from the server's metrics, -1 if absent.
func counterValue(s *proxy.Server, name string) int {
	var b strings.Builder
	s.WriteMetrics(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	return -1
}

// replaceFile puts data at path with one rename, as editors and config tools do:
// os.WriteFile truncates and then writes, and on a loaded machine the watcher may
// read the empty file between the two steps, a refused file of its own that tests
// counting refusals would then count too.
func replaceFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
