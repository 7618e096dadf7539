package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store/etcdtest"
)

// TestEtcdStoreKeepsKeysThatDoNotDecode: a value written straight into etcd that does
// not decode (a truncated {"on":tru under the rollback key, half a route's split)
// changes nothing an instance serves: the rollback stays ON and the split stays
// where it was, the keys are reported in Health, a fleet write leaves them alone, a
// restart keeps the state_dir mirror's value, and a good value written again is
// taken. Before, a bad rollback value switched the rollback OFF on every instance and
// a bad route value fell back to the file's split, with one log line.
func TestEtcdStoreKeepsKeysThatDoNotDecode(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	s := newStore(t, srv.Endpoint, dir, "s")
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	seen := watch(t, s)
	o, err := s.Update(context.Background(), func(o *conf.Overrides) error {
		o.Rollback = conf.Rollback{On: true, Who: "tester", At: time.Now().UTC()}
		return setSplit("feed", 3000)(o)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*testTimeout, "the rollback applied", func() bool { return s.Health().AppliedRevision == o.Revision })
	before := len(seen.snapshot())

	raw := rawClient(t, srv.Endpoint)
	ctx := context.Background()
	if _, err := raw.Put(ctx, testPrefix+"overrides/rollback", `{"on":tru`); err != nil {
		t.Fatal(err)
	}
	put, err := raw.Put(ctx, testPrefix+"overrides/routes/feed", `{"percent_bp":`)
	if err != nil {
		t.Fatal(err)
	}
	badRev := put.Header.Revision
	waitFor(t, 3*testTimeout, "the bad values seen", func() bool {
		h := s.Health()
		return h.StoreRevision == badRev && h.AppliedRevision == badRev && len(h.Undecodable) == 2
	})
	for _, g := range seen.snapshot()[before:] {
		if !g.Rollback.On || g.Routes["feed"].PercentBP != 3000 {
			t.Fatalf("a value that does not decode changed what serves: rollback %+v, feed %+v", g.Rollback, g.Routes["feed"])
		}
	}
	h := s.Health()
	rb, rt := h.Undecodable[0], h.Undecodable[1]
	if rb.Key != "rollback" || rb.Kept != KeptServed || rb.Revision == 0 || rb.Error == "" || rb.Since.IsZero() {
		t.Fatalf("rollback reported as %+v", rb)
	}
	var kept conf.Rollback
	if err := json.Unmarshal(rb.Value, &kept); err != nil || !kept.On || kept.Who != "tester" {
		t.Fatalf("kept rollback %s %v", rb.Value, err)
	}
	if rt.Key != "routes/feed" || rt.Kept != KeptServed || rt.Revision != badRev {
		t.Fatalf("route reported as %+v", rt)
	}
	if c := s.current(); !c.Rollback.On || c.Routes["feed"].PercentBP != 3000 {
		t.Fatalf("current %+v", c)
	}
	if m, err := s.mirror.Load(); err != nil || !m.Rollback.On || m.Routes["feed"].PercentBP != 3000 {
		t.Fatalf("mirror %+v %v", m, err)
	}

	// A fleet write of another key takes the kept values as the current ones and does
	// not touch the bad keys.
	w, err := s.Update(ctx, setSplit("other", 100))
	if err != nil {
		t.Fatal(err)
	}
	if !w.Rollback.On || w.Routes["feed"].PercentBP != 3000 || w.Routes["other"].PercentBP != 100 {
		t.Fatalf("write result %+v", w)
	}
	if resp, err := raw.Get(ctx, testPrefix+"overrides/rollback"); err != nil || string(resp.Kvs[0].Value) != `{"on":tru` {
		t.Fatalf("the write touched the bad rollback key: %v %v", resp, err)
	}

	// A restart on the same state_dir keeps the mirror's values; an instance with no
	// mirror serves the file's (no override) and says so.
	again := newStore(t, srv.Endpoint, dir, "s")
	m, err := again.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !m.Rollback.On || m.Routes["feed"].PercentBP != 3000 {
		t.Fatalf("restart on the mirror serves %+v", m)
	}
	if u := again.Health().Undecodable; len(u) != 2 || u[0].Kept != KeptMirror || u[1].Kept != KeptMirror {
		t.Fatalf("restart reports %+v", u)
	}
	fresh := newStore(t, srv.Endpoint, "", "fresh")
	f, err := fresh.Load()
	if err != nil {
		t.Fatal(err)
	}
	if f.Rollback.On || f.Routes["feed"] != (conf.RouteOverride{}) {
		t.Fatalf("an empty state_dir has no value to keep: %+v", f)
	}
	if u := fresh.Health().Undecodable; len(u) != 2 || u[0].Kept != KeptFile || u[0].Value != nil {
		t.Fatalf("fresh instance reports %+v", u)
	}

	// A good value written again is taken.
	if _, err := raw.Put(ctx, testPrefix+"overrides/rollback", `{"on":false,"who":"ops"}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*testTimeout, "the good rollback value taken", func() bool {
		g := seen.snapshot()
		h := s.Health()
		return !g[len(g)-1].Rollback.On && len(h.Undecodable) == 1 && h.Undecodable[0].Key == "routes/feed"
	})
	if _, err := raw.Put(ctx, testPrefix+"overrides/routes/feed", `{"percent_bp":4000,"write_percent_bp":0}`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*testTimeout, "the good route value taken", func() bool {
		g := seen.snapshot()
		return g[len(g)-1].Routes["feed"].PercentBP == 4000 && len(s.Health().Undecodable) == 0
	})
}
