package tlsconf

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// TestLoadCABundle: every certificate of a bundle is trusted, other PEM blocks are
// skipped, and a bundle that would silently trust fewer CAs than it names (a block
// cut short, one that does not parse) or none is refused with the file and reason.
func TestLoadCABundle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := tlstest.NewCA(t, "CA a"), tlstest.NewCA(t, "CA b")
	_, key := a.Issue(t, tlstest.Leaf{Names: []string{"x.test"}})
	two := append(append([]byte{}, a.PEM...), b.PEM...)
	cut := append(append([]byte{}, a.PEM...), b.PEM[:len(b.PEM)/2]...)
	badDER := bytes.Replace(b.PEM, []byte("MII"), []byte("AAA"), 1)
	for _, tc := range []struct {
		name     string
		content  []byte
		subjects string
		err      string
	}{
		{"two CAs", two, "CA a|CA b", ""},
		{"a key block skipped", append(append([]byte{}, key...), a.PEM...), "CA a", ""},
		{"the second cut short", cut, "", "after certificate 1 is cut short"},
		{"a block that does not parse", append(append([]byte{}, a.PEM...), badDER...), "", "certificate 2 does not parse"},
		{"no certificate", []byte("not a bundle\n"), "", "no PEM CERTIFICATE block"},
		{"empty", nil, "", "no PEM CERTIFICATE block"},
	} {
		f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".pem")
		tlstest.WriteFile(t, f, tc.content)
		c, err := LoadCABundle(f)
		var le *LoadError
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err == "" && strings.Join(c.Subjects, "|") != tc.subjects:
			t.Errorf("%s: subjects %q, want %q", tc.name, c.Subjects, tc.subjects)
		case tc.err != "" && (!errors.As(err, &le) || le.File != f || !strings.Contains(le.Reason, tc.err)):
			t.Errorf("%s: error %v, want a LoadError for %s saying %q", tc.name, err, f, tc.err)
		}
	}
	if _, err := LoadCABundle(filepath.Join(dir, "none.pem")); err == nil {
		t.Error("a missing file loads")
	}
}

// TestCABundleRotation: a Dialer whose roots are a bundle in service verifies each
// new connection against the bundle's latest good load. Rotating the file to a new
// CA makes an upstream signed by it verifiable; a broken bundle (cut short, then
// every CA expired) is refused, reported once per content with the file and reason,
// and the last good bundle stays in use.
func TestCABundleRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldCA, newCA := tlstest.NewCA(t, "old CA"), tlstest.NewCA(t, "new CA")
	file := oldCA.WriteCA(t, dir, "ca.pem")
	leaf := tlstest.Leaf{Names: []string{"api.internal"}}
	oldAddr := upstream(t, &tls.Config{Certificates: []tls.Certificate{oldCA.TLSCert(t, leaf)}})
	newAddr := upstream(t, &tls.Config{Certificates: []tls.Certificate{newCA.TLSCert(t, leaf)}})

	var mu sync.Mutex
	var events []Event
	now := time.Now()
	l := NewLive()
	l.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l.OnEvent = func(ev Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }
	bundles, err := l.AddCAs([]string{file})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Files(); len(got) != 1 || got[0] != file {
		t.Fatalf("files to watch %q, want the bundle", got)
	}
	d := NewDialer(ClientOptions{ServerName: "api.internal", Roots: bundles[0]}, tcpDial)
	dial := func(addr string) error {
		c, err := d.DialTimeout(addr, ioWait)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(oldAddr); err != nil {
		t.Fatalf("old CA's upstream under the old bundle: %v", err)
	}
	if err := dial(newAddr); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("new CA's upstream under the old bundle: %v, want unknown authority", err)
	}

	// Rotation: the file now holds the new CA only.
	tlstest.WriteFile(t, file, newCA.PEM)
	if !l.Reload() {
		t.Fatal("the rotated bundle was not put in service")
	}
	if err := dial(newAddr); err != nil {
		t.Fatalf("new CA's upstream after the rotation: %v", err)
	}
	if err := dial(oldAddr); err == nil {
		t.Fatal("old CA's upstream still verifies after the rotation")
	}
	if st := l.CAStatus(); len(st) != 1 || strings.Join(st[0].Subjects, "") != "new CA" || st[0].Error != "" {
		t.Fatalf("status after rotation: %+v", st)
	}

	refused := func(content []byte, reason string) {
		t.Helper()
		mu.Lock()
		n := len(events)
		mu.Unlock()
		tlstest.WriteFile(t, file, content)
		for range 2 { // the same content is reported once
			if l.Reload() {
				t.Fatal("a broken bundle was put in service")
			}
		}
		mu.Lock()
		got := events[n:]
		mu.Unlock()
		var le *LoadError
		if len(got) != 1 || got[0].Bundle != file || !errors.As(got[0].Err, &le) || le.File != file ||
			!strings.Contains(le.Reason, reason) || got[0].OldCAs.Subjects[0] != "new CA" {
			t.Fatalf("events %+v, want one refusal of %s saying %q", got, file, reason)
		}
		if err := dial(newAddr); err != nil {
			t.Fatalf("after a refused bundle the last good one is not in use: %v", err)
		}
		if st := l.CAStatus(); !strings.Contains(st[0].Error, reason) || strings.Join(st[0].Subjects, "") != "new CA" {
			t.Fatalf("status after a refusal: %+v", st[0])
		}
	}
	refused(append(append([]byte{}, newCA.PEM...), oldCA.PEM[:40]...), "cut short")
	mu.Lock()
	now = now.Add(48 * time.Hour) // both test CAs are valid for a day
	mu.Unlock()
	refused(append(append([]byte{}, oldCA.PEM...), newCA.PEM...), "every certificate in the bundle has expired")

	// Files no config names any more are dropped from the watch.
	l.RetainCAs(nil)
	if got := l.Files(); len(got) != 0 {
		t.Errorf("files after RetainCAs(nil): %q", got)
	}
}

// TestWatcherCABundle: a bundle renamed into place is reloaded by the watcher.
func TestWatcherCABundle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldCA, newCA := tlstest.NewCA(t, "old CA"), tlstest.NewCA(t, "new CA")
	file := oldCA.WriteCA(t, dir, "ca.pem")
	l := NewLive()
	bundles, err := l.AddCAs([]string{file})
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(l)
	w.Debounce = 20 * time.Millisecond
	w.Every = -1
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	w.Trigger()
	waitFor(t, 5*time.Second, "the watcher to start", func() bool { return len(w.kick) == 0 })
	tlstest.WriteFile(t, file, newCA.PEM) // renamed into place
	waitFor(t, 10*time.Second, "the renamed-in bundle", func() bool { return bundles[0].Current().Subjects[0] == "new CA" })
}
