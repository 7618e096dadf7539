package conf

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// watchHarness runs a Watcher on a temp dir and collects what it reports.
type watchHarness struct {
	dir, path string
	mu        sync.Mutex
	configs   []*Config
	errs      []error
	events    chan struct{}
}

const harnessDebounce = 400 * time.Millisecond

func newWatchHarness(t *testing.T, initial string) *watchHarness {
	t.Helper()
	h := &watchHarness{dir: t.TempDir(), events: make(chan struct{}, 100)}
	h.path = filepath.Join(h.dir, "shiftgate.yaml")
	if err := os.WriteFile(h.path, []byte(initial), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *watchHarness) start(t *testing.T, path string) {
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(path, c.FileHash)
	h.collect(w, nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go w.Run(ctx)
	time.Sleep(50 * time.Millisecond) // let the watch be registered
}

// collect has w report to h, with the harness's debounce; refuse, when not nil, is
// what OnConfig returns (a config refused downstream).
func (h *watchHarness) collect(w *Watcher, refuse func(*Config) error) {
	// Long enough that the gap inside a two-step write stays within it on a loaded
	// machine; the tests are about how events fold, not about the debounce's length.
	w.Debounce = harnessDebounce
	w.OnConfig = func(c *Config) error {
		h.mu.Lock()
		h.configs = append(h.configs, c)
		h.mu.Unlock()
		h.events <- struct{}{}
		if refuse != nil {
			return refuse(c)
		}
		return nil
	}
	w.OnError = func(err error) {
		h.mu.Lock()
		h.errs = append(h.errs, err)
		h.mu.Unlock()
		h.events <- struct{}{}
	}
}

// wait blocks until the watcher reported n times in total, or fails after 10 s (a
// bound on a hang, not a measure: a loaded machine may take seconds to run the
// watcher's goroutine).
func (h *watchHarness) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		h.mu.Lock()
		got := len(h.configs) + len(h.errs)
		h.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-h.events:
		case <-deadline:
			t.Fatalf("watcher reported %d times, want %d", got, n)
		}
	}
}

// quiet asserts nothing more is reported for a while (debounced duplicates).
func (h *watchHarness) quiet(t *testing.T, n int) {
	t.Helper()
	time.Sleep(2 * harnessDebounce)
	h.mu.Lock()
	defer h.mu.Unlock()
	if got := len(h.configs) + len(h.errs); got != n {
		t.Fatalf("watcher reported %d times, want exactly %d (configs %d, errors %v)", got, n, len(h.configs), h.errs)
	}
}

func (h *watchHarness) lastPercent() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.configs[len(h.configs)-1].Routes[0].PercentBP
}

func withPercent(p string) string { return strings.Replace(base, "percent: 25", "percent: "+p, 1) }

func TestWatcherEventSequences(t *testing.T) {
	for _, tc := range []struct {
		name  string
		apply func(t *testing.T, h *watchHarness, text string)
	}{
		{"mv (rename into place)", func(t *testing.T, h *watchHarness, text string) {
			tmp := filepath.Join(h.dir, ".shiftgate.yaml.swp")
			os.WriteFile(tmp, []byte(text), 0o644)
			if err := os.Rename(tmp, h.path); err != nil {
				t.Fatal(err)
			}
		}},
		{"cp (write in place)", func(t *testing.T, h *watchHarness, text string) {
			src := filepath.Join(t.TempDir(), "new.yaml")
			os.WriteFile(src, []byte(text), 0o644)
			if out, err := exec.Command("cp", src, h.path).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
		}},
		{"sed -i", func(t *testing.T, h *watchHarness, text string) {
			p := strings.TrimPrefix(strings.Split(strings.Split(text, "percent: ")[1], "\n")[0], "")
			if out, err := exec.Command("sed", "-i", "s/percent: 25/percent: "+p+"/", h.path).CombinedOutput(); err != nil {
				t.Fatalf("sed: %v %s", err, out)
			}
		}},
		{"truncate then write in two steps", func(t *testing.T, h *watchHarness, text string) {
			f, _ := os.OpenFile(h.path, os.O_WRONLY|os.O_TRUNC, 0o644)
			f.WriteString(text[:len(text)/2])
			time.Sleep(5 * time.Millisecond)
			f.WriteString(text[len(text)/2:])
			f.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newWatchHarness(t, base)
			h.start(t, h.path)
			tc.apply(t, h, withPercent("30"))
			h.wait(t, 1)
			h.quiet(t, 1)
			if len(h.errs) > 0 {
				t.Fatalf("errors: %v", h.errs)
			}
			if got := h.lastPercent(); got != 3000 {
				t.Fatalf("percent %d bp, want 3000", got)
			}
		})
	}
}

