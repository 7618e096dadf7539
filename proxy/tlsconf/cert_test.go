package tlsconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	good := Pair{}
	good.CertFile, good.KeyFile = ca.WritePair(t, dir, "a", tlstest.Leaf{Names: []string{"a.example", "*.a.example", "127.0.0.1"}})
	other := Pair{}
	other.CertFile, other.KeyFile = ca.WritePair(t, dir, "b", tlstest.Leaf{Names: []string{"b.example"}})
	expired := Pair{}
	expired.CertFile, expired.KeyFile = ca.WritePair(t, dir, "old", tlstest.Leaf{Names: []string{"old.example"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	empty := filepath.Join(dir, "empty")
	tlstest.WriteFile(t, empty, nil)

	c, err := Load(good)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Names, ","); got != "a.example,*.a.example,127.0.0.1" || c.Name() != "a.example" {
		t.Errorf("names = %q, name %q", got, c.Name())
	}

	for _, tc := range []struct {
		name     string
		pair     Pair
		file     string
		inReason string
	}{
		{"missing certificate", Pair{filepath.Join(dir, "nope.crt"), good.KeyFile}, filepath.Join(dir, "nope.crt"), "no such file"},
		{"missing key", Pair{good.CertFile, filepath.Join(dir, "nope.key")}, filepath.Join(dir, "nope.key"), "no such file"},
		{"key of another certificate", Pair{good.CertFile, other.KeyFile}, other.KeyFile, "does not match the certificate in " + good.CertFile},
		{"files swapped", Pair{good.KeyFile, good.CertFile}, good.KeyFile, "no PEM CERTIFICATE"},
		{"empty certificate", Pair{empty, good.KeyFile}, empty, "no PEM CERTIFICATE"},
		{"empty key", Pair{good.CertFile, empty}, empty, "no PEM PRIVATE KEY"},
	} {
		_, err := Load(tc.pair)
		var le *LoadError
		if !errors.As(err, &le) || le.File != tc.file || !strings.Contains(le.Reason, tc.inReason) {
			t.Errorf("%s: got %v, want a LoadError for %s with %q", tc.name, err, tc.file, tc.inReason)
		}
	}

	// An expired certificate loads (it serves rather than nothing) but fails Check.
	if _, err := Load(expired); err != nil {
		t.Errorf("expired: Load: %v", err)
	}
	if _, err := Check(expired, time.Now()); err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Errorf("expired: Check: %v", err)
	}
	if _, err := Check(good, time.Now().Add(-2*time.Hour)); err == nil || !strings.Contains(err.Error(), "not valid before") {
		t.Errorf("not yet valid: Check: %v", err)
	}
	if _, err := Check(good, time.Now()); err != nil {
		t.Errorf("good: Check: %v", err)
	}
}

func TestLoadCAs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	if _, err := LoadCAs(ca.WriteCA(t, dir, "ca.pem")); err != nil {
		t.Error(err)
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a bundle"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCAs(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad bundle: %v", err)
	}
	if _, err := LoadCAs(filepath.Join(dir, "none.pem")); err == nil {
		t.Error("missing bundle loaded")
	}
}

// FuzzParse feeds arbitrary bytes as certificate and key files: parse refuses or
// accepts, never panics, and what it accepts has a leaf.
func FuzzParse(f *testing.F) {
	ca := tlstest.NewCA(f, "fuzz CA")
	certPEM, keyPEM := ca.Issue(f, tlstest.Leaf{Names: []string{"f.example"}})
	f.Add(certPEM, keyPEM)
	f.Add(keyPEM, certPEM)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte("-----BEGIN PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, c, k []byte) {
		got, err := parse(Pair{"c", "k"}, c, k)
		if err == nil && (got.TLS.Leaf == nil || got.Name() == "") {
			t.Fatalf("accepted without a leaf or name")
		}
	})
}
