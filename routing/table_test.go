package routing_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
)

// matchConfig lists the catch-all first: the longest prefix wins whatever the order.
const matchConfig = `
regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
  cloud: {upstreams: ["127.0.0.1:9002"]}
split: {from: idc, to: cloud, salt: s}
routes:
  - name: default
    match: {path_prefix: /}
  - name: api
    match: {path_prefix: /api}
  - name: feed
    match: {path_prefix: /api/feed}
  - name: feed-slash
    match: {path_prefix: /api/feed/}
  - name: admin
    match: {host: Admin.Example.com, path_prefix: /}
  - name: v2
    match: {host: api.example.com, path_prefix: /v2}
  - name: v2-feed
    match: {host: api.example.com, path_prefix: /v2/feed}
`

func TestMatch(t *testing.T) {
	c := mustParse(t, matchConfig)
	tbl := mustCompile(t, c, nil, false)
	cases := []struct {
		host, path, want string
	}{
		{"", "/", "default"},
		{"", "/x", "default"},
		{"", "/api", "api"},
		{"", "/api/", "api"},
		{"", "/api/fee", "api"},
		{"", "/api/feed", "feed"},
		{"", "/api/feed/", "feed-slash"},
		{"", "/api/feed/home", "feed-slash"},
		// Prefixes are raw byte prefixes, not path segments: /api/feedback and /apix
		// match /api/feed and /api. A config that wants segment matching ends the
		// prefix with a slash, as feed-slash does.
		{"", "/api/feedback", "feed"},
		{"", "/apix", "api"},
		// Paths are case-sensitive; no path ("") matches no prefix.
		{"", "/API/feed", "default"},
		{"", "", ""},
		{"www.example.com", "/api/feed", "feed"},
		// A host route beats host-less routes, even a longer prefix of theirs.
		{"admin.example.com", "/api/feed", "admin"},
		{"ADMIN.EXAMPLE.COM", "/", "admin"},
		{"Admin.Example.Com:8443", "/x", "admin"},
		{"api.example.com", "/v2", "v2"},
		{"api.example.com", "/v2/feed/x", "v2-feed"},
		{"api.example.com:443", "/v2x", "v2"},
		// No route of the host matches: fall back to host-less routes.
		{"api.example.com", "/api/feed", "feed"},
		{"api.example.com", "/", "default"},
		{"admin.example.com.", "/api", "api"}, // a trailing dot is another name
		{"[::1]:8080", "/api", "api"},
		{"[::1]", "/api", "api"},
		{":", "/api", "api"},
		{strings.Repeat("a", 300), "/api", "api"},
		{strings.Repeat("a", 300) + ":80", "/api", "api"},
	}
	for _, tc := range cases {
		idx := tbl.Match([]byte(tc.host), []byte(tc.path))
		got := ""
		if idx >= 0 {
			got = tbl.RouteName(idx)
		}
		if got != tc.want {
			t.Errorf("Match(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
		}
		if d := tbl.Decide([]byte(tc.host), []byte(tc.path), get("192.0.2.1")); d.Route != int32(idx) {
			t.Errorf("Decide(%q, %q).Route = %d, Match = %d", tc.host, tc.path, d.Route, idx)
		}
	}
}

// TestMatchExample: the example's feed route and its catch-all.
func TestMatchExample(t *testing.T) {
	tbl := mustCompile(t, loadExample(t), nil, false)
	for path, want := range map[string]string{
		"/api/feed": "feed", "/api/feed?x=1": "feed", "/api/feedback": "feed", "/api/fee": "default", "/": "default",
	} {
		if got := tbl.RouteName(tbl.Match(nil, []byte(path))); got != want {
			t.Errorf("Match(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestCompileSplits(t *testing.T) {
	c := loadExample(t) // feed 2500/500, default 0/0
	cases := []struct {
		name    string
		splits  []routing.Split
		want    []routing.Split
		wantErr string
	}{
		{"nil takes the config's", nil, []routing.Split{{Read: 2500, Write: 500}, {}}, ""},
		{"explicit", []routing.Split{{Read: 10000, Write: 0}, {Read: 1, Write: 1}}, []routing.Split{{Read: 10000, Write: 0}, {Read: 1, Write: 1}}, ""},
		{"all", []routing.Split{{Read: 10000, Write: 10000}, {Read: 10000, Write: 10000}}, []routing.Split{{Read: 10000, Write: 10000}, {Read: 10000, Write: 10000}}, ""},
		{"too few", []routing.Split{{}}, nil, "1 splits for 2 routes"},
		{"too many", []routing.Split{{}, {}, {}}, nil, "3 splits for 2 routes"},
		{"empty is not nil", []routing.Split{}, nil, "0 splits for 2 routes"},
		{"negative read", []routing.Split{{Read: -1}, {}}, nil, "route feed: bad split"},
		{"read above 100 %", []routing.Split{{}, {Read: 10001}}, nil, "route default: bad split"},
		{"negative write", []routing.Split{{Read: 100, Write: -1}, {}}, nil, "route feed: bad split"},
		{"write above read", []routing.Split{{Read: 100, Write: 101}, {}}, nil, "route feed: bad split"},
	}
	for _, tc := range cases {
		tbl, err := routing.Compile(c, tc.splits, false)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
			}
			if tbl != nil {
				t.Errorf("%s: a table with an error", tc.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		for i, want := range tc.want {
			if got := tbl.RouteSplit(i); got != want {
				t.Errorf("%s: RouteSplit(%d) = %+v, want %+v", tc.name, i, got, want)
			}
		}
	}

	// An explicit split is what Decide uses: everything's reads, nobody's writes.
	tbl := mustCompile(t, c, []routing.Split{{Read: 10000, Write: 0}, {}}, false)
	late := userIn(t, "cutover-2026", 9900, 10000)
	r := get("192.0.2.1", "X-User-Id", late)
	if d := tbl.Decide(nil, []byte("/api/feed"), r); d.Region != regionID(t, c, "cloud") || d.Threshold != 10000 {
		t.Errorf("read at 100 %%: %+v", d)
	}
	r.method = []byte("POST")
	if d := tbl.Decide(nil, []byte("/api/feed"), r); d.Region != regionID(t, c, "idc") || d.Threshold != 0 {
		t.Errorf("write at 0 %%: %+v", d)
	}
}

func TestTableAccessors(t *testing.T) {
	c := loadExample(t)
	tbl := mustCompile(t, c, nil, false)
	if tbl.Routes() != 2 || tbl.RouteName(0) != "feed" || tbl.RouteName(1) != "default" {
		t.Errorf("routes: %d %q %q", tbl.Routes(), tbl.RouteName(0), tbl.RouteName(1))
	}
	for _, r := range c.RegionList {
		if got := tbl.RegionName(r.ID); got != r.Name {
			t.Errorf("RegionName(%d) = %q, want %q", r.ID, got, r.Name)
		}
		for _, spelling := range []string{r.Name, strings.ToUpper(r.Name)} {
			if id, ok := tbl.RegionID([]byte(spelling)); !ok || id != r.ID {
				t.Errorf("RegionID(%q) = %d, %v", spelling, id, ok)
			}
		}
	}
	if got := tbl.RegionName(conf.NoRegion); got != "" {
		t.Errorf("RegionName(NoRegion) = %q", got)
	}
	for _, name := range []string{"", "mars", "clou", "cloudy"} {
		if id, ok := tbl.RegionID([]byte(name)); ok || id != conf.NoRegion {
			t.Errorf("RegionID(%q) = %d, %v", name, id, ok)
		}
	}
}

// manyRoutes builds a config of n routes with distinct prefixes of many lengths
// (/s/0, /ss/1, ... up to 40 letters, then the number), plus a catch-all.
func manyRoutes(n int) (yaml string, paths [][]byte) {
	var b strings.Builder
	b.WriteString("regions:\n  idc: {upstreams: [\"127.0.0.1:9001\"]}\n  cloud: {upstreams: [\"127.0.0.1:9002\"]}\n")
	b.WriteString("split: {from: idc, to: cloud, salt: s}\nroutes:\n  - name: default\n    percent: 0\n")
	for i := 0; i < n; i++ {
		prefix := fmt.Sprintf("/%s/%d", strings.Repeat("s", 1+i%40), i)
		fmt.Fprintf(&b, "  - name: r%d\n    match: {path_prefix: %s}\n    percent: 10\n", i, prefix)
		paths = append(paths, []byte(prefix+"/items/42"))
	}
	return b.String(), paths
}

func TestManyRoutes(t *testing.T) {
	yaml, paths := manyRoutes(2000)
	tbl := mustCompile(t, mustParse(t, yaml), nil, false)
	for i, p := range paths {
		if got, want := tbl.RouteName(tbl.Match(nil, p)), fmt.Sprintf("r%d", i); got != want {
			t.Fatalf("Match(%q) = %q, want %q", p, got, want)
		}
	}
	if got := tbl.RouteName(tbl.Match(nil, []byte("/nowhere/at/all"))); got != "default" {
		t.Errorf("Match(/nowhere/at/all) = %q", got)
	}
}

func BenchmarkMatch2000Routes(b *testing.B) {
	yaml, paths := manyRoutes(2000)
	tbl := mustCompile(b, mustParse(b, yaml), nil, false)
	// One in four misses every route but the catch-all, trying every prefix length.
	for i := 0; i < len(paths); i += 4 {
		paths[i] = []byte("/nowhere/at/all/and/then/some/more/of/it")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if tbl.Match(nil, paths[i%len(paths)]) < 0 {
			b.Fatal("no match")
		}
		i++
	}
}