// TestWatcherConfigMapSwap reproduces how Kubernetes updates a mounted ConfigMap: the
// file is a symlink through ..data to a timestamped directory, and an update swaps
// the ..data link atomically.
func TestWatcherConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	v1 := filepath.Join(dir, "..2026_11_22_v1")
	os.Mkdir(v1, 0o755)
	os.WriteFile(filepath.Join(v1, "shiftgate.yaml"), []byte(base), 0o644)
	os.Symlink("..2026_11_22_v1", filepath.Join(dir, "..data"))
	path := filepath.Join(dir, "shiftgate.yaml")
	os.Symlink("..data/shiftgate.yaml", path)
	h := &watchHarness{dir: dir, path: path, events: make(chan struct{}, 100)}
	h.start(t, path)

	v2 := filepath.Join(dir, "..2026_11_22_v2")
	os.Mkdir(v2, 0o755)
	os.WriteFile(filepath.Join(v2, "shiftgate.yaml"), []byte(withPercent("40")), 0o644)
	os.Symlink("..2026_11_22_v2", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(v1)
	h.wait(t, 1)
	h.quiet(t, 1)
	if got := h.lastPercent(); got != 4000 {
		t.Fatalf("percent %d bp, want 4000", got)
	}
}

// TestWatcherBrokenThenFixed renames a good file into place, then writes a broken one:
// the broken one is reported with file and line once, and a fix is picked up.
func TestWatcherBrokenThenFixed(t *testing.T) {
	h := newWatchHarness(t, base)
	h.start(t, h.path)
	tmp := h.path + ".new"
	os.WriteFile(tmp, []byte(withPercent("35")), 0o644)
	os.Rename(tmp, h.path)
	h.wait(t, 1)
	os.WriteFile(h.path, []byte(withPercent("135")), 0o644)
	h.wait(t, 2)
	h.quiet(t, 2)
	h.mu.Lock()
	if len(h.errs) != 1 || !strings.Contains(h.errs[0].Error(), "shiftgate.yaml:8: routes[0].percent") {
		t.Fatalf("errors %v, want one naming file:line and path", h.errs)
	}
	h.mu.Unlock()
	// Touching the broken file without changing it reports nothing new.
	os.WriteFile(h.path, []byte(withPercent("135")), 0o644)
	h.quiet(t, 2)
	os.WriteFile(h.path, []byte(withPercent("45")), 0o644)
	h.wait(t, 3)
	if got := h.lastPercent(); got != 4500 {
		t.Fatalf("percent %d bp, want 4500", got)
	}
}

func TestWatcherSkipsUnchangedBytes(t *testing.T) {
	h := newWatchHarness(t, base)
	h.start(t, h.path)
	os.WriteFile(h.path, []byte(base), 0o644) // same bytes: no reload
	h.quiet(t, 0)
}

