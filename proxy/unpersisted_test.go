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

	"github.com/shiftgate/shiftgate/conf"
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
	gw, path := startUnwritable(t)
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
	waitPersisted(t, gw)
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

// TestLeversWhileStateDirUnwritable: caps, byte budgets and the client cut-off are
// emergency levers like the rollback. With the store refusing writes each must take
// effect, answer without an error, say it is not persisted and be listed by status;
// the retry then writes them all. Before, they took effect and answered with an error
// (the CLI's exit 1, a 500 from the API): an operator was told a change in force had
// failed.
func TestLeversWhileStateDirUnwritable(t *testing.T) {
	t.Parallel()
	gw, path := startUnwritable(t)
	ctx := context.Background()

	lim, err := gw.srv.ChangeLimits(ctx, "test", LimitsRequest{
		Site:    &LimitChange{RPS: "100"},
		Routes:  map[string]LimitChange{"feed": {RPS: "50"}},
		Budgets: []BudgetChange{{From: "idc", To: "cloud", Rate: "1Gbit"}},
	})
	if err != nil || lim.Unpersisted == "" {
		t.Fatalf("limits while the disk is broken: %+v, %v; want in force and unpersisted", lim, err)
	}
	cut, err := gw.srv.SetCutoff(ctx, "test", CutoffRequest{On: true})
	if err != nil || cut.Unpersisted == "" || !cut.On {
		t.Fatalf("cutoff while the disk is broken: %+v, %v; want on and unpersisted", cut, err)
	}
	l := gw.srv.Limits()
	if l.Site.RPS != 100 || !gw.srv.Overrides().Cutoff.On {
		t.Errorf("not in force: site cap %v, cutoff %v", l.Site.RPS, gw.srv.Overrides().Cutoff.On)
	}
	st := gw.srv.Status()
	want := "budgets/idc/cloud,cutoff,route_limits/feed,site_limit"
	if got := strings.Join(st.Unpersisted, ","); got != want {
		t.Errorf("status unpersisted %q, want %q", got, want)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitPersisted(t, gw)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"site_limit"`, `"route_limits"`, `"idc/cloud"`, `"cutoff"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("persisted overrides lack %s: %s", want, b)
		}
	}
}

// startUnwritable starts a gateway on a state_dir store whose overrides file is
// replaced by a directory: a path that cannot be written even as root. It returns the
// path; removing it makes the store writable again.
func startUnwritable(t *testing.T) (*gateway, string) {
	t.Helper()
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
	return gw, path
}

// waitPersisted waits until status lists nothing unpersisted.
func waitPersisted(t *testing.T, gw *gateway) {
	t.Helper()
	deadline := time.Now().Add(ioWait)
	for len(gw.srv.Status().Unpersisted) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still unpersisted after %s with the path writable", ioWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestChangeAfterUnpersistedJudgedOnWhatServes: while a change serves in memory
// only, the state_dir file holds an older state; a later change must be made on what
// serves, not on that file. Here the disk comes back right after a rollback was put
// in force unpersisted, and a split change follows before the retry has written it:
// the rollback must stay on, in force and on disk. Before, the split change read the
// old file, wrote it back with the split and put that in service: the rollback was
// silently undone.
func TestChangeAfterUnpersistedJudgedOnWhatServes(t *testing.T) {
	t.Parallel()
	gw, path := startUnwritable(t)
	ctx := context.Background()
	if res, err := gw.srv.SetRollback(ctx, "test", RollbackRequest{On: true}); err != nil || res.Unpersisted == "" {
		t.Fatalf("rollback: %+v %v; want in force, unpersisted", res, err)
	}
	if err := os.Remove(path); err != nil { // the disk is back; the file is the old state (none)
		t.Fatal(err)
	}
	res, err := gw.srv.ChangeSplits(ctx, "test", BulkSplitRequest{Routes: map[string]SplitRequest{"feed": {Percent: "30"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !gw.srv.Overrides().Rollback.On {
		t.Fatal("the split change undid the rollback that served in memory")
	}
	if got := gw.srv.Overrides().Routes["feed"].PercentBP; got != 3000 {
		t.Errorf("feed at %d bp, want 3000", got)
	}
	if res.Unpersisted != "" {
		t.Errorf("answer says unpersisted (%s) though the write went through", res.Unpersisted)
	}
	if st := gw.srv.Status(); len(st.Unpersisted) != 0 {
		t.Errorf("status still lists unpersisted %q", st.Unpersisted)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var saved conf.Overrides
	if err := json.Unmarshal(b, &saved); err != nil || !saved.Rollback.On || saved.Routes["feed"].PercentBP != 3000 {
		t.Errorf("persisted %s (%v): want the rollback on and feed at 30", b, err)
	}
}
