package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/shiftgate/shiftgate/conf"
)

// Store persists conf.Overrides. The local file store serves one instance; a fleet
// store (etcd) shares them between instances. Implementations are safe for concurrent
// use.
type Store interface {
	// Load returns the stored overrides (the zero value when none were stored).
	Load() (conf.Overrides, error)
	// Update applies change to the stored overrides atomically, stores the result
	// with a new Revision and returns it. A change that returns an error stores nothing.
	Update(ctx context.Context, change func(*conf.Overrides) error) (conf.Overrides, error)
	// Watch calls apply with the overrides each time they change elsewhere (another
	// instance), until ctx ends. Stores without other writers return at once.
	Watch(ctx context.Context, apply func(conf.Overrides)) error
	// Describe names the store for status and logs.
	Describe() string
	// Fleet returns the store's fleet abilities, or nil for a store that serves one
	// instance.
	Fleet() Fleet
	// Close releases the store's connections; the Store is not used after it.
	Close() error
}

// File keeps overrides in a JSON file in the state directory. Writes are atomic
// (temp file, fsync, rename, fsync of the directory), so a crash leaves the old or the
// new file, never half of one.
type File struct {
	path string
	mu   sync.Mutex
}

// OverridesFile is the file name of File inside the state directory.
const OverridesFile = "overrides.json"

// NewFile returns a store in dir, creating dir if needed.
func NewFile(dir string) (*File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	return &File{path: filepath.Join(dir, OverridesFile)}, nil
}

// ReadFile returns the overrides a File store in dir holds, without creating dir or
// anything in it: for tools that only read (a missing dir or file means none).
func ReadFile(dir string) (conf.Overrides, error) {
	return (&File{path: filepath.Join(dir, OverridesFile)}).load()
}

// Load implements Store.
func (s *File) Load() (conf.Overrides, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load()
}

func (s *File) load() (conf.Overrides, error) {
	var o conf.Overrides
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return o, nil
	}
	if err != nil {
		return o, err
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return o, fmt.Errorf("%s: %w", s.path, err)
	}
	return o, nil
}

// Update implements Store.
func (s *File) Update(_ context.Context, change func(*conf.Overrides) error) (conf.Overrides, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.load()
	if err != nil {
		return cur, fmt.Errorf("%w: %w", ErrNotPersisted, err)
	}
	next := cur.Clone()
	if err := change(&next); err != nil {
		return cur, err
	}
	next.Revision = cur.Revision + 1
	if err := s.Save(next); err != nil {
		return cur, fmt.Errorf("%w: %w", ErrNotPersisted, err)
	}
	return next, nil
}

// Save writes o as the stored overrides, atomically.
func (s *File) Save(o conf.Overrides) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.path, append(b, '\n'))
}

// Watch implements Store: a file store has no other writers.
func (s *File) Watch(ctx context.Context, _ func(conf.Overrides)) error { return nil }

// Describe implements Store.
func (s *File) Describe() string { return "file " + s.path }

// Close implements Store: a file store holds nothing open.
func (s *File) Close() error { return nil }

// Fleet implements Store: a file store serves one instance.
func (s *File) Fleet() Fleet { return nil }

// WriteFileAtomic writes data to path through a temp file in the same directory,
// fsyncs it, renames it into place and fsyncs the directory.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) //nolint:errcheck // gone after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() //nolint:errcheck // best effort: not every file system syncs directories
		d.Close()
	}
	return nil
}