// TestWatcherTriggerReloads: Trigger (SIGHUP) hands the file on even when its bytes
// are unchanged: bytes refused downstream for a file they name (a certificate, a
// key) load once that is fixed, and serving bytes are loaded again so that a Lua
// script or a static body edited on disk is read. File events with unchanged bytes
// hand nothing on. Before, SIGHUP did nothing until the config file itself changed.
func TestWatcherTriggerReloads(t *testing.T) {
	h := newWatchHarness(t, base)
	c, err := LoadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(h.path, c.FileHash)
	var mu sync.Mutex
	refuse, offered := true, 0
	w.OnConfig = func(*Config) error {
		mu.Lock()
		defer mu.Unlock()
		offered++
		h.events <- struct{}{}
		if refuse {
			return os.ErrInvalid
		}
		return nil
	}
	w.OnError = func(err error) { t.Errorf("OnError: %v", err) }
	os.WriteFile(h.path, []byte(withPercent("35")), 0o644)
	count := func() int { mu.Lock(); defer mu.Unlock(); return offered }
	w.reload(false, false) // the edit's event: offered, refused
	w.reload(false, false) // another event, same bytes: not offered again
	if n := count(); n != 1 {
		t.Fatalf("offered %d times, want 1", n)
	}
	mu.Lock()
	refuse = false // the certificate is fixed
	mu.Unlock()
	w.reload(true, true) // SIGHUP
	if n := count(); n != 2 {
		t.Fatalf("offered %d times after SIGHUP, want 2", n)
	}
	w.reload(false, false) // a file event, same bytes: nothing
	if n := count(); n != 2 {
		t.Fatalf("offered %d times after an event with the same bytes, want 2", n)
	}
	w.reload(true, true) // SIGHUP again: the serving bytes are read again (a script may have changed)
	if n := count(); n != 3 {
		t.Fatalf("offered %d times after a second SIGHUP, want 3", n)
	}
}

// TestWatcherFollowsNamedFiles: an edit of a file the config names (a static
// body_file, here in a directory of its own, and a Lua file) hands the config on with
// the new contents, without SIGHUP and with the config's bytes unchanged; a named file
// written with the same bytes hands nothing on; and a config refused downstream for
// its Lua file is offered again once that file is fixed. Before, only the config
// file was watched and such edits needed a SIGHUP.
func TestWatcherFollowsNamedFiles(t *testing.T) {
	h := newWatchHarness(t, "")
	bodies := filepath.Join(h.dir, "bodies")
	if err := os.Mkdir(bodies, 0o755); err != nil {
		t.Fatal(err)
	}
	body, script := filepath.Join(bodies, "feed.json"), filepath.Join(h.dir, "feed.lua")
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(body, `{"v":1}`)
	write(script, "return 1")
	cfg := base + `    fallback:
      static: {status: 200, body_file: bodies/feed.json}
  - name: other
    match: {path_prefix: /other}
    fallback:
      lua: {file: feed.lua}
`
	write(h.path, cfg)
	c, err := LoadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.NamedFiles(), []string{body, script}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("NamedFiles %q, want %q", got, want)
	}
	w := NewWatcher(h.path, c.FileHash)
	w.Follow(c)
	h.collect(w, func(c *Config) error {
		if strings.Contains(c.Routes[1].Fallback.Lua.Code, "broken") {
			return os.ErrInvalid // refused downstream
		}
		return nil
	})
	w.Ready = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go w.Run(ctx)
	<-w.Ready
	last := func() *Config {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.configs[len(h.configs)-1]
	}

	write(body, `{"v":2}`)
	h.wait(t, 1)
	if got := string(last().Routes[0].Fallback.Static.Bytes); got != `{"v":2}` {
		t.Fatalf("after the body edit the config serves %q", got)
	}
	// A body renamed into place, as editors save.
	tmp := filepath.Join(bodies, ".feed.json.swp")
	write(tmp, `{"v":3}`)
	if err := os.Rename(tmp, body); err != nil {
		t.Fatal(err)
	}
	h.wait(t, 2)
	if got := string(last().Routes[0].Fallback.Static.Bytes); got != `{"v":3}` {
		t.Fatalf("after the body was renamed into place the config serves %q", got)
	}
	write(body, `{"v":3}`) // same bytes
	h.quiet(t, 2)

	write(script, "broken(")
	h.wait(t, 3) // offered, refused downstream
	write(script, "return 2")
	h.wait(t, 4)
	if got := last().Routes[1].Fallback.Lua.Code; got != "return 2" {
		t.Fatalf("after the script was fixed the config serves %q", got)
	}
	h.quiet(t, 4)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errs) != 0 {
		t.Fatalf("errors reported: %v", h.errs)
	}
}

