package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNotPersisted is wrapped by the error of a File write that the state directory
// did not take (disk full, read-only, a directory where the file belongs): the change
// itself was valid, and the caller may keep it in force in memory while it retries.
var ErrNotPersisted = errors.New("overrides not persisted to state_dir")

// Writable reports whether the store can write now: nil, or why not. It probes the
// state directory with a temp file (created, synced, removed) and checks that the
// overrides file, if present, is a regular file; status calls it, so a store that
// cannot be written is never shown as up.
func (s *File) Writable() error {
	if fi, err := os.Stat(s.path); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", s.path)
	}
	f, err := os.CreateTemp(filepath.Dir(s.path), ".probe*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) //nolint:errcheck // best effort
	_, werr := f.Write([]byte{'\n'})
	serr := f.Sync()
	cerr := f.Close()
	return errors.Join(werr, serr, cerr)
}

// exists reports whether the overrides file is there (a mirror was ever written).
func (s *File) exists() bool {
	_, err := os.Stat(s.path)
	return err == nil
}
