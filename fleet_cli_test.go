package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/conf/store/etcdtest"
)

// TestDirectEtcdVerbs writes to a fleet's etcd with no instance running, as an
// operator does when no admin API answers, and reads the result back as an instance
// would at start.
func TestDirectEtcdVerbs(t *testing.T) {
	etcd := etcdtest.Start(t)
	direct := []string{"-etcd", etcd.Endpoint, "-prefix", "/shiftgate/direct/"}
	cases := []struct {
		args   []string
		code   int
		output string
	}{
		{append([]string{"split", "-writes", "10"}, append(direct, "feed", "30")...), 0, "now 30% (writes 10%)"},
		{append([]string{"split"}, append(direct, "feed", "130")...), 2, "want 0..100"},
		{append([]string{"split", "-local"}, append(direct, "feed", "5")...), 1, "need an instance's admin API"},
		{append([]string{"rollback"}, append(direct, "on")...), 0, "rollback ON"},
		{[]string{"rollback", "-etcd", etcd.Endpoint, "on"}, 1, "needs -prefix"},
		{append([]string{"status"}, direct...), 0, "no instance is registered"},
	}
	for _, c := range cases {
		code, out, errs := runCLI(c.args...)
		if code != c.code || !strings.Contains(out+errs, c.output) {
			t.Errorf("%v: exit %d, %q %q; want %d with %q", c.args, code, out, errs, c.code, c.output)
		}
	}
	s, err := store.NewEtcd(&conf.Etcd{Endpoints: []string{etcd.Endpoint}, Prefix: "/shiftgate/direct/"},
		store.EtcdOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if r := o.Routes["feed"]; r.PercentBP != 3000 || r.WritePercentBP != 1000 || !strings.HasPrefix(r.Who, "cli ") || !o.Rollback.On {
		t.Fatalf("etcd holds %+v", o)
	}
}
