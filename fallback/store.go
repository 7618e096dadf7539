package fallback

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultFlushEvery is how often a Store persists changed caches and sweeps expired
// entries when StoreOptions.FlushEvery is zero.
const DefaultFlushEvery = 10 * time.Second

// tmpPrefix starts the names of files being written; Open removes leftovers of a
// crash mid-write.
const tmpPrefix = ".tmp-"

// StoreOptions configures a Store. The zero value is usable.
type StoreOptions struct {
	// FlushEvery is the period of the background flusher, which writes the caches
	// that changed and sweeps expired entries (DefaultFlushEvery).
	FlushEvery time.Duration
	// Logf reports problems that do not stop the store: ignored cache files and
	// failed flushes (log.Printf when nil).
	Logf func(format string, args ...any)
}

// Store is the registry of the routes' caches, keyed by route name. It lives outside
// any config snapshot, so a cache and its entries survive config reloads, and with a
// directory it persists the caches so that a restarted gateway can serve fallbacks
// while every backend is down.
//
// All methods are safe for concurrent use.
type Store struct {
	dir  string
	logf func(format string, args ...any)

	mu       sync.Mutex
	caches   map[string]*Cache
	loaded   map[string][]keyedEntry // read at Open, not yet claimed by Cache
	loadErrs []error
	closed   bool

	// flushMu serializes writing and deleting files, so that a flush running while
	// Retain drops a route cannot bring the route's file back.
	flushMu sync.Mutex

	stop chan struct{}
	done chan struct{}
}

// Open returns a store persisting into dir, reading back the caches persisted there
// and starting the background flusher; an empty dir keeps the caches in memory only
// (the flusher then only sweeps).
//
// Open fails only when dir cannot be created or listed. A cache file that cannot be
// read back is reported through Logf and LoadErrors, renamed with a ".corrupt"
// suffix and otherwise ignored. Persisted entries are handed to the route's cache by
// the first Store.Cache call for the route, which drops those older than its TTL.
// Call Close to stop the flusher and persist a last time.
func Open(dir string, opt StoreOptions) (*Store, error) {
	if opt.FlushEvery <= 0 {
		opt.FlushEvery = DefaultFlushEvery
	}
	s := &Store{
		dir:    dir,
		logf:   opt.Logf,
		caches: make(map[string]*Cache),
		loaded: make(map[string][]keyedEntry),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if s.logf == nil {
		s.logf = log.Printf
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("fallback: cache dir: %w", err)
		}
		if err := s.loadDir(); err != nil {
			return nil, err
		}
	}
	go s.flusher(opt.FlushEvery)
	return s, nil
}

// loadDir reads every cache file of s.dir into s.loaded.
func (s *Store) loadDir() error {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("fallback: cache dir: %w", err)
	}
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(s.dir, name)
		if strings.HasPrefix(name, tmpPrefix) {
			os.Remove(path)
			continue
		}
		if !de.Type().IsRegular() || !strings.HasSuffix(name, fileExt) {
			continue
		}
		route, entries, err := readCacheFile(path)
		if err == nil && fileName(route) != name {
			err = fmt.Errorf("%w: file holds route %q", ErrCorrupt, route)
		}
		if err == nil {
			s.loaded[route] = entries
			continue
		}
		err = fmt.Errorf("fallback: ignoring cache file %s: %w", path, err)
		s.loadErrs = append(s.loadErrs, err)
		s.logf("%v", err)
		if errors.Is(err, ErrCorrupt) {
			// Keep the evidence out of the way of the next load and flush.
			os.Rename(path, path+".corrupt")
		}
	}
	return nil
}

// readCacheFile reads and decodes one cache file.
func readCacheFile(path string) (string, []keyedEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return "", nil, err
	}
	if len(data) > maxFileSize {
		return "", nil, fmt.Errorf("%w: larger than %d bytes", ErrCorrupt, maxFileSize)
	}
	return decodeCache(data)
}

// LoadErrors returns the problems met reading the persisted caches at Open, one per
// ignored file; errors about file contents wrap ErrCorrupt.
func (s *Store) LoadErrors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.loadErrs)
}

