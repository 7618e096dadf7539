package clientcfg

import (
	"testing"
)

// testConfig is the example cutover with a host route added. Expectations below are
// worked out by hand from the contract's vectors (salt cutover-2026): 42 → 2799,
// u-1001 → 7356, u-qa-1 → 900, d-7f3a → 7630, 203.0.113.7 → 3466, 2001:db8::1 → 5774.
func testConfig() *Config {
	keys := []string{"header:X-User-Id", "cookie:uid", "query:u", "ip"}
	return &Config{
		Version: "9", Algorithm: Algorithm,
		Regions: map[string]Region{"idc": {"https://idc.example.com"}, "cloud": {"https://cloud.example.com"}},
		Routes: []Route{
			{Name: "feed", Match: Match{PathPrefix: "/api/feed"}, From: "idc", To: "cloud", Salt: "cutover-2026",
				Keys: keys, Percent: 28, WritePercent: 9.01},
			{Name: "default", Match: Match{PathPrefix: "/"}, From: "idc", To: "cloud", Salt: "cutover-2026",
				Keys: keys, Percent: 27.99, WritePercent: 0},
			{Name: "admin", Match: Match{Host: "admin.example.com", PathPrefix: "/"}, From: "idc", To: "cloud",
				Salt: "cutover-2026", Keys: []string{"ip"}, Percent: 57.75, WritePercent: 57.74, Cutoff: true},
		},
	}
}

