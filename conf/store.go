package conf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// OverrideStore persists Overrides. The local file store serves one instance; a fleet
// store (etcd) shares them between instances. Implementations are safe for concurrent
// use.
type OverrideStore interface {
	// Load returns the stored overrides (the zero value when none were stored).
	Load() (Overrides, error)
	// Update applies change to the stored overrides atomically, stores the result
	// with a new Revision and returns it. A change that returns an error stores nothing.
	Update(ctx context.Context, change func(*Overrides) error) (Overrides, error)
	// Watch calls apply with the overrides each time they change elsewhere (another
	// instance), until ctx ends. Stores without other writers return at once.
	Watch(ctx context.Context, apply func(Overrides)) error
	// Describe names the store for status and logs.
	Describe() string
}

// FileStore keeps overrides in a JSON file in the state directory. Writes are atomic
// (temp file, fsync, rename, fsync of the directory), so a crash leaves the old or the
// new file, never half of one.
type FileStore struct {
	path string
	mu   sync.Mutex
}

// OverridesFile is the file name of FileStore inside the state directory.
const OverridesFile = "overrides.json"

// NewFileStore returns a store in dir, creating dir if needed.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state_dir: %w", err)
	}
	return &FileStore{path: filepath.Join(dir, OverridesFile)}, nil
}

// Load implements OverrideStore.
func (s *FileStore) Load() (Overrides, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load()
}

func (s *FileStore) load() (Overrides, error) {
	var o Overrides
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

// Update implements OverrideStore.
func (s *FileStore) Update(_ context.Context, change func(*Overrides) error) (Overrides, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.load()
	if err != nil {
		return cur, err
	}
	next := cur.Clone()
	if err := change(&next); err != nil {
		return cur, err
	}
	next.Revision = cur.Revision + 1
	if err := s.Save(next); err != nil {
		return cur, err
	}
	return next, nil
}

// Save writes o as the stored overrides, atomically.
func (s *FileStore) Save(o Overrides) error {
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.path, append(b, '\n'))
}

// Watch implements OverrideStore: a file store has no other writers.
func (s *FileStore) Watch(ctx context.Context, _ func(Overrides)) error { return nil }

// Describe implements OverrideStore.
func (s *FileStore) Describe() string { return "file " + s.path }

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
