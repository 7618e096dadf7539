package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
)

func TestFileStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if o, err := s.Load(); err != nil || o.Revision != 0 {
		t.Fatalf("empty store: %+v %v", o, err)
	}
	o, err := s.Update(context.Background(), func(o *conf.Overrides) error {
		o.Routes["feed"] = conf.RouteOverride{PercentBP: 500, WritePercentBP: 100, Who: "test"}
		o.Rollback.On = true
		return nil
	})
	if err != nil || o.Revision != 1 {
		t.Fatalf("update: %+v %v", o, err)
	}
	// A failing change stores nothing.
	if _, err := s.Update(context.Background(), func(o *conf.Overrides) error { o.Rollback.On = false; return errors.New("no") }); err == nil {
		t.Fatal("failing change returned no error")
	}
	s2, _ := NewFile(dir)
	got, err := s2.Load()
	if err != nil || !got.Rollback.On || got.Routes["feed"].PercentBP != 500 || got.Revision != 1 {
		t.Fatalf("reloaded: %+v %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d files (temp files left behind?)", len(entries))
	}
	os.WriteFile(filepath.Join(dir, OverridesFile), []byte("{broken"), 0o644)
	if _, err := s2.Load(); err == nil {
		t.Error("corrupt overrides file loaded without error")
	}
}
