package store

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store/etcdtest"
)

// TestStartDuringOutageEmptyStateDir: an instance that starts while etcd is down,
// with an empty state_dir, cannot know the fleet's overrides. By default it starts
// rolled back (and says so in Health and the log); with on_down_at_start: file it
// serves the file's splits. Before, it served the file's split silently while the
// fleet could be rolled back.
func TestStartDuringOutageEmptyStateDir(t *testing.T) {
	srv := etcdtest.Start(t)
	srv.Stop()
	for _, tc := range []struct {
		choice   string
		rollback bool
		started  string
	}{
		{"", true, "rollback"},
		{"rollback", true, "rollback"},
		{"file", false, "file"},
	} {
		e := testEtcd(srv.Endpoint)
		e.OnDownAtStart = tc.choice
		s, err := NewEtcd(e, EtcdOptions{StateDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ProbeEvery: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		o, err := s.Load()
		s.Close()
		if err != nil {
			t.Fatalf("%q: %v", tc.choice, err)
		}
		h := s.Health()
		if o.Rollback.On != tc.rollback || h.StartedWith != tc.started || h.Up {
			t.Errorf("on_down_at_start %q: rollback %v, started with %q (up %v); want %v, %q",
				tc.choice, o.Rollback.On, h.StartedWith, h.Up, tc.rollback, tc.started)
		}
	}
	// With a mirror in state_dir the mirror serves, whatever the choice.
	dir := t.TempDir()
	fs, _ := NewFile(dir)
	var mirror conf.Overrides
	setSplit("feed", 2500)(&mirror) //nolint:errcheck
	mirror.Revision = 7
	if err := fs.Save(mirror); err != nil {
		t.Fatal(err)
	}
	e := testEtcd(srv.Endpoint)
	s, err := NewEtcd(e, EtcdOptions{StateDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err := s.Load()
	if err != nil || o.Rollback.On || s.Health().StartedWith != "mirror" || o.Routes["feed"].PercentBP != 2500 {
		t.Errorf("with a mirror: %+v %v, started with %q", o, err, s.Health().StartedWith)
	}
}
