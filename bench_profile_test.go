package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchProfiles: `loadtest bench -profile DIR` leaves, for a shiftgate run, a CPU
// profile that names the request path, mutex and block profiles and a runtime trace,
// taken from the running gateway's admin listener during the measured part.
func TestBenchProfiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the bench")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "shiftgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	profiles := filepath.Join(dir, "profiles")
	cmd := exec.Command(bin, "loadtest", "bench", "-targets", "shiftgate", "-conns", "4", "-rounds", "1",
		"-duration", "2s", "-warmup", "0", "-proxy-cpu", "-1", "-load-cpu", "-1", "-users", "10",
		"-profile", profiles)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "profiles of shiftgate at 4 conns") || !strings.Contains(string(out), "CPU samples; lock waits") {
		t.Errorf("the bench does not say where the profiles are and what they show:\n%s", out)
	}
	base := filepath.Join(profiles, "shiftgate-4c-run1")
	// A pprof profile is a gzipped protocol buffer whose string table names the
	// functions of its samples.
	for _, c := range []struct{ suffix, names string }{
		// Any sample in the gateway's own request path (a second of samples at
		// 100 Hz; on a loaded machine fewer, but not none).
		{"cpu.pprof", "github.com/shiftgate/shiftgate/proxy"},
		{"mutex.pprof", "contentions"},
		{"block.pprof", "contentions"},
	} {
		raw := gunzipFile(t, base+"."+c.suffix)
		if !bytes.Contains(raw, []byte(c.names)) {
			t.Errorf("%s.%s does not name %q", base, c.suffix, c.names)
		}
	}
	trace, err := os.ReadFile(base + ".trace")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(trace, []byte("go 1.")) || len(trace) < 1024 {
		t.Errorf("%s.trace is not a runtime trace (%d bytes, starts %q)", base, len(trace), trace[:min(len(trace), 16)])
	}
}

func gunzipFile(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return raw
}
