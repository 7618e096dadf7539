package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

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
	const ref = "../shared/examples/cutover.yaml"
	fromFile := []string{"-etcd", etcd.Endpoint, "-prefix", "/shiftgate/file/", "-config", ref}
	fromFileFresh := []string{"-etcd", etcd.Endpoint, "-prefix", "/shiftgate/fresh/", "-config", ref}
	cases := []struct {
		args   []string
		code   int
		output string
	}{
		{append([]string{"split", "-writes", "10"}, append(direct, "feed", "30")...), 0, "now 30% (writes 10%)"},
		// Without -config no route list is known: the change is made, and says so.
		{append([]string{"split", "-writes", "10"}, append(direct, "feed", "30")...), 0, "nothing checked that route feed exists"},
		{append([]string{"split"}, append(direct, "feed", "130")...), 2, "want 0..100"},
		{append([]string{"split", "-local"}, append(direct, "feed", "5")...), 1, "need an instance's admin API"},
		{append([]string{"rollback"}, append(direct, "on")...), 0, "rollback ON"},
		{[]string{"rollback", "-etcd", etcd.Endpoint, "on"}, 1, "needs -prefix"},
		{append([]string{"status"}, direct...), 0, "no instance is registered"},
		// With -config and no override stored, the file's split (feed: 25, writes 5)
		// is what a change starts from: writes stay, a lower percent moves users back.
		{append([]string{"split"}, append(fromFile, "feed", "35")...), 0, "now 35% (writes 5%)"},
		{append([]string{"split"}, append(fromFile, "default", "0")...), 0, "now 0% (writes 0%)"},
		{append([]string{"split"}, append(fromFileFresh, "feed", "20")...), 1, "25%/5% -> 20%/5% moves users back"},
		{append([]string{"split"}, append(fromFileFresh, "nope", "20")...), 1, `route "nope" is not in`},
		// etcd not answering: a direct write has no instance to fall back on.
		{[]string{"split", "-etcd", "127.0.0.1:1", "-prefix", "/shiftgate/x/", "feed", "5"}, 1, "a direct write needs etcd to answer"},
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

// TestPrintFleetLeft: instances that left the list without a clean stop are printed
// apart, with what they last applied, after the summary of the registered ones.
func TestPrintFleetLeft(t *testing.T) {
	now := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	fl := store.FleetStatus{Store: "etcd test", OverrideRevision: 281,
		Instances: []store.Instance{{Instance: "gw1", AppliedRevision: 281, Started: now.Add(-time.Hour), Updated: now}},
		Left:      []store.Instance{{Instance: "gw3", Admin: "10.0.0.3:9090", AppliedRevision: 270, Updated: now.Add(-7 * time.Second)}}}
	var b strings.Builder
	printFleet(fl, now, &b)
	out := b.String()
	for _, want := range []string{"all 1 instances serve revision 281", "1 instances LEFT THE LIST without a clean stop", "gw3", "270 (BEHIND)", "7s ago"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
