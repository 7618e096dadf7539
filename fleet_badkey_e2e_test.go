package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TestFleetBadRollbackValueKeepsRollbackOn: with the rollback ON, a truncated value
// written straight into etcd under the rollback key ({"on":tru) leaves the rollback
// ON; status names the key and what is kept, and the metric counts it. A good value
// written again is taken. Before, the bad value switched the rollback OFF and status
// said nothing.
func TestFleetBadRollbackValueKeepsRollbackOn(t *testing.T) {
	etcd, idc, cloud := fleetBackends(t)
	f := &fleetInstance{name: "gw-a", listen: freeAddr(t), admin: freeAddr(t)}
	f.path = filepath.Join(t.TempDir(), "shiftgate.yaml")
	if err := os.WriteFile(f.path, []byte(fleetConfig(f.name, f.listen, f.admin, etcd.Endpoint, idc.Addr, cloud.Addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	f.start(t)
	defer f.stop(t)
	admin := "http://" + f.admin
	if code, out, errs := runCLI("split", "-admin", admin, "feed", "100"); code != 0 {
		t.Fatalf("split: %d %s %s", code, out, errs)
	}
	if code, out, errs := runCLI("rollback", "-admin", admin, "on"); code != 0 {
		t.Fatalf("rollback on: %d %s %s", code, out, errs)
	}
	allRoute(t, []*fleetInstance{f}, "/api/feed", "idc")

	raw, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	put, err := raw.Put(context.Background(), "/shiftgate/e2e/overrides/rollback", `{"on":tru`)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 3*time.Second, "the bad value seen", func() bool {
		st := f.srv.Status()
		return st.AppliedRevision == put.Header.Revision && len(st.UndecodableKeys) == 1
	})
	if st := f.srv.Status(); !st.Rollback.On {
		t.Fatalf("a rollback value that does not decode switched the rollback off: %+v", st.Rollback)
	}
	allRoute(t, []*fleetInstance{f}, "/api/feed", "idc")
	code, out, errs := runCLI("status", "-admin", admin)
	if code != 0 || !strings.Contains(out, "rollback: ON") ||
		!strings.Contains(out, "OVERRIDE KEY DOES NOT DECODE: overrides/rollback") || !strings.Contains(out, "keeps the value it served before") {
		t.Fatalf("status: %d\n%s%s", code, out, errs)
	}
	t.Logf("status:\n%s", out)
	if m := metricsOf(t, f); !strings.Contains(m, "shiftgate_override_keys_undecodable 1\n") {
		t.Fatalf("metrics lack the undecodable key:\n%s", m)
	}

	if _, err := raw.Put(context.Background(), "/shiftgate/e2e/overrides/rollback", `{"on":false,"who":"ops"}`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 3*time.Second, "the good value taken", func() bool {
		st := f.srv.Status()
		return !st.Rollback.On && len(st.UndecodableKeys) == 0
	})
	allRoute(t, []*fleetInstance{f}, "/api/feed", "cloud")
	if m := metricsOf(t, f); !strings.Contains(m, "shiftgate_override_keys_undecodable 0\n") {
		t.Fatalf("metrics after the good value:\n%s", m)
	}
}
