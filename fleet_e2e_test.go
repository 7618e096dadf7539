package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/conf/store/etcdtest"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/proxy"
)

// bulkRoutes is how many extra routes the fleet config has, for the bulk write.
const bulkRoutes = 200

// fleetBackends starts the fleet tests' etcd (with etcdArgs) and their two stand-in
// regions, all stopped when the test ends.
func fleetBackends(t *testing.T, etcdArgs ...string) (*etcdtest.Server, *standin.Server, *standin.Server) {
	t.Helper()
	etcd := etcdtest.Start(t, etcdArgs...)
	idc, err := standin.Start("idc", "127.0.0.1:0", standin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idc.Close() })
	cloud, err := standin.Start("cloud", "127.0.0.1:0", standin.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cloud.Close() })
	return etcd, idc, cloud
}

func fleetConfig(name, listen, admin, endpoint, idc, cloud string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `listen: %s
admin: { listen: %s }
state_dir: ./state
regions:
  idc:   { upstreams: [%q] }
  cloud: { upstreams: [%q] }
split: { from: idc, to: cloud, salt: cutover-2026, keys: ["header:X-User-Id"] }
fleet:
  etcd: { endpoints: [%q], prefix: /shiftgate/e2e/, dial_timeout: 500ms, instance: %s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 0
`, listen, admin, idc, cloud, endpoint, name)
	for i := 0; i < bulkRoutes; i++ {
		fmt.Fprintf(&b, "  - name: r%03d\n    match: { path_prefix: /r/%03d }\n    percent: 0\n", i, i)
	}
	b.WriteString("  - name: default\n    match: { path_prefix: / }\n    percent: 0\n")
	return b.String()
}

// fleetInstance is one `shiftgate serve` of the fleet, run in-process.
type fleetInstance struct {
	name, path, listen, admin string
	srv                       *proxy.Server
	cancel                    func()
	done                      chan error
}

func (f *fleetInstance) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("instance", f.name)
	}
	ready := make(chan *proxy.Server, 1)
	go func() { f.done <- serve(ctx, f.path, log, ready) }()
	select {
	case f.srv = <-ready:
	case err := <-f.done:
		t.Fatalf("%s: serve: %v", f.name, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: serve did not start", f.name)
	}
}

func (f *fleetInstance) stop(t *testing.T) {
	t.Helper()
	if f.cancel == nil {
		return
	}
	f.cancel()
	if err := <-f.done; err != nil {
		t.Errorf("%s: shutdown: %v", f.name, err)
	}
	f.cancel = nil
}

// region asks the instance where a request for path goes, by the answering stand-in.
func (f *fleetInstance) region(c *http.Client, path string) (string, error) {
	req, _ := http.NewRequest("GET", "http://"+f.listen+path, nil)
	req.Header.Set("X-User-Id", "u-1001")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: status %d", f.name, resp.StatusCode)
	}
	return resp.Header.Get(standin.RegionHeader), nil
}

