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

// Watcher follows a config file, and the files it names (a static body_file, a Lua
// file, the admin token_file), and calls back with each new version that parses.
// It watches directories, not files, so renames into place (editors, `mv`), writes
// in place (`cp`, `sed -i`) and Kubernetes ConfigMap `..data` symlink swaps are all
// seen. Unchanged bytes are skipped.
type Watcher struct {
	Path     string
	Debounce time.Duration
	// OnConfig receives each new config that parsed. It returns an error when the
	// config was refused downstream, and reports that refusal itself: the watcher
	// only remembers what it offered, so an event with the same refused contents
	// does not hand them on again (Trigger does).
	OnConfig func(*Config) error
	// OnError receives parse and read errors; the serving config stays.
	OnError func(error)
	// Ready, when not nil, is closed once the files are watched.
	Ready chan struct{}

	last    uint64 // the config file's bytes, as last read
	content uint64 // Hash of the config last offered or in service: its bytes and named files
	// serving and offered are the named files (absolute) of the config in service
	// and of the one last offered (a refused config's files are followed too:
	// fixing the Lua file that made it fail is an edit to load).
	serving, offered []string
	followed         bool // Follow was called: the named files are known
	kick             chan struct{}
}

// NewWatcher returns a watcher for path; lastHash is the hash of the config already
// serving, so the first read of an unchanged file is skipped.
func NewWatcher(path string, lastHash uint64) *Watcher {
	return &Watcher{Path: path, Debounce: DefaultDebounce, last: lastHash, kick: make(chan struct{}, 1)}
}

// Follow tells the watcher, before Run, which config is in service: the files it
// names are watched too, and an edit of one hands on the config read again.
func (w *Watcher) Follow(c *Config) {
	w.content = c.Hash
	w.serving = absFiles(c.NamedFiles())
	w.followed = true
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
	self, err := filepath.Abs(w.Path)
	if err != nil {
		return err
	}
	dirs := map[string]bool{}
	if err := w.watchDirs(fw, self, dirs); err != nil {
		return err
	}
	// An edit made after the serving config was read but before the watch began
	// would otherwise go unseen: look once now (unchanged contents are skipped).
	w.reload(false, w.followed)
	w.watchDirs(fw, self, dirs) //nolint:errcheck // reported inside
	if w.Ready != nil {
		close(w.Ready)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	named := false // an event touched a named file: read them even if the config's bytes did not change
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			// Our file, a file it names, or a ConfigMap data link whose swap changes
			// what they point to.
			name := filepath.Clean(ev.Name)
			switch {
			case name == self || (filepath.Base(name) == "..data" && filepath.Dir(name) == filepath.Dir(self)):
			case w.names(name):
				named = true
			default:
				continue
			}
			timer.Reset(w.debounce())
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.report(err)
		case <-w.kick:
			w.reload(true, true)
			w.watchDirs(fw, self, dirs) //nolint:errcheck // reported inside
		case <-timer.C:
			w.reload(false, named)
			named = false
			w.watchDirs(fw, self, dirs) //nolint:errcheck // reported inside
		}
	}
}

// names reports whether an event on name concerns a named file being followed:
// the file itself, or a ConfigMap data link in its directory.
func (w *Watcher) names(name string) bool {
	link := filepath.Base(name) == "..data"
	for _, list := range [][]string{w.serving, w.offered} {
		for _, f := range list {
			if f == name || (link && filepath.Dir(f) == filepath.Dir(name)) {
				return true
			}
		}
	}
	return false
}

// absFiles makes paths absolute, as fsnotify names the events of absolute
// directories; one that cannot be is left out.
func absFiles(paths []string) []string {
	out := paths[:0:0]
	for _, p := range paths {
		if abs, err := filepath.Abs(p); err == nil {
			out = append(out, abs)
		}
	}
	return out
}

// watchDirs makes the directories watched those of the config file and of the
// files followed; it returns the error of the config file's own directory.
func (w *Watcher) watchDirs(fw *fsnotify.Watcher, self string, dirs map[string]bool) error {
	want := map[string]bool{filepath.Dir(self): true}
	for _, list := range [][]string{w.serving, w.offered} {
		for _, f := range list {
			want[filepath.Dir(f)] = true
		}
	}
	var selfErr error
	for d := range want {
		if dirs[d] {
			continue
		}
		if err := fw.Add(d); err != nil {
			if d == filepath.Dir(self) {
				selfErr = err
			} else {
				w.report(err)
			}
			continue
		}
		dirs[d] = true
	}
	for d := range dirs {
		if !want[d] {
			fw.Remove(d) //nolint:errcheck // gone already, or not watched
			delete(dirs, d)
		}
	}
	return selfErr
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

// reload reads the file and hands a changed, valid config on. named reads it even
// when its bytes are unchanged (a file it names had an event), and hands it on when
// what it serves changed; force hands it on in any case.
func (w *Watcher) reload(force, named bool) {
	data, err := ReadFile(w.Path)
	if err != nil {
		w.report(err)
		return
	}
	h := xxhash.Sum64(data)
	if h == w.last && !force && !named {
		return
	}
	c, err := Parse(w.Path, data)
	if err != nil {
		// Remember the hash: the same broken bytes are reported once, and again only
		// when an operator asks (Trigger) or a file they name changes. The files
		// they name are followed all the same: creating the body_file they are
		// missing loads them.
		w.last = h
		w.offered = absFiles(NamedFilesIn(w.Path, data))
		w.report(err)
		return
	}
	w.last = h
	if c.Hash == w.content && !force {
		return // the bytes and the named files serve what was offered last
	}
	// A config refused downstream is OnConfig's to report: OnError is for files
	// that did not load, so each failure is counted and logged once.
	w.content = c.Hash
	w.offered = absFiles(c.NamedFiles())
	if w.OnConfig(c) == nil {
		w.serving = w.offered
	}
}
