package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/proxy"
)

// fakeFleetStore is a fleet store whose health the test sets: down, fleet writes
// fail with store.ErrDown and local writes apply; up, it is a plain store and
// local writes are refused.
type fakeFleetStore struct {
	mu      sync.Mutex
	up      bool
	ov      conf.Overrides
	pending []string
}

func (f *fakeFleetStore) Load() (conf.Overrides, error) { return f.ov, nil }
func (f *fakeFleetStore) Watch(context.Context, func(conf.Overrides)) error {
	return nil
}
func (f *fakeFleetStore) Describe() string { return "fake-fleet" }
func (f *fakeFleetStore) Close() error     { return nil }
func (f *fakeFleetStore) Fleet() store.Fleet {
	return f
}
func (f *fakeFleetStore) Instances(context.Context) (store.FleetStatus, error) {
	return store.FleetStatus{Store: "fake-fleet", OverrideRevision: f.ov.Revision}, nil
}
func (f *fakeFleetStore) Register(context.Context, string, string) {}
func (f *fakeFleetStore) InstanceName(listen string) string        { return "fake-" + listen }

func (f *fakeFleetStore) Update(_ context.Context, change func(*conf.Overrides) error) (conf.Overrides, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		return f.ov, fmt.Errorf("%w (test): nothing was changed", store.ErrDown)
	}
	next := f.ov.Clone()
	if err := change(&next); err != nil {
		return f.ov, err
	}
	next.Revision++
	f.ov = next
	return next, nil
}

func (f *fakeFleetStore) UpdateLocal(_ context.Context, change func(*conf.Overrides) error) (conf.Overrides, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.up {
		return f.ov, store.ErrLocalWhileUp
	}
	next := f.ov.Clone()
	if err := change(&next); err != nil {
		return f.ov, err
	}
	f.ov, f.pending = next, []string{"routes/feed"}
	return next, nil
}

func (f *fakeFleetStore) Health() store.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := store.Health{Up: f.up, AppliedRevision: f.ov.Revision, StoreRevision: f.ov.Revision, PendingLocal: f.pending}
	if !f.up {
		h.Error = "etcd unreachable (test)"
	}
	return h
}

func (f *fakeFleetStore) setUp(up bool) { f.mu.Lock(); f.up = up; f.mu.Unlock() }

// TestAdminFleetOutage drives the admin API against a fleet store that goes down:
// status and metrics say so, fleet writes are refused with 503 and the store's
// reason, -local writes apply on this instance, and local writes while the store is
// up are refused with 409.
func TestAdminFleetOutage(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	store := &fakeFleetStore{up: true}
	gw := startLiveWith(t, t.TempDir(), twoRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr}, store)
	lg := gw

	status := func() proxy.Status {
		t.Helper()
		code, body := lg.call(t, "GET", "/v1/status", "")
		var st proxy.Status
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
			t.Fatalf("status: %d %s", code, body)
		}
		return st
	}
	metric := func() string {
		_, body := lg.call(t, "GET", "/metrics", "")
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "shiftgate_override_store_up ") {
				return l
			}
		}
		return "missing"
	}
	if st := status(); !st.StoreUp || st.StoreError != "" {
		t.Fatalf("store up: status %+v", st)
	}
	if m := metric(); m != "shiftgate_override_store_up 1" {
		t.Fatalf("metric while up: %q", m)
	}

	cases := []struct {
		name, method, path, body string
		up                       bool
		code                     int
		inBody                   string
	}{
		{"fleet write while up", "PUT", "/v1/routes/feed/split", `{"percent":30}`, true, 200, `"percent": 30`},
		{"local write while up", "PUT", "/v1/routes/feed/split?local=1", `{"percent":40}`, true, 409, "make a fleet write"},
		{"fleet write while down", "PUT", "/v1/routes/feed/split", `{"percent":50}`, false, 503, "unreachable"},
		{"fleet rollback while down", "POST", "/v1/rollback", `{"on":true}`, false, 503, "unreachable"},
		{"local write while down (query)", "PUT", "/v1/routes/feed/split?local=1", `{"percent":60}`, false, 200, `"local": true`},
		{"local rollback while down (body)", "POST", "/v1/rollback", `{"on":true,"local":true}`, false, 200, `"local": true`},
		{"fleet list", "GET", "/v1/fleet", "", false, 200, `"store": "fake-fleet"`},
	}
	for _, c := range cases {
		store.setUp(c.up)
		code, body := lg.call(t, c.method, c.path, c.body)
		if code != c.code || !strings.Contains(body, c.inBody) {
			t.Errorf("%s: %d %s; want %d with %q", c.name, code, body, c.code, c.inBody)
		}
	}
	st := status()
	if st.StoreUp || st.StoreError == "" || len(st.PendingLocal) != 1 {
		t.Fatalf("store down: status %+v", st)
	}
	if got := gw.srv.Overrides(); got.Routes["feed"].PercentBP != 6000 || !got.Rollback.On {
		t.Fatalf("local writes not applied: %+v", got)
	}
	if m := metric(); m != "shiftgate_override_store_up 0" {
		t.Fatalf("metric while down: %q", m)
	}
}
