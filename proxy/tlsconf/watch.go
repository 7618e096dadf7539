package tlsconf

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher defaults.
const (
	// DefaultDebounce folds the steps of one renewal (certificate, then key; or a
	// directory of new files, then a symlink swap) into one reload.
	DefaultDebounce = 200 * time.Millisecond
	// DefaultEvery is how often the files are read again without any event, for
	// file systems that send none (NFS, some container mounts).
	DefaultEvery = time.Minute
)

// Watcher reloads a Live's certificates when their files change. Like the config
// watcher it watches directories, not files, so renames into place, writes in place,
// certbot's symlinks and Kubernetes secret (`..data`) swaps are all seen; it follows
// the files Live holds as configs change them. Unchanged bytes cost a read and a
// hash. Its fields are read by Run; set them before.
type Watcher struct {
	Live     *Live
	Debounce time.Duration
	// Every is the period of reads without events; 0 means DefaultEvery, < 0 none.
	Every time.Duration
	// OnError receives the watcher's own errors (a directory that cannot be
	// watched); refused certificates go to Live.OnEvent.
	OnError func(error)

	kick chan struct{}
}

// NewWatcher returns a watcher for l with the default debounce and period.
func NewWatcher(l *Live) *Watcher {
	return &Watcher{Live: l, kick: make(chan struct{}, 1)}
}

// Trigger asks for a reload now (SIGHUP); it never blocks.
func (w *Watcher) Trigger() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run watches until ctx ends; it returns an error only when it cannot watch at all.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	var tick <-chan time.Time
	every := w.Every
	if every == 0 {
		every = DefaultEvery
	}
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()

	dirs := map[string]bool{}  // watched directories
	names := map[string]bool{} // dir/base of every file, as events name them
	follow := func() {
		want := map[string]bool{}
		clear(names)
		for _, f := range w.Live.Files() {
			d := filepath.Dir(f)
			want[d] = true
			names[filepath.Join(d, filepath.Base(f))] = true
		}
		for d := range dirs {
			if !want[d] {
				fw.Remove(d) //nolint:errcheck // it may be gone already
				delete(dirs, d)
			}
		}
		for d := range want {
			if dirs[d] {
				continue
			}
			if err := fw.Add(d); err != nil {
				w.report(err)
				continue
			}
			dirs[d] = true
		}
	}
	follow()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.Live.Changed():
			follow()
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if names[filepath.Clean(ev.Name)] || filepath.Base(ev.Name) == "..data" {
				timer.Reset(debounce)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.report(err)
		case <-w.kick:
			w.Live.Reload()
		case <-timer.C:
			w.Live.Reload()
		case <-tick:
			w.Live.Reload()
			// A directory created after start (or deleted and made again) is
			// picked up here.
			follow()
		}
	}
}

func (w *Watcher) report(err error) {
	if w.OnError != nil {
		w.OnError(err)
	}
}