// Cache returns route's cache, creating it on first use (with the entries persisted
// for the route, less those past cfg's TTL). A later call with a changed cfg adjusts
// the same cache in place, evicting what no longer fits, so the proxy can bind it
// into every new config snapshot.
func (s *Store) Cache(route string, cfg CacheConfig) *Cache {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.caches[route]; ok {
		c.reconfigure(cfg)
		return c
	}
	c := newCache(cfg, defaultShards, time.Now)
	if entries, ok := s.loaded[route]; ok {
		c.load(entries)
		delete(s.loaded, route)
	}
	s.caches[route] = c
	return c
}

// Retain drops the caches, persisted files included, of every route not in routes:
// the proxy calls it with the routes of each new config.
func (s *Store) Retain(routes []string) {
	keep := make(map[string]bool, len(routes))
	for _, r := range routes {
		keep[r] = true
	}
	var gone []string
	s.mu.Lock()
	for r := range s.caches {
		if !keep[r] {
			delete(s.caches, r)
			gone = append(gone, r)
		}
	}
	for r := range s.loaded {
		if !keep[r] {
			delete(s.loaded, r)
			gone = append(gone, r)
		}
	}
	s.mu.Unlock()
	if s.dir == "" || len(gone) == 0 {
		return
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	for _, r := range gone {
		err := os.Remove(filepath.Join(s.dir, fileName(r)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.logf("fallback: removing cache of dropped route %q: %v", r, err)
		}
	}
}

// Range calls fn for every route's cache, in route name order, for metrics. It holds
// no lock while fn runs.
func (s *Store) Range(fn func(route string, c *Cache)) {
	type named struct {
		route string
		c     *Cache
	}
	s.mu.Lock()
	all := make([]named, 0, len(s.caches))
	for r, c := range s.caches {
		all = append(all, named{r, c})
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b named) int { return strings.Compare(a.route, b.route) })
	for _, n := range all {
		fn(n.route, n.c)
	}
}

// Flush persists every cache that changed since it was last persisted. Without a
// directory, or after Close, it does nothing. The flusher calls it periodically and
// Close once more.
func (s *Store) Flush() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	return s.flush()
}

// flush is Flush without the closed check.
func (s *Store) flush() error {
	if s.dir == "" {
		return nil
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	var errs []error
	s.Range(func(route string, c *Cache) {
		if !c.dirty.Swap(false) {
			return
		}
		s.mu.Lock()
		current := s.caches[route] == c
		s.mu.Unlock()
		if !current { // dropped by Retain meanwhile
			return
		}
		if err := s.writeCache(route, c); err != nil {
			c.dirty.Store(true) // try again next time
			errs = append(errs, fmt.Errorf("fallback: persisting cache of %q: %w", route, err))
		}
	})
	return errors.Join(errs...)
}

// writeCache writes c's entries to route's file atomically: a temporary file in the
// same directory, fsync, rename over the old file, fsync of the directory.
func (s *Store) writeCache(route string, c *Cache) error {
	name := fileName(route)
	f, err := os.CreateTemp(s.dir, tmpPrefix+name+"-*")
	if err != nil {
		return err
	}
	err = encodeCache(f, route, time.Now(), c.snapshot())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(s.dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	// The rename is durable only once the directory is; not every platform can
	// sync a directory, so a failure here is not an error.
	if d, err := os.Open(s.dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// sweep drops expired entries of every cache.
func (s *Store) sweep() {
	s.Range(func(_ string, c *Cache) { c.Sweep() })
}

// flusher sweeps and persists every period until Close.
func (s *Store) flusher(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.sweep()
			if err := s.flush(); err != nil {
				s.logf("%v", err)
			}
		case <-s.stop:
			return
		}
	}
}

// Close stops the flusher and persists the changed caches a last time, returning
// the error of that flush. The caches stay usable in memory; nothing is persisted
// after Close. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	closed := s.closed
	s.closed = true
	s.mu.Unlock()
	if closed {
		return nil
	}
	close(s.stop)
	<-s.done
	return s.flush()
}
