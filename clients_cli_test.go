package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/conf/store/etcdtest"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/routing/clientcfg"
)

// TestVectorsVerb: `shiftgate vectors` prints exactly the committed clients/vectors.json
// that every SDK tests against (routing/clientcfg's TestVectorsFile holds the file to
// the code; this holds the verb to the file).
func TestVectorsVerb(t *testing.T) {
	code, out, errs := runCLI("vectors")
	if code != 0 || errs != "" {
		t.Fatalf("vectors: exit %d, %q", code, errs)
	}
	file, err := os.ReadFile("clients/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(out), file) {
		t.Fatalf("shiftgate vectors differs from clients/vectors.json (%d vs %d bytes); run go generate ./routing/clientcfg", len(out), len(file))
	}
	if code, _, _ := runCLI("vectors", "extra"); code != 2 {
		t.Fatalf("vectors with an argument: exit %d, want 2", code)
	}
}

// TestCutoffVerb drives `shiftgate cutoff` against serve: the cut-off shows in status
// and in the client config, and the gateway keeps serving the routes cut off.
func TestCutoffVerb(t *testing.T) {
	s := startServe(t)
	admin := "http://" + s.admin
	doc := func() *clientcfg.Config {
		t.Helper()
		resp, err := http.Get("http://" + s.listen + proxy.ClientConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		c, err := clientcfg.Parse(b)
		if err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return c
	}
	cases := []struct {
		args   []string
		code   int
		output string
		site   bool
		routes []string
	}{
		{[]string{"on", "feed"}, 0, "cutoff: ON for routes feed", false, []string{"feed"}},
		{[]string{"on"}, 0, "cutoff: ON for the whole site", true, []string{"feed"}},
		// One route cannot leave a site-wide cut-off: refused, and nothing changes.
		{[]string{"off", "feed"}, 1, "the site-wide cut-off is on and covers every route", true, []string{"feed"}},
		{[]string{"off"}, 0, "cutoff: off", false, nil},
		{[]string{"on", "feed"}, 0, "cutoff: ON for routes feed", false, []string{"feed"}},
		{[]string{"on"}, 0, "cutoff: ON for the whole site", true, []string{"feed"}},
		{[]string{"on", "nope"}, 1, `no route "nope"`, true, []string{"feed"}},
		{[]string{"off"}, 0, "cutoff: off", false, nil},
		{[]string{"maybe"}, 2, "usage: shiftgate cutoff", false, nil},
		{nil, 2, "usage: shiftgate cutoff", false, nil},
	}
	for _, c := range cases {
		code, out, errs := runCLI(append([]string{"cutoff", "-admin", admin}, c.args...)...)
		if code != c.code || !strings.Contains(out+errs, c.output) {
			t.Fatalf("cutoff %v: exit %d, %q %q; want %d with %q", c.args, code, out, errs, c.code, c.output)
		}
		st := s.srv.Status()
		if st.Cutoff.On != c.site || !slices.Equal(st.Cutoff.Routes, c.routes) {
			t.Fatalf("cutoff %v: status %+v, want site %v routes %v", c.args, st.Cutoff, c.site, c.routes)
		}
		d := doc()
		if d.Cutoff != c.site || d.Routes[0].Cutoff != (c.site || slices.Contains(c.routes, "feed")) || d.Routes[1].Cutoff != c.site {
			t.Fatalf("cutoff %v: client config cutoff %v, routes %v/%v", c.args, d.Cutoff, d.Routes[0].Cutoff, d.Routes[1].Cutoff)
		}
		if st.ClientConfigVersion != d.Version {
			t.Fatalf("status client config %s, endpoint %s", st.ClientConfigVersion, d.Version)
		}
		if c.args != nil && c.args[0] == "on" && c.code == 0 {
			// The gateway itself keeps serving what reaches it.
			resp, err := http.Get("http://" + s.listen + "/api/feed")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("a request during the cut-off: %v %v", resp, err)
			}
			resp.Body.Close()
		}
	}
	if _, err := http.Post(admin+"/v1/cutoff", "text/plain", strings.NewReader(`{"on":true}`)); err != nil {
		t.Fatal(err)
	}
	if st := s.srv.Status(); st.Cutoff.On {
		t.Fatal("a cut-off without a JSON content type was taken")
	}
	resp, err := http.Post(admin+"/v1/cutoff", "application/json", strings.NewReader(`{"on":true,"routez":["feed"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(e.Error, "routez") {
		t.Fatalf("unknown field: %d %q", resp.StatusCode, e.Error)
	}
	code, out, _ := runCLI("status", "-admin", admin)
	if code != 0 || !strings.Contains(out, "cutoff: off\nclient config: version ") {
		t.Fatalf("status: %d\n%s", code, out)
	}
}

// TestCutoffDirectEtcd writes the cut-off to a fleet's etcd with no instance running,
// and reads it back as an instance would.
func TestCutoffDirectEtcd(t *testing.T) {
	etcd := etcdtest.Start(t)
	direct := []string{"-etcd", etcd.Endpoint, "-prefix", "/shiftgate/cutoff/"}
	for _, c := range []struct {
		args   []string
		code   int
		output string
	}{
		{append(append([]string{"cutoff"}, direct...), "on", "feed", "api"), 0, "ON for routes api, feed"},
		{append(append([]string{"cutoff", "-local"}, direct...), "on"), 1, "needs an instance's admin API"},
		{append(append([]string{"cutoff"}, direct...), "off", "api"), 0, "ON for routes feed"},
	} {
		code, out, errs := runCLI(c.args...)
		if code != c.code || !strings.Contains(out+errs, c.output) {
			t.Errorf("%v: exit %d, %q %q; want %d with %q", c.args, code, out, errs, c.code, c.output)
		}
	}
	s, err := store.NewEtcd(&conf.Etcd{Endpoints: []string{etcd.Endpoint}, Prefix: "/shiftgate/cutoff/"},
		store.EtcdOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c := o.Cutoff; c.On || !slices.Equal(c.Routes, []string{"feed"}) || !strings.HasPrefix(c.Who, "cli ") {
		t.Fatalf("etcd holds cut-off %+v", c)
	}
}
