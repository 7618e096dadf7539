package proxy

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/loadtest/standin"
)

// shareStore is a fleet store whose instance list the test sets; Instances fails
// while down, as etcd does when it is away.
type shareStore struct {
	mu    sync.Mutex
	ov    conf.Overrides
	list  []store.Instance
	down  bool
	reads int
}

func (f *shareStore) Load() (conf.Overrides, error) { return f.ov, nil }
func (f *shareStore) Update(_ context.Context, change func(*conf.Overrides) error) (conf.Overrides, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := f.ov.Clone()
	if err := change(&next); err != nil {
		return f.ov, err
	}
	next.Revision++
	f.ov = next
	return next, nil
}
func (f *shareStore) Watch(context.Context, func(conf.Overrides)) error { return nil }
func (f *shareStore) Describe() string                                  { return "share-test" }
func (f *shareStore) Close() error                                      { return nil }
func (f *shareStore) Fleet() store.Fleet                                { return f }
func (f *shareStore) Health() store.Health                              { return store.Health{Up: true} }
func (f *shareStore) UpdateLocal(context.Context, func(*conf.Overrides) error) (conf.Overrides, error) {
	return f.ov, store.ErrLocalWhileUp
}
func (f *shareStore) Register(context.Context, string, string) {}
func (f *shareStore) InstanceName(string) string               { return "me" }
func (f *shareStore) Instances(context.Context) (store.FleetStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.down {
		return store.FleetStatus{}, errors.New("etcd away (test)")
	}
	return store.FleetStatus{Instances: append([]store.Instance(nil), f.list...)}, nil
}

func (f *shareStore) set(down bool, list ...store.Instance) {
	f.mu.Lock()
	f.down, f.list = down, list
	f.mu.Unlock()
}

// TestFleetShare: an instance of a fleet enforces 1/live of each cap and 1/live-in-
// its-region of each byte budget, follows joins and leaves, counts itself before it is
// registered, and keeps its last share while the store is away.
func TestFleetShare(t *testing.T) {
	idc, _ := standin.Start("idc", "127.0.0.1:0", standin.Options{})
	defer idc.Close()
	st := &shareStore{}
	st.set(false, store.Instance{Instance: "me", Region: "idc"}, store.Instance{Instance: "b", Region: "idc"}, store.Instance{Instance: "c", Region: "cloud"})
	stateDir := t.TempDir()
	cfg, err := conf.Parse("", []byte(`self_region: idc
state_dir: `+stateDir+`
regions:
  idc: { upstreams: ["`+idc.Addr+`"] }
  cloud: { upstreams: ["`+idc.Addr+`"] }
split: { from: idc, to: cloud }
limits: { site_rps: 300 }
budgets: [{ from: idc, to: cloud, rate: 8Mbit }]
routes:
  - name: default
    match: { path_prefix: / }
`))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, Options{Logger: discardLogger(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(time.Second)
	want := func(what string, live int, site, budget float64) {
		t.Helper()
		waitFor(t, what, func() bool {
			l := srv.Limits()
			return l.Scope == "fleet" && l.LiveInstances == live && l.Site.EnforcedRPS == site &&
				len(l.Budgets) == 1 && l.Budgets[0].EnforcedBytesPerSec == budget
		})
	}
	want("three instances, two in idc", 3, 100, 500e3)
	st.set(false, store.Instance{Instance: "b", Region: "idc"})
	want("this one not registered yet: counted anyway", 2, 150, 500e3)
	st.set(false, store.Instance{Instance: "me", Region: "idc"}, store.Instance{Instance: "c", Region: "cloud"})
	want("alone in idc", 2, 150, 1e6)
	st.set(true)
	st.mu.Lock()
	reads := st.reads
	st.mu.Unlock()
	waitFor(t, "the store is read while it is away", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.reads > reads+2
	})
	want("store away: the last share stays", 2, 150, 1e6)
	if b := srv.Status().Limits; b.Scope != "fleet" || b.LiveInstances != 2 || b.Share != 0.5 {
		t.Fatalf("status limits %+v", b)
	}

	// Restarted while the store is still away, on the same state_dir: the share of
	// the fleet it last counted, not the whole cap (it cannot count the others).
	srv.Shutdown(time.Second)
	srv2, err := New(cfg, Options{Logger: discardLogger(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Shutdown(time.Second)
	srv = srv2
	want("restarted with the store away: the share counted before", 2, 150, 1e6)
	st.set(false, store.Instance{Instance: "me", Region: "idc"})
	want("the store back: counted again", 1, 300, 1e6)
}
