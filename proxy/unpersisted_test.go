package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf/store"
)

// TestRollbackWhileStateDirUnwritable: with the overrides file replaced by a
// directory (a path that cannot be written even as root), a rollback is refused by the
// store. It must still take effect at once, say it is not persisted (the answer,
// status, the metric) and status must not show the store as up; once the path can be
// written again, the retry persists it. Before, the rollback was refused and nothing
// changed: the emergency switch was gone when the disk was.
func TestRollbackWhileStateDirUnwritable(t *testing.T) {
	t.Parallel()
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	dir := t.TempDir()
	fs, err := store.NewFile(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGatewayIn(t, dir, twoRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr}, fs)
	path := filepath.Join(dir, "state", store.OverridesFile)
	os.Remove(path)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if st := gw.srv.Status(); st.StoreUp {
		t.Errorf("status shows the store up while %s is a directory", path)
	}

	res, err := gw.srv.SetRollback(context.Background(), "test", RollbackRequest{On: true})
	if err != nil {
		t.Fatalf("rollback refused while the disk is broken: %v", err)
	}
	if res.Unpersisted == "" || !res.On {
		t.Errorf("answer %+v: want on, and unpersisted with a reason", res)
	}
	if !gw.srv.Overrides().Rollback.On || !gw.srv.state.Load().table.Rollback() {
		t.Fatal("rollback not in force")
	}
	st := gw.srv.Status()
	if !st.Rollback.On || strings.Join(st.Unpersisted, ",") != "rollback" || st.UnpersistedError == "" || st.StoreUp {
		t.Errorf("status: rollback %v, unpersisted %q (%q), store up %v", st.Rollback.On, st.Unpersisted, st.UnpersistedError, st.StoreUp)
	}
	var m bytes.Buffer
	gw.srv.WriteMetrics(&m)
	for _, want := range []string{"shiftgate_overrides_unpersisted 1", "shiftgate_override_store_up 0"} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The disk comes back: the retry writes what serves.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(ioWait)
	for len(gw.srv.Status().Unpersisted) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still unpersisted after %s with the path writable", ioWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var saved struct {
		Rollback struct{ On bool } `json:"rollback"`
	}
	if err := json.Unmarshal(b, &saved); err != nil || !saved.Rollback.On {
		t.Errorf("persisted overrides %s (%v): want rollback on", b, err)
	}
	if st := gw.srv.Status(); !st.StoreUp {
		t.Errorf("store still shown down once writable: %s", st.StoreError)
	}
	m.Reset()
	gw.srv.WriteMetrics(&m)
	if !strings.Contains(m.String(), "shiftgate_overrides_unpersisted 0") {
		t.Error("metric still says unpersisted")
	}
}