// routedWithin sends requests to every instance, one after another on each, until
// each sends path to want; it returns the time from since to the first such request
// on the slowest instance. It fails the test after limit.
func routedWithin(t *testing.T, insts []*fleetInstance, path, want string, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	var (
		mu      sync.Mutex
		slowest time.Duration
		wg      sync.WaitGroup
		errs    []string
	)
	for _, f := range insts {
		wg.Add(1)
		go func(f *fleetInstance) {
			defer wg.Done()
			c := &http.Client{Timeout: 2 * time.Second}
			deadline := since.Add(limit)
			var last string
			for time.Now().Before(deadline) {
				got, err := f.region(c, path)
				if err != nil {
					last = err.Error()
				} else if got == want {
					d := time.Since(since)
					mu.Lock()
					slowest = max(slowest, d)
					mu.Unlock()
					return
				} else {
					last = got
				}
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			errs = append(errs, fmt.Sprintf("%s still sends %s to %q after %s, want %q", f.name, path, last, limit, want))
			mu.Unlock()
		}(f)
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	return slowest
}

// allRoute checks, once, that every instance sends path to want.
func allRoute(t *testing.T, insts []*fleetInstance, path, want string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	for _, f := range insts {
		for i := 0; i < 5; i++ {
			got, err := f.region(c, path)
			if err != nil || got != want {
				t.Fatalf("%s: %s went to %q (%v), want %q", f.name, path, got, err, want)
			}
		}
	}
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFleetMovesAsOne runs a real etcd and three gateway instances on loopback and
// shows the fleet story of issue 8: changes made through one instance hold on all
// three within a second; with etcd stopped every instance keeps routing on its last
// values, a restarted one comes back with them, fleet writes are refused and a -local
// write changes one instance; when etcd returns, the local change is reconciled and
// reported and every instance catches up; a bulk write of 200 overrides reaches all
// instances within a second.
func TestFleetMovesAsOne(t *testing.T) {
	const limit = time.Second
	etcd, idc, cloud := fleetBackends(t, "--max-txn-ops", "1024")

	var insts []*fleetInstance
	for _, name := range []string{"gw-a", "gw-b", "gw-c"} {
		f := &fleetInstance{name: name, listen: freeAddr(t), admin: freeAddr(t)}
		f.path = filepath.Join(t.TempDir(), "shiftgate.yaml")
		if err := os.WriteFile(f.path, []byte(fleetConfig(name, f.listen, f.admin, etcd.Endpoint, idc.Addr, cloud.Addr)), 0o644); err != nil {
			t.Fatal(err)
		}
		f.start(t)
		defer f.stop(t)
		insts = append(insts, f)
	}
	a, b, c := insts[0], insts[1], insts[2]
	allRoute(t, insts, "/api/feed", "idc")

	// (a) A split change through gw-a, then a rollback through gw-b.
	code, out, errs := runCLI("split", "-admin", "http://"+a.admin, "feed", "100")
	returned := time.Now()
	if code != 0 {
		t.Fatalf("split: %d %s %s", code, out, errs)
	}
	d := routedWithin(t, insts, "/api/feed", "cloud", returned, 3*time.Second)
	t.Logf("split 0%% -> 100%% through gw-a: in effect on all three %s after the command returned", d)
	if d >= limit {
		t.Errorf("split took %s to hold on every instance, want < %s", d, limit)
	}
	code, _, errs = runCLI("rollback", "-admin", "http://"+b.admin, "on")
	returned = time.Now()
	if code != 0 {
		t.Fatalf("rollback on: %d %s", code, errs)
	}
	d = routedWithin(t, insts, "/api/feed", "idc", returned, 3*time.Second)
	t.Logf("rollback on through gw-b: in effect on all three %s after the command returned", d)
	if d >= limit {
		t.Errorf("rollback took %s to hold on every instance, want < %s", d, limit)
	}
	code, _, errs = runCLI("rollback", "-admin", "http://"+c.admin, "off")
	returned = time.Now()
	if code != 0 {
		t.Fatalf("rollback off: %d %s", code, errs)
	}
	d = routedWithin(t, insts, "/api/feed", "cloud", returned, 3*time.Second)
	t.Logf("rollback off through gw-c: in effect on all three %s after the command returned", d)
	if d >= limit {
		t.Errorf("rollback off took %s to hold on every instance, want < %s", d, limit)
	}
	rev := a.srv.Status().StoreRevision
	var fleetOut string
	waitUntil(t, 3*time.Second, "status -fleet shows every instance at the newest revision", func() bool {
		code, fleetOut, _ = runCLI("status", "-admin", "http://"+a.admin, "-fleet")
		return code == 0 && strings.Contains(fleetOut, fmt.Sprintf("all 3 instances serve revision %d", rev))
	})
	for _, f := range insts {
		if !strings.Contains(fleetOut, f.name) || !strings.Contains(fleetOut, f.listen) {
			t.Fatalf("status -fleet lacks %s:\n%s", f.name, fleetOut)
		}
	}
	t.Logf("status -fleet:\n%s", fleetOut)

	// (b) etcd stops: every instance keeps routing on its last values.
	etcd.Stop()
	allRoute(t, insts, "/api/feed", "cloud")
	waitUntil(t, 5*time.Second, "every instance reports the store down", func() bool {
		for _, f := range insts {
			if f.srv.Status().StoreUp {
				return false
			}
		}
		return true
	})
	if code, out, _ := runCLI("status", "-admin", "http://"+a.admin); code != 0 || !strings.Contains(out, "override store DOWN") {
		t.Fatalf("status while etcd is down: %d\n%s", code, out)
	}
	if m := metricsOf(t, a); !strings.Contains(m, "shiftgate_override_store_up 0") {
		t.Fatalf("metrics while etcd is down lack shiftgate_override_store_up 0")
	}
	code, _, errs = runCLI("split", "-admin", "http://"+a.admin, "-force", "feed", "50")
	if code != 1 || !strings.Contains(errs, "unreachable") || !strings.Contains(errs, "-local") {
		t.Fatalf("fleet write while etcd is down: exit %d, %q; want a clear refusal", code, errs)
	}
	t.Logf("fleet write while etcd is down: %s", strings.TrimSpace(errs))
	resp, err := http.Post("http://"+b.admin+"/v1/rollback", "application/json", strings.NewReader(`{"on":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("admin API fleet write while etcd is down: %d, want 503", resp.StatusCode)
	}
	allRoute(t, insts, "/api/feed", "cloud")

	// One instance restarts during the outage and comes back with the same overrides.
	c.stop(t)
	c.start(t)
	allRoute(t, []*fleetInstance{c}, "/api/feed", "cloud")
	if st := c.srv.Status(); st.StoreUp || st.AppliedRevision != rev {
		t.Fatalf("restarted during the outage: store_up %v, applied revision %d, want down at %d", st.StoreUp, st.AppliedRevision, rev)
	}

	// A -local write changes gw-a only.
	code, out, errs = runCLI("split", "-admin", "http://"+a.admin, "-local", "-force", "feed", "0")
	if code != 0 || !strings.Contains(out, "LOCAL") {
		t.Fatalf("split -local: %d %q %q", code, out, errs)
	}
	allRoute(t, []*fleetInstance{a}, "/api/feed", "idc")
	allRoute(t, []*fleetInstance{b, c}, "/api/feed", "cloud")
	if st := a.srv.Status(); len(st.PendingLocal) != 1 || st.PendingLocal[0] != "routes/feed" {
		t.Fatalf("gw-a pending local: %v", st.PendingLocal)
	}

	// (c) etcd returns: the local change is reconciled and reported, and every
	// instance catches up to it.
	etcd.Restart()
	back := time.Now()
	d = routedWithin(t, insts, "/api/feed", "idc", back, 5*time.Second)
	t.Logf("etcd back: the -local change reconciled and in effect on all three %s after etcd answered", d)
	var st proxy.Status
	waitUntil(t, 3*time.Second, "gw-a reports the reconciliation", func() bool {
		st = a.srv.Status()
		return st.StoreUp && len(st.PendingLocal) == 0 && st.LastReconciled != nil
	})
	if r := st.LastReconciled; len(r.Keys) != 1 || r.Keys[0] != "routes/feed" || r.Revision <= rev {
		t.Fatalf("reconciled %+v", r)
	}
	if code, out, _ := runCLI("status", "-admin", "http://"+a.admin); code != 0 || !strings.Contains(out, "reconciled into the store") {
		t.Fatalf("status after the reconciliation: %d\n%s", code, out)
	}
	waitUntil(t, 3*time.Second, "every instance applies the reconciled revision", func() bool {
		for _, f := range insts {
			if s := f.srv.Status(); !s.StoreUp || s.AppliedRevision != st.LastReconciled.Revision {
				return false
			}
		}
		return true
	})
	waitUntil(t, 5*time.Second, "status -fleet shows all three at the reconciled revision", func() bool {
		code, fleetOut, _ = runCLI("status", "-admin", "http://"+b.admin, "-fleet")
		return code == 0 && strings.Contains(fleetOut, fmt.Sprintf("all 3 instances serve revision %d", st.LastReconciled.Revision))
	})
	if m := metricsOf(t, a); !strings.Contains(m, "shiftgate_override_store_up 1") {
		t.Fatalf("metrics after etcd returned lack shiftgate_override_store_up 1")
	}

	// (d) 200 overrides changed in one bulk write.
	bulk, err := store.NewEtcd(&conf.Etcd{Endpoints: []string{etcd.Endpoint}, Prefix: "/shiftgate/e2e/", Instance: "bulk-test"},
		store.EtcdOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer bulk.Close()
	ov, err := bulk.Update(context.Background(), func(o *conf.Overrides) error {
		if o.Routes == nil {
			o.Routes = map[string]conf.RouteOverride{}
		}
		for i := 0; i < bulkRoutes; i++ {
			o.Routes[fmt.Sprintf("r%03d", i)] = conf.RouteOverride{PercentBP: 10000, WritePercentBP: 10000, Who: "bulk"}
		}
		return nil
	})
	returned = time.Now()
	if err != nil {
		t.Fatal(err)
	}
	var slowest time.Duration
	for _, f := range insts {
		waitUntil(t, 3*time.Second, f.name+" applies the bulk write", func() bool { return f.srv.Overrides().Revision >= ov.Revision })
		slowest = max(slowest, time.Since(returned))
		got := f.srv.Overrides()
		n := 0
		for i := 0; i < bulkRoutes; i++ {
			if got.Routes[fmt.Sprintf("r%03d", i)].PercentBP == 10000 {
				n++
			}
		}
		if n != bulkRoutes {
			t.Fatalf("%s applied %d of %d bulk overrides at once", f.name, n, bulkRoutes)
		}
	}
	d = routedWithin(t, insts, fmt.Sprintf("/r/%03d", bulkRoutes-1), "cloud", returned, 3*time.Second)
	t.Logf("bulk write of %d overrides: applied on all three %s after the write returned (last route routed the new way after %s)", bulkRoutes, slowest, d)
	if slowest >= limit {
		t.Errorf("bulk write took %s to reach every instance, want < %s", slowest, limit)
	}
}

func metricsOf(t *testing.T, f *fleetInstance) string {
	t.Helper()
	resp, err := http.Get("http://" + f.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
