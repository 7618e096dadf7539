package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/loadtest/standin"
)

// gateway is a Server under test, serving on a loopback port.
type gateway struct {
	srv  *Server
	addr string
	dir  string
}

// startGateway parses yamlText (after replacing each {{NAME}} with vars[NAME] and
// {{STATE}} with a fresh temp dir) and serves it on 127.0.0.1:0 until the test ends.
func startGateway(t testing.TB, yamlText string, vars map[string]string) *gateway {
	t.Helper()
	dir := t.TempDir()
	return startGatewayIn(t, dir, yamlText, vars, nil)
}

func startGatewayIn(t testing.TB, dir, yamlText string, vars map[string]string, store store.Store) *gateway {
	t.Helper()
	text := strings.ReplaceAll(yamlText, "{{STATE}}", filepath.Join(dir, "state"))
	for k, v := range vars {
		text = strings.ReplaceAll(text, "{{"+k+"}}", v)
	}
	path := filepath.Join(dir, "shiftgate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.LoadFile(path)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(cfg, Options{Logger: log, Store: store})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown(5 * time.Second) })
	return &gateway{srv: srv, addr: ln.Addr().String(), dir: dir}
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

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}

type slogLogger = slog.Logger

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