func TestDecide(t *testing.T) {
	h := func(kv ...string) map[string]string { return hdr(kv...) }
	idc, cloud := "https://idc.example.com", "https://cloud.example.com"
	for _, tc := range []struct {
		name string
		req  Request
		want Decision
	}{
		{"2799 < 2800 moves", Request{Method: "GET", Path: "/api/feed/x", Headers: h("X-User-Id", "42")},
			Decision{Route: "feed", Region: "cloud", URL: cloud, Bucket: 2799, Threshold: 2800, KeySource: "header:X-User-Id", Reason: ReasonSplit}},
		{"2799 at 27.99 % stays", Request{Method: "GET", Path: "/other", Headers: h("X-User-Id", "42")},
			Decision{Route: "default", Region: "idc", URL: idc, Bucket: 2799, Threshold: 2799, KeySource: "header:X-User-Id", Reason: ReasonSplit}},
		{"900 < 901 write moves", Request{Method: "POST", Path: "/api/feed", Headers: h("x-user-id", "u-qa-1")},
			Decision{Route: "feed", Region: "cloud", URL: cloud, Bucket: 900, Threshold: 901, KeySource: "header:X-User-Id", Reason: ReasonSplit, Write: true}},
		{"write at 0 % stays", Request{Method: "put", Path: "/x", Headers: h("X-USER-ID", "u-qa-1")},
			Decision{Route: "default", Region: "idc", URL: idc, Bucket: 900, Threshold: 0, KeySource: "header:X-User-Id", Reason: ReasonSplit, Write: true}},
		{"cookie after an empty header", Request{Path: "/api/feed", Headers: h("X-User-Id", ""), Cookies: h("uid", "d-7f3a")},
			Decision{Route: "feed", Region: "idc", URL: idc, Bucket: 7630, Threshold: 2800, KeySource: "cookie:uid", Reason: ReasonSplit}},
		{"spaces and tabs around a header value are not the key", Request{Path: "/api/feed", Headers: h("X-User-Id", " 42\t")},
			Decision{Route: "feed", Region: "cloud", URL: cloud, Bucket: 2799, Threshold: 2800, KeySource: "header:X-User-Id", Reason: ReasonSplit}},
		{"cookie after a blank header; its spaces trimmed too", Request{Path: "/api/feed", Headers: h("x-user-id", " \t"), Cookies: h("uid", " d-7f3a ")},
			Decision{Route: "feed", Region: "idc", URL: idc, Bucket: 7630, Threshold: 2800, KeySource: "cookie:uid", Reason: ReasonSplit}},
		{"query after the cookie", Request{Method: "HEAD", Path: "/api/feed", Cookies: h("UID", "x"), Query: h("u", "u-qa-1")},
			Decision{Route: "feed", Region: "cloud", URL: cloud, Bucket: 900, Threshold: 2800, KeySource: "query:u", Reason: ReasonSplit}},
		{"ip last, mapped", Request{Method: "OPTIONS", Path: "/api/feed", IP: "::FFFF:203.0.113.7"},
			Decision{Route: "feed", Region: "idc", URL: idc, Bucket: 3466, Threshold: 2800, KeySource: "ip", Reason: ReasonSplit}},
		{"no key", Request{Method: "GET", Path: "/api/feed", IP: "not-an-ip"},
			Decision{Route: "feed", Region: "idc", URL: idc, Bucket: -1, Threshold: 2800, Reason: ReasonNoKey}},
		{"host route, cut off", Request{Method: "GET", Host: "Admin.Example.com:443", Path: "/api/feed", IP: "2001:db8:0::1"},
			Decision{Route: "admin", Region: "cloud", URL: cloud, Bucket: 5774, Threshold: 5775, KeySource: "ip", Reason: ReasonSplit, Cutoff: true}},
		{"host route, write threshold", Request{Method: "POST", Host: "admin.example.com", Path: "/", IP: "2001:db8::1"},
			Decision{Route: "admin", Region: "idc", URL: idc, Bucket: 5774, Threshold: 5774, KeySource: "ip", Reason: ReasonSplit, Cutoff: true, Write: true}},
		{"another host", Request{Method: "GET", Host: "admin.example.com.evil", Path: "/", IP: "2001:db8::1"},
			Decision{Route: "default", Region: "idc", URL: idc, Bucket: 5774, Threshold: 2799, KeySource: "ip", Reason: ReasonSplit}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(testConfig(), tc.req); got != tc.want {
				t.Errorf("Decide =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

func TestDecideLevers(t *testing.T) {
	req := Request{Method: "GET", Path: "/api/feed", Headers: hdr("X-User-Id", "42")}

	c := testConfig()
	c.Rollback = true
	want := Decision{Route: "feed", Region: "idc", URL: "https://idc.example.com", Bucket: -1, Threshold: 2800, Reason: ReasonRollback}
	if got := Decide(c, req); got != want {
		t.Errorf("rollback: %+v, want %+v", got, want)
	}

	c = testConfig()
	c.Cutoff = true
	if got := Decide(c, req); !got.Cutoff || got.Region != "cloud" {
		t.Errorf("site cutoff: %+v, want cutoff and the split's region", got)
	}
	if got := Decide(c, Request{Host: "x", Path: "/"}); !got.Cutoff {
		t.Errorf("site cutoff without a key: %+v", got)
	}

	c = testConfig()
	c.Routes = c.Routes[:1]
	if got, want := Decide(c, Request{Path: "/x"}), (Decision{Bucket: -1, Reason: ReasonNoRoute}); got != want {
		t.Errorf("no route: %+v, want %+v", got, want)
	}
	if got, want := Decide(nil, req), (Decision{Bucket: -1, Reason: ReasonNoConfig}); got != want {
		t.Errorf("nil config: %+v, want %+v", got, want)
	}
	c.Algorithm = "xxh3"
	if got, want := Decide(c, req), (Decision{Bucket: -1, Reason: ReasonUnsupported}); got != want {
		t.Errorf("unsupported: %+v, want %+v", got, want)
	}
}

func TestMatchRules(t *testing.T) {
	routes := []Route{
		{Name: "a", Match: Match{PathPrefix: "/api"}},
		{Name: "b", Match: Match{PathPrefix: "/api/v1"}},
		{Name: "c", Match: Match{Host: "x.example.com", PathPrefix: "/"}},
		{Name: "d", Match: Match{Host: "x.example.com", PathPrefix: "/api/v1/deep"}},
		{Name: "dup", Match: Match{PathPrefix: "/api"}},
		{Name: "v6", Match: Match{Host: "[::1]", PathPrefix: "/"}},
	}
	for _, tc := range []struct {
		host, path, want string
	}{
		{"", "/api/v1/x", "b"}, {"", "/api", "a"}, {"", "/apix", "a"}, {"", "/ap", ""},
		{"X.Example.Com", "/api/v1/x", "c"}, {"x.example.com:80", "/api/v1/deep/1", "d"},
		{"y.example.com", "/api/v1/deep/1", "b"}, {"[::1]:80", "/", "v6"}, {"[::1]", "/", "v6"},
	} {
		got := ""
		if i := match(routes, tc.host, tc.path); i >= 0 {
			got = routes[i].Name
		}
		if got != tc.want {
			t.Errorf("match(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
}

func TestClientHeader(t *testing.T) {
	c := testConfig()
	d := Decide(c, Request{Path: "/api/feed", Headers: hdr("X-User-Id", "42")})
	if got := ClientHeader(c, d); got != "cloud;v=9" {
		t.Errorf("ClientHeader = %q", got)
	}
	if got := ClientHeader(c, Decide(nil, Request{})); got != "" {
		t.Errorf("ClientHeader without a region = %q", got)
	}
}

// allocRequests are requests Decide must route without allocating.
func allocRequests() []Request {
	long := string(make([]byte, 300))
	return []Request{
		{Method: "GET", Path: "/api/feed/home", Headers: hdr("X-User-Id", "u-1001")},
		{Method: "POST", Path: "/api/feed/home", Headers: hdr("x-user-id", "u-1001")},
		{Method: "GET", Path: "/api/feed", Cookies: hdr("uid", "u-1001")},
		{Method: "GET", Path: "/api/feed", Query: hdr("u", long)},
		{Method: "GET", Path: "/api/feed", IP: "203.0.113.7"},
		{Method: "GET", Path: "/api/feed", IP: "2001:db8:85a3::8a2e:370:7334"},
		{Method: "GET", Host: "admin.example.com:8443", Path: "/x", IP: "::ffff:192.0.2.1"},
		{Method: "GET", Path: "/api/feed"},
	}
}

func TestDecideAllocs(t *testing.T) {
	c := testConfig()
	for _, r := range allocRequests() {
		if n := testing.AllocsPerRun(100, func() { Decide(c, r) }); n != 0 {
			t.Errorf("Decide(%+v) allocates %v times", r, n)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	c := testConfig()
	for _, bc := range []struct {
		name string
		req  Request
	}{
		{"header", allocRequests()[0]},
		{"header-other-case", allocRequests()[1]},
		{"ipv6", allocRequests()[5]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Decide(c, bc.req)
			}
		})
	}
}