// TestWatcherFollowsFilesOfABrokenConfig: a config edited to name a body_file that
// does not exist yet is refused (reported once); creating that file loads it, without
// SIGHUP. Before, a config that did not parse had its named files unfollowed.
func TestWatcherFollowsFilesOfABrokenConfig(t *testing.T) {
	h := newWatchHarness(t, "")
	bodies := filepath.Join(h.dir, "bodies")
	if err := os.Mkdir(bodies, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(bodies, "a.json"), []byte(`{"v":"a"}`), 0o644)
	cfg := func(name string) string {
		return base + "    fallback:\n      static: {status: 200, body_file: bodies/" + name + "}\n"
	}
	os.WriteFile(h.path, []byte(cfg("a.json")), 0o644)
	c, err := LoadFile(h.path)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(h.path, c.FileHash)
	w.Follow(c)
	h.collect(w, nil)
	w.Ready = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go w.Run(ctx)
	<-w.Ready

	os.WriteFile(h.path, []byte(cfg("b.json")), 0o644) // b.json does not exist yet
	h.wait(t, 1)
	h.mu.Lock()
	if len(h.errs) != 1 || !strings.Contains(h.errs[0].Error(), "b.json") {
		t.Fatalf("errors %v, want the missing b.json reported", h.errs)
	}
	h.mu.Unlock()
	os.WriteFile(filepath.Join(bodies, "b.json"), []byte(`{"v":"b"}`), 0o644)
	h.wait(t, 2)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.configs) != 1 || string(h.configs[0].Routes[0].Fallback.Static.Bytes) != `{"v":"b"}` {
		t.Fatalf("after b.json was created: configs %d, errors %v; want the config with b.json loaded", len(h.configs), h.errs)
	}
}

func TestNamedFilesIn(t *testing.T) {
	data := []byte(base + "    fallback:\n      static: {status: 200, body_file: bodies/b.json}\n" +
		"  - name: other\n    match: {path_prefix: /o}\n    percent: nope\n    fallback: {lua: {file: /abs/x.lua}}\nadmin: {token_file: tok}\n")
	got := NamedFilesIn("/etc/sg/c.yaml", data)
	want := []string{"/etc/sg/bodies/b.json", "/abs/x.lua", "/etc/sg/tok"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("NamedFilesIn %q, want %q", got, want)
	}
	if got := NamedFilesIn("c.yaml", []byte("a: [")); got != nil {
		t.Fatalf("not YAML: %q", got)
	}
	laughs := "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
	if got := NamedFilesIn("c.yaml", []byte(laughs)); got != nil {
		t.Fatalf("a billion laughs: %q", got)
	}
}

// FuzzNamedFilesIn: whatever bytes a config file holds, listing the files they name
// never panics, and names nothing for bytes Parse's limits refuse.
func FuzzNamedFilesIn(f *testing.F) {
	f.Add([]byte(base + "    fallback:\n      static: {status: 200, body_file: b.json}\n"))
	f.Add([]byte("routes: [{fallback: {lua: {file: [1]}}}]\nadmin: 7\n"))
	f.Add([]byte("a: &a [x]\nb: [*a, *a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range NamedFilesIn("/etc/sg/c.yaml", data) {
			if name == "" || !filepath.IsAbs(name) {
				t.Fatalf("named file %q: want a resolved path", name)
			}
		}
	})
}
