package proxy

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

// TestShutdownEndsServeWhateverTheOrder: a Serve started just before or after
// Shutdown returns; fasthttp alone would accept forever on a listener its Shutdown
// had not seen yet (a gateway stopped right after it started never exited).
func TestShutdownEndsServeWhateverTheOrder(t *testing.T) {
	cfg, err := conf.Parse("", []byte(strings.ReplaceAll(twoRegionsText(), "{{STATE}}", t.TempDir())))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		srv, err := New(cfg, Options{Logger: discardLogger(), NoFallbackStore: true})
		if err != nil {
			t.Fatal(err)
		}
		ln := must(net.Listen("tcp", "127.0.0.1:0"))
		done := make(chan error, 1)
		if i%2 == 0 {
			go func() { done <- srv.Serve(ln) }()
			srv.Shutdown(time.Second)
		} else {
			srv.Shutdown(time.Second)
			go func() { done <- srv.Serve(ln) }()
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run %d: Serve: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d: Serve still accepting 10s after Shutdown", i)
		}
	}
}
