package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/shiftgate/shiftgate/conf/store/etcdtest"
)

const testPrefix = "/shiftgate/test/"

// testTimeout is the stores' dial_timeout: generous, since tests share a small
// machine with other work.
const testTimeout = 2 * time.Second

func testEtcd(endpoint string) *conf.Etcd {
	return &conf.Etcd{Endpoints: []string{endpoint}, Prefix: testPrefix, DialTimeout: conf.Duration{D: testTimeout}}
}

// newStore returns an Etcd with its mirror in dir ("" for a fresh temp dir),
// closed when the test ends.
func newStore(t *testing.T, endpoint, dir, instance string) *Etcd {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	e := testEtcd(endpoint)
	e.Instance = instance
	s, err := NewEtcd(e, EtcdOptions{StateDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ProbeEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawClient is a plain etcd client for looking at keys as an operator would.
func rawClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// applyLog records what Watch applies.
type applyLog struct {
	mu  sync.Mutex
	got []conf.Overrides
}

func (a *applyLog) apply(o conf.Overrides) { a.mu.Lock(); a.got = append(a.got, o); a.mu.Unlock() }

func (a *applyLog) snapshot() []conf.Overrides {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]conf.Overrides(nil), a.got...)
}

// waitFor polls cond every 5 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func watch(t *testing.T, s *Etcd) *applyLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a := &applyLog{}
	go func() { s.Watch(ctx, a.apply); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

func setSplit(name string, bp int) func(*conf.Overrides) error {
	return func(o *conf.Overrides) error {
		if o.Routes == nil {
			o.Routes = map[string]conf.RouteOverride{}
		}
		o.Routes[name] = conf.RouteOverride{PercentBP: bp, WritePercentBP: bp, Who: "tester", At: time.Now().UTC()}
		return nil
	}
}

func TestEtcdStoreWritesAndWatches(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := newStore(t, srv.Endpoint, "", "a"), newStore(t, srv.Endpoint, "", "b")
	if o, err := a.Load(); err != nil || o.Revision != 0 || len(o.Routes) != 0 {
		t.Fatalf("empty store: %+v, %v", o, err)
	}
	if !a.Health().Up {
		t.Fatalf("health after a load: %+v", a.Health())
	}
	if _, err := b.Load(); err != nil {
		t.Fatal(err)
	}
	seen := watch(t, b)

	o, err := a.Update(context.Background(), setSplit("feed", 2500))
	if err != nil {
		t.Fatal(err)
	}
	if o.Revision == 0 || o.Routes["feed"].PercentBP != 2500 {
		t.Fatalf("update result %+v", o)
	}
	waitFor(t, 2*time.Second, "b applies the split", func() bool {
		g := seen.snapshot()
		return len(g) > 0 && g[len(g)-1].Routes["feed"].PercentBP == 2500 && g[len(g)-1].Revision == o.Revision
	})

	// The key is readable by an operator and records who and when.
	raw := rawClient(t, srv.Endpoint)
	resp, err := raw.Get(context.Background(), testPrefix+"overrides/routes/feed")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("raw key: %v %v", resp, err)
	}
	var ro conf.RouteOverride
	if err := json.Unmarshal(resp.Kvs[0].Value, &ro); err != nil || ro.Who != "tester" || ro.At.IsZero() || ro.PercentBP != 2500 {
		t.Fatalf("raw value %s: %+v %v", resp.Kvs[0].Value, ro, err)
	}
	resp, err = raw.Get(context.Background(), testPrefix+"overrides/last-change")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision != o.Revision {
		t.Fatalf("last-change: %v %v", resp, err)
	}

	// A rollback with a split change is one transaction: one revision, one apply.
	before := len(seen.snapshot())
	o2, err := a.Update(context.Background(), func(o *conf.Overrides) error {
		o.Rollback = conf.Rollback{On: true, Who: "tester", At: time.Now().UTC()}
		delete(o.Routes, "feed")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "b applies the rollback", func() bool {
		g := seen.snapshot()
		return len(g) > before && g[len(g)-1].Revision == o2.Revision
	})
	last := seen.snapshot()
	if g := last[len(last)-1]; !g.Rollback.On || len(g.Routes) != 0 {
		t.Fatalf("b serves %+v", g)
	}
	if n := len(last) - before; n != 1 {
		t.Fatalf("one transaction arrived as %d applies", n)
	}
	if h := b.Health(); h.AppliedRevision != o2.Revision || h.StoreRevision != o2.Revision || !h.Up {
		t.Fatalf("b health %+v, want applied = store = %d", h, o2.Revision)
	}

	// The writer's mirror holds what it serves, in the file store's format.
	mirrored, err := a.mirror.Load()
	if err != nil || mirrored.Revision != o2.Revision || !mirrored.Rollback.On {
		t.Fatalf("mirror %+v %v", mirrored, err)
	}
	// A change that returns an error writes nothing.
	boom := errors.New("boom")
	if _, err := a.Update(context.Background(), func(*conf.Overrides) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("change error: %v", err)
	}
	if h := a.Health(); h.StoreRevision != o2.Revision {
		t.Fatalf("a refused change moved the revision: %+v", h)
	}
}

func TestEtcdStoreConcurrentWritersAllLand(t *testing.T) {
	srv := etcdtest.Start(t)
	const writers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		s := newStore(t, srv.Endpoint, "", fmt.Sprint("w", w))
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.Update(context.Background(), setSplit(fmt.Sprintf("r%d-%d", w, i), 100*w+i)); err != nil {
					errs <- err
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	o, err := newStore(t, srv.Endpoint, "", "reader").Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Routes) != writers*each {
		t.Fatalf("%d of %d changes landed", len(o.Routes), writers*each)
	}
}

// TestEtcdStoreBulkWrite changes 200 overrides in one write. With etcd's
// --max-txn-ops above it, the write is one transaction and every watcher applies it at
// once; with etcd's default (128) it is written in parts and still all arrives.
func TestEtcdStoreBulkWrite(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		applies int // 0: any number
	}{
		{"one transaction", []string{"--max-txn-ops", "1024"}, 1},
		{"default max-txn-ops", nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := etcdtest.Start(t, c.args...)
			w, r := newStore(t, srv.Endpoint, "", "w"), newStore(t, srv.Endpoint, "", "r")
			seen := watch(t, r)
			waitFor(t, 2*time.Second, "first listing", func() bool { return len(seen.snapshot()) == 1 })
			start := time.Now()
			o, err := w.Update(context.Background(), func(o *conf.Overrides) error {
				o.Routes = map[string]conf.RouteOverride{}
				for i := 0; i < 200; i++ {
					o.Routes[fmt.Sprintf("route-%03d", i)] = conf.RouteOverride{PercentBP: 5000, WritePercentBP: 1000, Who: "bulk"}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, 2*time.Second, "200 overrides arrive", func() bool {
				g := seen.snapshot()
				return len(g[len(g)-1].Routes) == 200 && g[len(g)-1].Revision == o.Revision
			})
			g := seen.snapshot()
			t.Logf("200 overrides: written and applied by a watcher in %s, in %d applies", time.Since(start), len(g)-1)
			if c.applies > 0 && len(g)-1 != c.applies {
				t.Fatalf("bulk write arrived as %d applies, want %d", len(g)-1, c.applies)
			}
		})
	}
}

func TestEtcdStoreRelistsAfterCompaction(t *testing.T) {
	srv := etcdtest.Start(t)
	s := newStore(t, srv.Endpoint, "", "s")
	w := newStore(t, srv.Endpoint, "", "w")
	o, err := w.Update(context.Background(), setSplit("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	old := o.Revision
	for i := 0; i < 3; i++ {
		if o, err = w.Update(context.Background(), setSplit("a", 10+i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rawClient(t, srv.Endpoint).Compact(context.Background(), o.Revision); err != nil {
		t.Fatal(err)
	}
	// A watch resuming from before the compaction must start over from a listing.
	err = s.watchFrom(context.Background(), old+1, func(conf.Overrides) {})
	if !errors.Is(err, errRelist) {
		t.Fatalf("watch from a compacted revision: %v, want a re-list", err)
	}
	seen := watch(t, s)
	waitFor(t, 2*time.Second, "the listing brings the newest value", func() bool {
		g := seen.snapshot()
		return len(g) > 0 && g[len(g)-1].Routes["a"].PercentBP == 12
	})
}

func TestEtcdStoreOutageMirrorLocalAndReconcile(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	s := newStore(t, srv.Endpoint, dir, "s")
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	watch(t, s)
	o, err := s.Update(context.Background(), setSplit("feed", 3000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateLocal(context.Background(), setSplit("feed", 1)); !errors.Is(err, ErrLocalWhileUp) {
		t.Fatalf("local write while etcd is up: %v, want ErrLocalWhileUp", err)
	}
	// The write reaches this instance through its watch; on a loaded machine that can
	// take longer than the local write above, and the outage must start after it.
	waitFor(t, 3*testTimeout, "the watch applies the fleet write", func() bool { return s.Health().AppliedRevision == o.Revision })

	srv.Stop()
	waitFor(t, 3*testTimeout, "the probe reports the store down", func() bool { return !s.Health().Up })
	if h := s.Health(); h.Error == "" || h.AppliedRevision != o.Revision {
		t.Fatalf("health while down %+v", h)
	}
	_, err = s.Update(context.Background(), setSplit("feed", 5000))
	if !errors.Is(err, ErrDown) {
		t.Fatalf("fleet write while down: %v, want ErrDown", err)
	}
	t.Logf("fleet write while down: %v", err)

	// A second instance starting now (same state dir: a restart) serves the mirror.
	restarted := newStore(t, srv.Endpoint, dir, "s")
	start := time.Now()
	m, err := restarted.Load()
	if err != nil {
		t.Fatal(err)
	}
	if m.Routes["feed"].PercentBP != 3000 || m.Revision != o.Revision || restarted.Health().Up {
		t.Fatalf("load during the outage: %+v, health %+v", m, restarted.Health())
	}
	if d := time.Since(start); d > 2*testTimeout {
		t.Fatalf("load during the outage took %s, want about dial_timeout (%s)", d, testTimeout)
	}

	local, err := s.UpdateLocal(context.Background(), setSplit("feed", 7000))
	if err != nil {
		t.Fatal(err)
	}
	if local.Routes["feed"].PercentBP != 7000 {
		t.Fatalf("local result %+v", local)
	}
	if h := s.Health(); len(h.PendingLocal) != 1 || h.PendingLocal[0] != "routes/feed" {
		t.Fatalf("pending %+v", h)
	}
	if m, _ := s.mirror.Load(); m.Routes["feed"].PercentBP != 7000 {
		t.Fatalf("mirror after the local write: %+v", m)
	}
	s.Close() // the first instance "dies" with the local change pending on disk

	// Restart with the same state dir during the outage: the local change is kept.
	again := newStore(t, srv.Endpoint, dir, "s")
	m, err = again.Load()
	if err != nil {
		t.Fatal(err)
	}
	if m.Routes["feed"].PercentBP != 7000 || len(again.Health().PendingLocal) != 1 {
		t.Fatalf("restart keeps the local change: %+v %+v", m, again.Health())
	}
	seenAgain := watch(t, again)

	srv.Restart()
	waitFor(t, 3*testTimeout, "the local change is reconciled", func() bool {
		h := again.Health()
		return h.Up && len(h.PendingLocal) == 0 && h.LastReconciled != nil
	})
	rec := again.Health().LastReconciled
	if len(rec.Keys) != 1 || rec.Keys[0] != "routes/feed" || rec.Revision <= o.Revision || len(rec.Overwrote) != 0 {
		t.Fatalf("reconciled %+v", rec)
	}
	fresh, err := newStore(t, srv.Endpoint, "", "reader").Load()
	if err != nil || fresh.Routes["feed"].PercentBP != 7000 {
		t.Fatalf("etcd after reconciliation: %+v %v", fresh, err)
	}
	waitFor(t, 2*time.Second, "the reconciled revision is applied", func() bool {
		h := again.Health()
		return h.AppliedRevision == rec.Revision
	})
	for _, g := range seenAgain.snapshot() {
		if g.Routes["feed"].PercentBP != 7000 {
			t.Fatalf("the instance flipped away from its local value during reconciliation: %+v", g.Routes["feed"])
		}
	}
	if _, err := again.Update(context.Background(), setSplit("feed", 100)); err != nil {
		t.Fatalf("fleet write after the outage: %v", err)
	}
}

// TestReconcileNeverMovesUsersBack: two instances each take a local split change
// while etcd is down, one to 70 %, one to 60 %. Whichever etcd sees first, the
// fleet ends at 70 %: the lower one, reconciled second, would move a tenth of the
// users back and is reported as not applied; reconciled first, it is raised over.
// Before, the last to reconcile won, and users moved from 70 % back to 60 % with no
// -force and no refusal.
func TestReconcileNeverMovesUsersBack(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b := newStore(t, srv.Endpoint, "", "gw-a"), newStore(t, srv.Endpoint, "", "gw-b")
	for _, s := range []*Etcd{a, b} {
		if _, err := s.Load(); err != nil {
			t.Fatal(err)
		}
		watch(t, s)
	}
	o, err := a.Update(context.Background(), setSplit("feed", 5000))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Etcd{a, b} {
		waitFor(t, 3*testTimeout, "the fleet write applied", func() bool { return s.Health().AppliedRevision == o.Revision })
	}
	srv.Stop()
	for _, s := range []*Etcd{a, b} {
		waitFor(t, 3*testTimeout, "the store down", func() bool { return !s.Health().Up })
	}
	if _, err := a.UpdateLocal(context.Background(), setSplit("feed", 7000)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UpdateLocal(context.Background(), setSplit("feed", 6000)); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	for _, s := range []*Etcd{a, b} {
		waitFor(t, 5*testTimeout, "the local change reconciled", func() bool {
			h := s.Health()
			return h.Up && len(h.PendingLocal) == 0 && h.LastReconciled != nil
		})
	}
	fresh, err := newStore(t, srv.Endpoint, "", "reader").Load()
	if err != nil || fresh.Routes["feed"].PercentBP != 7000 {
		t.Fatalf("etcd after both reconciled: %+v %v; want feed at 70%%", fresh.Routes["feed"], err)
	}
	ra, rb := a.Health().LastReconciled, b.Health().LastReconciled
	second := slices.Equal(rb.NotApplied, []string{"routes/feed"}) && len(rb.Keys) == 0
	first := slices.Equal(ra.Overwrote, []string{"routes/feed"}) && len(rb.NotApplied) == 0
	if !second && !first {
		t.Fatalf("reconciled: gw-a %+v, gw-b %+v; want the 60%% change not applied, or raised over", ra, rb)
	}

	// A clear is a move back too (the file's split may be lower): one instance raises
	// feed to 80 %, the other clears it; feed ends at 80 % either way.
	srv.Stop()
	for _, s := range []*Etcd{a, b} {
		waitFor(t, 3*testTimeout, "the store down again", func() bool { return !s.Health().Up })
	}
	if _, err := a.UpdateLocal(context.Background(), setSplit("feed", 8000)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UpdateLocal(context.Background(), func(o *conf.Overrides) error { delete(o.Routes, "feed"); return nil }); err != nil {
		t.Fatal(err)
	}
	srv.Restart()
	for _, s := range []*Etcd{a, b} {
		waitFor(t, 5*testTimeout, "the second local change reconciled", func() bool {
			h := s.Health()
			return h.Up && len(h.PendingLocal) == 0
		})
	}
	fresh, err = newStore(t, srv.Endpoint, "", "reader2").Load()
	if err != nil || fresh.Routes["feed"].PercentBP != 8000 {
		t.Fatalf("etcd after a raise and a clear: %+v %v; want feed at 80%%", fresh.Routes, err)
	}
}

// registeredPair starts two stores on srv, gw-a and nameB ("" for the default name),
// registered as 127.0.0.1:8080 and :8081 (admin :9090 and :9091), writes a split
// through gw-a and returns once both are registered at its revision. stopA stops
// gw-a's registration cleanly and waits for it; gw-b's ends with the test.
func registeredPair(t *testing.T, srv *etcdtest.Server, nameB string) (a, b *Etcd, rev int64, stopA func()) {
	t.Helper()
	a, b = newStore(t, srv.Endpoint, "", "gw-a"), newStore(t, srv.Endpoint, "", nameB)
	watch(t, a)
	watch(t, b)
	ctxA, cancelA := context.WithCancel(context.Background())
	doneA := make(chan struct{})
	go func() { a.Register(ctxA, "127.0.0.1:8080", "127.0.0.1:9090"); close(doneA) }()
	ctxB, cancelB := context.WithCancel(context.Background())
	t.Cleanup(cancelB)
	go b.Register(ctxB, "127.0.0.1:8081", "127.0.0.1:9091")
	o, err := a.Update(context.Background(), setSplit("feed", 100))
	if err != nil {
		t.Fatal(err)
	}
	// A bound on a hang: a loaded machine may take seconds to run the registrations.
	waitFor(t, 10*time.Second, "both instances registered at the new revision", func() bool {
		fl, err := a.Instances(context.Background())
		return err == nil && len(fl.Instances) == 2 && !fl.Behind(fl.Instances[0]) && !fl.Behind(fl.Instances[1])
	})
	stopA = func() { cancelA(); <-doneA }
	t.Cleanup(stopA)
	return a, b, o.Revision, stopA
}

func TestEtcdStoreFleetRegistration(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b, rev, stopA := registeredPair(t, srv, "")
	fl, err := a.Instances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if fl.OverrideRevision != rev {
		t.Fatalf("fleet revision %d, want %d", fl.OverrideRevision, rev)
	}
	if i := fl.Instances[0]; i.Instance != "gw-a" || i.Listen != "127.0.0.1:8080" || i.Admin != "127.0.0.1:9090" || i.Started.IsZero() {
		t.Fatalf("gw-a entry %+v", i)
	}
	if name := fl.Instances[1].Instance; name != b.InstanceName("127.0.0.1:8081") {
		t.Fatalf("default instance name %q", name)
	}
	// A clean stop leaves the list at once (the lease is revoked), not after the TTL.
	stopA()
	fl, err = b.Instances(context.Background())
	if err != nil || len(fl.Instances) != 1 || fl.Instances[0].Instance == "gw-a" {
		t.Fatalf("after gw-a stopped: %+v %v", fl, err)
	}
}

// TestEtcdStoreFleetLeft: an instance whose registration vanished without a clean
// stop (its lease ran out: cut off from etcd, or killed; here its key is deleted
// behind its back) is listed as left, with the revision it last applied; one that
// stopped cleanly is not. Before, it simply vanished and the list said every
// instance served the newest revision.
func TestEtcdStoreFleetLeft(t *testing.T) {
	srv := etcdtest.Start(t)
	a, b, rev, stopA := registeredPair(t, srv, "gw-b")

	// gw-b's registration goes, as when its lease runs out.
	cli := rawClient(t, srv.Endpoint)
	if _, err := cli.Delete(context.Background(), a.cfg.Prefix+keyInstances+"gw-b"); err != nil {
		t.Fatal(err)
	}
	if fl, err := a.Instances(context.Background()); err != nil || len(fl.Instances) != 1 || fl.Left != nil {
		t.Fatalf("after gw-b's lease went, Instances: %+v %v; want gw-a alone (it reads no departures)", fl, err)
	}
	fl, err := a.WithLeft(context.Background())
	if err != nil || len(fl.Instances) != 1 || len(fl.Left) != 1 {
		t.Fatalf("after gw-b's lease went: %+v %v; want gw-a listed and gw-b left", fl, err)
	}
	if l := fl.Left[0]; l.Instance != "gw-b" || l.AppliedRevision != rev || l.Admin != "127.0.0.1:9091" {
		t.Errorf("left entry %+v, want gw-b at revision %d", l, rev)
	}

	// A clean stop is no departure to report.
	stopA()
	fl, err = b.WithLeft(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range fl.Left {
		if l.Instance == "gw-a" {
			t.Errorf("gw-a stopped cleanly but is listed as left: %+v", fl.Left)
		}
	}
}
