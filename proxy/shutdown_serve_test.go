package proxy

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

// TestServeAfterShutdown: a stop that comes before the listener is served (a gateway
// stopped right after it started) must not leave Serve accepting forever, or the
// process never exits.
func TestServeAfterShutdown(t *testing.T) {
	text := strings.NewReplacer("{{STATE}}", filepath.Join(t.TempDir(), "state"), "{{IDC}}", "127.0.0.1:1", "{{CLOUD}}", "127.0.0.1:2").Replace(twoRegions)
	cfg, err := conf.Parse("c.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, Options{Logger: quietLog(), NoFallbackStore: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(time.Second); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		ln.Close()
		t.Fatal("Serve after Shutdown still accepts")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the listener still takes connections after Shutdown")
	}
}
