package tlsconf

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// waitFor polls cond until it holds or d passes; it measures nothing about time.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWatcher renews a certificate by renaming files into place, then by a
// Kubernetes-style ..data symlink swap, and expects each served without a call.
func TestWatcher(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	var p Pair
	p.CertFile, p.KeyFile = ca.WritePair(t, dir, "site", tlstest.Leaf{Names: []string{"v1.example"}})

	// The secret-volume layout: files are links through ..data to a versioned dir.
	sec := filepath.Join(dir, "secret")
	v1 := filepath.Join(sec, "..v1")
	must(t, os.MkdirAll(v1, 0o755))
	certPEM, keyPEM := ca.Issue(t, tlstest.Leaf{Names: []string{"k1.example"}})
	tlstest.WriteFile(t, filepath.Join(v1, "tls.crt"), certPEM)
	tlstest.WriteFile(t, filepath.Join(v1, "tls.key"), keyPEM)
	must(t, os.Symlink("..v1", filepath.Join(sec, "..data")))
	must(t, os.Symlink("..data/tls.crt", filepath.Join(sec, "tls.crt")))
	must(t, os.Symlink("..data/tls.key", filepath.Join(sec, "tls.key")))
	k := Pair{filepath.Join(sec, "tls.crt"), filepath.Join(sec, "tls.key")}

	l := NewLive()
	must(t, l.SetServer([]Pair{p, k}))
	w := NewWatcher(l)
	w.Debounce = 20 * time.Millisecond
	w.Every = -1
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// The watcher adds its directories as it starts; a write before that would
	// be missed, so wait until a Trigger (handled in the same loop) has run.
	w.Trigger()
	waitFor(t, 5*time.Second, "the watcher to start", func() bool { return len(w.kick) == 0 })

	ca.WritePair(t, dir, "site", tlstest.Leaf{Names: []string{"v2.example"}})
	waitFor(t, 10*time.Second, "the renamed-in certificate", func() bool { return serving(l, "").Name() == "v2.example" })

	v2 := filepath.Join(sec, "..v2")
	must(t, os.MkdirAll(v2, 0o755))
	certPEM, keyPEM = ca.Issue(t, tlstest.Leaf{Names: []string{"k2.example"}})
	tlstest.WriteFile(t, filepath.Join(v2, "tls.crt"), certPEM)
	tlstest.WriteFile(t, filepath.Join(v2, "tls.key"), keyPEM)
	must(t, os.Symlink("..v2", filepath.Join(sec, "..data_tmp")))
	must(t, os.Rename(filepath.Join(sec, "..data_tmp"), filepath.Join(sec, "..data")))
	waitFor(t, 10*time.Second, "the swapped-in secret", func() bool {
		return serving(l, "k2.example").Name() == "k2.example"
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
