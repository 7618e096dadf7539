package conf

import (
	"context"
	"path/filepath"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long a watcher waits after the last file event before it
// reads the file: editors and `cp` write in several steps, and a ConfigMap swap
// renames a symlink after writing a new directory.
const DefaultDebounce = 200 * time.Millisecond

// Watcher follows a config file and calls back with each new version that parses.
// It watches the file's directory, not the file, so renames into place (editors,
// `mv`), writes in place (`cp`, `sed -i`) and Kubernetes ConfigMap `..data` symlink
// swaps are all seen. Unchanged bytes are skipped.
type Watcher struct {
	Path     string
	Debounce time.Duration
	// OnConfig receives each new config that parsed. It returns an error when the
	// config was refused downstream, and reports that refusal itself: the watcher
	// only remembers the bytes, so a file event with the same refused bytes does not
	// hand them on again (Trigger does).
	OnConfig func(*Config) error
	// OnError receives parse and read errors; the serving config stays.
	OnError func(error)
	// Ready, when not nil, is closed once the file is watched.
	Ready chan struct{}

	last uint64
	kick chan struct{}
}

// NewWatcher returns a watcher for path; lastHash is the hash of the config already
// serving, so the first read of an unchanged file is skipped.
func NewWatcher(path string, lastHash uint64) *Watcher {
	return &Watcher{Path: path, Debounce: DefaultDebounce, last: lastHash, kick: make(chan struct{}, 1)}
}

// Trigger asks for a reload now (SIGHUP), even of unchanged bytes: the files the
// config names (a Lua script, a static body, a token, a certificate that made it
// fail) may have changed, and an operator who sends SIGHUP means it.
func (w *Watcher) Trigger() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	dir := filepath.Dir(w.Path)
	if err := fw.Add(dir); err != nil {
		return err
	}
	// An edit made after the serving config was read but before the watch began
	// would otherwise go unseen: look once now (unchanged bytes are skipped).
	w.reload(false)
	if w.Ready != nil {
		close(w.Ready)
	}
	base := filepath.Base(w.Path)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			name := filepath.Base(ev.Name)
			// Our file, or the ConfigMap data link whose swap changes what it points to.
			if name == base || name == "..data" {
				timer.Reset(w.debounce())
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.report(err)
		case <-w.kick:
			w.reload(true)
		case <-timer.C:
			w.reload(false)
		}
	}
}

func (w *Watcher) debounce() time.Duration {
	if w.Debounce <= 0 {
		return DefaultDebounce
	}
	return w.Debounce
}

func (w *Watcher) report(err error) {
	if w.OnError != nil {
		w.OnError(err)
	}
}

// reload reads the file and hands a changed, valid config on; force hands on
// unchanged bytes too.
func (w *Watcher) reload(force bool) {
	data, err := ReadFile(w.Path)
	if err != nil {
		w.report(err)
		return
	}
	h := xxhash.Sum64(data)
	if h == w.last && !force {
		return
	}
	c, err := Parse(w.Path, data)
	if err != nil {
		// Remember the hash: the same broken bytes are reported once, and again only
		// when an operator asks (Trigger).
		w.last = h
		w.report(err)
		return
	}
	// A config refused downstream is OnConfig's to report: OnError is for files
	// that did not load, so each failure is counted and logged once.
	w.OnConfig(c) //nolint:errcheck // reported by OnConfig's owner
	w.last = h
}
