package conf

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// billionLaughs returns a valid config followed by n levels of nine aliases each,
// the last used as a route's force list: 9^n names in well under 2 KB.
func billionLaughs(levels int) string {
	var b strings.Builder
	b.WriteString(base)
	b.WriteString("lol0: &l0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n")
	for i := 1; i < levels; i++ {
		a := fmt.Sprintf("*l%d", i-1)
		fmt.Fprintf(&b, "lol%d: &l%d [%s, %s, %s, %s, %s, %s, %s, %s, %s]\n", i, i, a, a, a, a, a, a, a, a, a)
	}
	return b.String()
}

// TestParseRefusesAliasBomb: a kilobyte of nested aliases (a billion nodes once
// expanded) is refused with file:line, having allocated a bounded amount. Before the
// bound, Parse expanded it (the key index walks aliases) and grew past gigabytes.
func TestParseRefusesAliasBomb(t *testing.T) {
	bomb := billionLaughs(10)
	if len(bomb) > 1500 {
		t.Fatalf("the bomb is %d bytes, want a small file", len(bomb))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Parse("bomb.yaml", []byte(bomb))
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("alias bomb accepted")
	}
	if !strings.Contains(err.Error(), "bomb.yaml:") || !strings.Contains(err.Error(), "alias *l") ||
		!strings.Contains(err.Error(), "expands past") {
		t.Errorf("error %q does not name file:line and the alias", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("refusing the bomb allocated %d MB, want a few", alloc>>20)
	}
	t.Logf("%d-byte bomb refused: %v (allocated %d KB)", len(bomb), err, (after.TotalAlloc-before.TotalAlloc)>>10)
}

// TestParseRefusesRecursiveAlias: an alias inside the node it names (found by a fuzz
// of the watcher's file listing) is refused with file:line. Before, counting its nodes
// recursed without end: `shiftgate check` died of a stack overflow, and so would a
// serving gateway whose config file was edited so.
func TestParseRefusesRecursiveAlias(t *testing.T) {
	for _, doc := range []string{
		"a: &a [x\nb:b:*a, *a]\n",
		"a: &a [*a]\n",
		"a: &a {b: *a}\n",
		base + "x-loop: &l [1, [2, *l]]\n",
	} {
		_, err := Parse("loop.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), "loop.yaml:") || !strings.Contains(err.Error(), "recursive alias") {
			t.Errorf("%q: %v, want a recursive alias refused with file:line", doc, err)
		}
	}
}

func TestParseNodeBounds(t *testing.T) {
	// Anchors used as people use them (shared breaker settings) are fine.
	shared := strings.Replace(base, "routes:", "defaults: &br {min_requests: 10, failure_ratio: 0.5}\nroutes:", 1) +
		"    breaker: *br\n"
	if _, err := Parse("c.yaml", []byte(strings.Replace(shared, "defaults:", "x-defaults:", 1))); err != nil &&
		strings.Contains(err.Error(), "YAML nodes") {
		t.Errorf("a shared anchor was refused as a bomb: %v", err)
	}
	// A bomb of few levels stays under the bound (and is refused only as unknown keys).
	if _, err := Parse("c.yaml", []byte(billionLaughs(3))); err == nil || strings.Contains(err.Error(), "YAML nodes") {
		t.Errorf("729 nodes: %v, want an unknown-key error, not the node bound", err)
	}
	// A long flat list without aliases is bounded too, at the node that crosses.
	flat := "x: [" + strings.Repeat("1,", MaxNodes) + "1]\n"
	_, err := Parse("flat.yaml", []byte(flat))
	if err == nil || !strings.Contains(err.Error(), "flat.yaml:1: x[") || !strings.Contains(err.Error(), "YAML nodes") {
		t.Errorf("flat list of %d items: %v", MaxNodes+1, err)
	}
	// Bytes over the file bound are refused before parsing.
	if _, err := Parse("big.yaml", make([]byte, MaxFileBytes+1)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized bytes: %v", err)
	}
}

// TestReadFileBound: a file over MaxFileBytes is refused without reading it whole.
func TestReadFileBound(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse 100 MB file: the bound must stop the read, not the disk.
	if err := f.Truncate(100 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = LoadFile(big)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "big.yaml: file is larger than") {
		t.Fatalf("100 MB file: %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("refusing a 100 MB file allocated %d MB", alloc>>20)
	}
	ok := filepath.Join(dir, "ok.yaml")
	os.WriteFile(ok, []byte(base), 0o644)
	if _, err := LoadFile(ok); err != nil {
		t.Errorf("small file: %v", err)
	}
}

// TestWatcherBombThenGoodEdit: an alias bomb written to the watched file is refused,
// and the good edit after it is applied. Before the bound the bomb held the watcher
// for minutes and the good edit was never applied.
func TestWatcherBombThenGoodEdit(t *testing.T) {
	h := newWatchHarness(t, base)
	h.start(t, h.path)
	os.WriteFile(h.path, []byte(billionLaughs(10)), 0o644)
	h.wait(t, 1)
	h.mu.Lock()
	if len(h.errs) != 1 || !strings.Contains(h.errs[0].Error(), "shiftgate.yaml:") || !strings.Contains(h.errs[0].Error(), "expands past") {
		t.Fatalf("errors %v, want the bomb refused with file:line", h.errs)
	}
	h.mu.Unlock()
	os.WriteFile(h.path, []byte(withPercent("45")), 0o644)
	h.wait(t, 2)
	if got := h.lastPercent(); got != 4500 {
		t.Fatalf("percent %d bp after the good edit, want 4500", got)
	}
}
