package routing_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
)

// userIn returns a user id whose bucket under salt is in [lo, hi).
func userIn(t *testing.T, salt string, lo, hi int) string {
	t.Helper()
	for i := 0; i < 1_000_000; i++ {
		u := "u-" + strconv.Itoa(i)
		if b := reference(salt, u); b >= lo && b < hi {
			return u
		}
	}
	t.Fatalf("no user with a bucket in [%d, %d)", lo, hi)
	return ""
}

// TestReadWriteSplit uses the example's feed route (25 % reads, 5 % writes).
func TestReadWriteSplit(t *testing.T) {
	c := loadExample(t)
	tbl := mustCompile(t, c, nil, false)
	cloud, idc := regionID(t, c, "cloud"), regionID(t, c, "idc")
	early := userIn(t, "cutover-2026", 0, 500)     // reads and writes moved
	middle := userIn(t, "cutover-2026", 500, 2500) // reads moved, writes not yet
	late := userIn(t, "cutover-2026", 2500, 10000) // nothing moved
	cases := []struct {
		user, method string
		write        bool
		region       conf.RegionID
	}{
		{early, "GET", false, cloud},
		{early, "POST", true, cloud},
		{middle, "GET", false, cloud},
		{middle, "HEAD", false, cloud},
		{middle, "OPTIONS", false, cloud},
		{middle, "POST", true, idc},
		{middle, "PUT", true, idc},
		{middle, "PATCH", true, idc},
		{middle, "DELETE", true, idc},
		{middle, "CONNECT", true, idc},
		// Methods are case-sensitive (RFC 9110): an unknown spelling is treated as a
		// write, the side that moves last.
		{middle, "get", true, idc},
		{middle, "", true, idc},
		{late, "GET", false, idc},
		{late, "POST", true, idc},
	}
	for _, tc := range cases {
		r := get("192.0.2.1", "X-User-Id", tc.user)
		r.method = []byte(tc.method)
		d := tbl.Decide(nil, []byte("/api/feed/home"), r)
		wantTh := int32(2500)
		if tc.write {
			wantTh = 500
		}
		if d.Region != tc.region || d.Write != tc.write || d.Threshold != wantTh || d.Reason != routing.ReasonSplit ||
			d.Bucket != int32(reference("cutover-2026", tc.user)) {
			t.Errorf("%s %s (bucket %d): got region %d write %v threshold %d reason %v bucket %d, want region %d write %v threshold %d",
				tc.method, tc.user, reference("cutover-2026", tc.user), d.Region, d.Write, d.Threshold, d.Reason, d.Bucket,
				tc.region, tc.write, wantTh)
		}
		wantOther := idc
		if tc.region == idc {
			wantOther = cloud
		}
		if d.Other != wantOther {
			t.Errorf("%s %s: Other = %d, want %d", tc.method, tc.user, d.Other, wantOther)
		}
	}
}

// keyCase describes one request by plain values, built both as a req and as a
// StaticRequest.
type keyCase struct {
	name    string
	headers []string // alternating names and values
	cookies []string
	query   []string
	peer    string
	xff     []string
	// want: the key source index and key; src -1 means no key.
	src int8
	key string
}

func (kc keyCase) requests() []routing.Request {
	r := &req{method: []byte("GET"), headers: kv(kc.headers...), cookies: kv(kc.cookies...), query: kv(kc.query...),
		xff: xff(kc.xff...), peer: netip.MustParseAddr(kc.peer)}
	sr := &routing.StaticRequest{MethodName: "GET", PeerAddr: netip.MustParseAddr(kc.peer),
		Cookies: map[string]string{}, QueryArgs: map[string]string{}}
	for i := 0; i+1 < len(kc.headers); i += 2 {
		sr.Headers = append(sr.Headers, [2]string{kc.headers[i], kc.headers[i+1]})
	}
	for _, v := range kc.xff {
		sr.Headers = append(sr.Headers, [2]string{"X-Forwarded-For", v})
	}
	for i := 0; i+1 < len(kc.cookies); i += 2 {
		sr.Cookies[kc.cookies[i]] = kc.cookies[i+1]
	}
	for i := 0; i+1 < len(kc.query); i += 2 {
		sr.QueryArgs[kc.query[i]] = kc.query[i+1]
	}
	return []routing.Request{r, sr}
}

func checkKeys(t *testing.T, tbl *routing.Table, salt string, from conf.RegionID, path string, cases []keyCase) {
	t.Helper()
	for _, kc := range cases {
		for i, r := range kc.requests() {
			d, e := tbl.Explain(nil, []byte(path), r)
			if d2 := tbl.Decide(nil, []byte(path), r); d2 != d {
				t.Errorf("%s/%d: Decide %+v != Explain %+v", kc.name, i, d2, d)
			}
			if d.Source != kc.src || e.Key != kc.key {
				t.Errorf("%s/%d: source %d key %q, want %d %q", kc.name, i, d.Source, e.Key, kc.src, kc.key)
				continue
			}
			if kc.src == routing.NoSource {
				if d.Bucket != -1 || d.Reason != routing.ReasonNoKey || d.Region != from || e.KeySource != "" {
					t.Errorf("%s/%d: no key: got %+v %+v", kc.name, i, d, e)
				}
				continue
			}
			if want := reference(salt, kc.key); d.Bucket != int32(want) || d.Reason != routing.ReasonSplit {
				t.Errorf("%s/%d: bucket %d reason %v, want %d split", kc.name, i, d.Bucket, d.Reason, want)
			}
		}
	}
}

// TestKeySources walks the example's chain: header:X-User-Id, cookie:uid,
// header:X-Device-Id, ip.
func TestKeySources(t *testing.T) {
	c := loadExample(t)
	tbl := mustCompile(t, c, nil, false)
	idc := regionID(t, c, "idc")
	checkKeys(t, tbl, "cutover-2026", idc, "/x", []keyCase{
		{name: "user header", headers: []string{"X-User-Id", "u-1001", "X-Device-Id", "d-7f3a"}, cookies: []string{"uid", "42"}, peer: "192.0.2.1", src: 0, key: "u-1001"},
		{name: "header name any case", headers: []string{"x-user-id", "u-1001"}, peer: "192.0.2.1", src: 0, key: "u-1001"},
		{name: "header name upper case", headers: []string{"X-USER-ID", "u-1001"}, peer: "192.0.2.1", src: 0, key: "u-1001"},
		{name: "empty header skipped", headers: []string{"X-User-Id", "", "X-Device-Id", "d-7f3a"}, cookies: []string{"uid", "42"}, peer: "192.0.2.1", src: 1, key: "42"},
		{name: "cookie", cookies: []string{"uid", "42"}, peer: "192.0.2.1", src: 1, key: "42"},
		{name: "cookie name is case-sensitive", headers: []string{"X-Device-Id", "d-7f3a"}, cookies: []string{"UID", "42"}, peer: "192.0.2.1", src: 2, key: "d-7f3a"},
		{name: "empty cookie skipped", headers: []string{"X-Device-Id", "d-7f3a"}, cookies: []string{"uid", ""}, peer: "192.0.2.1", src: 2, key: "d-7f3a"},
		{name: "device header", headers: []string{"X-Device-Id", "d-7f3a"}, peer: "192.0.2.1", src: 2, key: "d-7f3a"},
		{name: "ip", peer: "203.0.113.7", src: 3, key: "203.0.113.7"},
		{name: "ip v6", peer: "2001:db8::1", src: 3, key: "2001:db8::1"},
		{name: "ip mapped peer", peer: "::ffff:203.0.113.7", src: 3, key: "203.0.113.7"},
		{name: "ip through trusted proxy", peer: "10.0.0.1", xff: []string{"203.0.113.7, 10.0.0.5"}, src: 3, key: "203.0.113.7"},
		{name: "ip: untrusted XFF ignored", peer: "192.0.2.1", xff: []string{"203.0.113.7"}, src: 3, key: "192.0.2.1"},
		{name: "query is not in this chain", query: []string{"u", "u-1001"}, peer: "192.0.2.1", src: 3, key: "192.0.2.1"},
	})

	q := mustParse(t, `
regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
  cloud: {upstreams: ["127.0.0.1:9002"]}
split: {from: idc, to: cloud, salt: q-salt}
routes:
  - name: all
    match: {path_prefix: /}
    percent: 50
    keys: ["query:u", "header:X-User-Id"]
`)
	qt := mustCompile(t, q, nil, false)
	checkKeys(t, qt, "q-salt", regionID(t, q, "idc"), "/any", []keyCase{
		{name: "query first", query: []string{"u", "u-1001"}, headers: []string{"X-User-Id", "42"}, peer: "192.0.2.1", src: 0, key: "u-1001"},
		{name: "empty query skipped", query: []string{"u", ""}, headers: []string{"X-User-Id", "42"}, peer: "192.0.2.1", src: 1, key: "42"},
		{name: "query name is case-sensitive", query: []string{"U", "u-1001"}, headers: []string{"X-User-Id", "42"}, peer: "192.0.2.1", src: 1, key: "42"},
		{name: "no key: from", peer: "192.0.2.1", src: routing.NoSource},
		{name: "no key, cookie not in chain", cookies: []string{"uid", "42"}, peer: "192.0.2.1", src: routing.NoSource},
	})
}

// TestNoKeyDecision checks the whole Decision when nothing in the chain is present.
func TestNoKeyDecision(t *testing.T) {
	c := mustParse(t, `
regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
  cloud: {upstreams: ["127.0.0.1:9002"]}
split: {from: idc, to: cloud, salt: s}
routes:
  - name: all
    percent: 100
    write_percent: 40
    keys: ["header:X-User-Id"]
`)
	tbl := mustCompile(t, c, nil, false)
	r := get("192.0.2.1")
	r.method = []byte("POST")
	got := tbl.Decide([]byte("h"), []byte("/"), r)
	want := routing.Decision{Route: 0, Bucket: -1, Threshold: 4000, Source: routing.NoSource,
		Region: regionID(t, c, "idc"), Other: regionID(t, c, "cloud"), Reason: routing.ReasonNoKey, Write: true}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestForce(t *testing.T) {
	c := loadExample(t)
	tbl := mustCompile(t, c, nil, false)
	cloud, idc := regionID(t, c, "cloud"), regionID(t, c, "idc")
	cases := []struct {
		name, method, path string
		r                  *req
		region             conf.RegionID
		reason             routing.Reason
		src                int8
	}{
		// u-qa-1's bucket (900) is above the write split: only force moves its writes.
		{"pinned read", "GET", "/api/feed", get("192.0.2.1", "X-User-Id", "u-qa-1"), cloud, routing.ReasonForce, 0},
		{"pinned write", "POST", "/api/feed", get("192.0.2.1", "X-User-Id", "u-qa-1"), cloud, routing.ReasonForce, 0},
		{"pinned by device header", "POST", "/api/feed", get("192.0.2.1", "X-Device-Id", "u-qa-2"), cloud, routing.ReasonForce, 2},
		{"pin is exact", "POST", "/api/feed", get("192.0.2.1", "X-User-Id", "U-QA-1"), idc, routing.ReasonSplit, 0},
		{"pin applies to the key used, not to later sources", "POST", "/api/feed",
			get("192.0.2.1", "X-User-Id", "u-1001", "X-Device-Id", "u-qa-1"), idc, routing.ReasonSplit, 0},
		{"pin is per route", "POST", "/other", get("192.0.2.1", "X-User-Id", "u-qa-1"), idc, routing.ReasonSplit, 0},
	}
	for _, tc := range cases {
		tc.r.method = []byte(tc.method)
		d := tbl.Decide(nil, []byte(tc.path), tc.r)
		if d.Region != tc.region || d.Reason != tc.reason || d.Source != tc.src {
			t.Errorf("%s: got region %d reason %v source %d, want %d %v %d", tc.name, d.Region, d.Reason, d.Source, tc.region, tc.reason, tc.src)
		}
		if tc.reason == routing.ReasonForce && d.Bucket != -1 {
			t.Errorf("%s: forced decision hashed the key (bucket %d)", tc.name, d.Bucket)
		}
	}

	// A pin to the from region beats a 100 % split, and works on the ip source.
	p := mustParse(t, `
regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
  cloud: {upstreams: ["127.0.0.1:9002"]}
split: {from: idc, to: cloud, salt: s}
routes:
  - name: all
    percent: 100
    keys: ["ip"]
    force: {idc: ["203.0.113.7", "2001:db8::1"]}
`)
	pt := mustCompile(t, p, nil, false)
	for _, peer := range []string{"203.0.113.7", "::ffff:203.0.113.7", "2001:db8::1"} {
		if d := pt.Decide(nil, []byte("/"), get(peer)); d.Region != regionID(t, p, "idc") || d.Reason != routing.ReasonForce {
			t.Errorf("pinned peer %s: got %+v", peer, d)
		}
	}
	if d := pt.Decide(nil, []byte("/"), get("203.0.113.8")); d.Region != regionID(t, p, "cloud") || d.Reason != routing.ReasonSplit {
		t.Errorf("unpinned peer: got %+v", d)
	}
}

func TestRollback(t *testing.T) {
	c := loadExample(t)
	tbl := mustCompile(t, c, []routing.Split{{Read: 10000, Write: 10000}, {Read: 10000, Write: 10000}}, true)
	if !tbl.Rollback() {
		t.Fatal("Rollback() = false")
	}
	if mustCompile(t, c, nil, false).Rollback() {
		t.Fatal("Rollback() = true on a table compiled without it")
	}
	idc, cloud := regionID(t, c, "idc"), regionID(t, c, "cloud")
	affinity := get("10.1.2.3", "X-Shift-Region", "cloud", "X-User-Id", "u-1001")
	for name, r := range map[string]*req{
		"user":             get("192.0.2.1", "X-User-Id", "u-1001"),
		"pinned tester":    get("192.0.2.1", "X-User-Id", "u-qa-1"),
		"trusted affinity": affinity,
		"no key":           get("192.0.2.1"),
	} {
		for _, path := range []string{"/api/feed", "/"} {
			d := tbl.Decide(nil, []byte(path), r)
			if d.Region != idc || d.Other != cloud || d.Reason != routing.ReasonRollback || d.Bucket != -1 ||
				d.Source != routing.NoSource || d.Threshold != 10000 {
				t.Errorf("%s %s: got %+v", name, path, d)
			}
		}
	}
}

func TestAffinity(t *testing.T) {
	c := loadExample(t) // trusted_callers: 10.1.0.0/16
	tbl := mustCompile(t, c, nil, false)
	cloud, idc := regionID(t, c, "cloud"), regionID(t, c, "idc")
	late := userIn(t, "cutover-2026", 2500, 10000) // split sends it to idc
	cases := []struct {
		name   string
		r      *req
		path   string
		region conf.RegionID
		reason routing.Reason
		intern bool
	}{
		{"trusted caller names cloud", get("10.1.2.3", "X-Shift-Region", "cloud", "X-User-Id", late), "/api/feed", cloud, routing.ReasonAffinity, true},
		{"any case of name and value", get("10.1.2.3", "x-shift-region", "CLOUD", "X-User-Id", late), "/api/feed", cloud, routing.ReasonAffinity, true},
		{"trusted caller names idc", get("10.1.2.3", "X-Shift-Region", "idc"), "/api/feed", idc, routing.ReasonAffinity, true},
		{"affinity without a key", get("10.1.2.3", "X-Shift-Region", "cloud"), "/", cloud, routing.ReasonAffinity, true},
		{"mapped trusted caller", get("::ffff:10.1.2.3", "X-Shift-Region", "cloud"), "/", cloud, routing.ReasonAffinity, true},
		{"unknown region ignored", get("10.1.2.3", "X-Shift-Region", "mars", "X-User-Id", late), "/api/feed", idc, routing.ReasonSplit, true},
		{"empty value ignored", get("10.1.2.3", "X-Shift-Region", "", "X-User-Id", late), "/api/feed", idc, routing.ReasonSplit, true},
		{"spoofed from loopback", get("127.0.0.1", "X-Shift-Region", "cloud", "X-User-Id", late), "/api/feed", idc, routing.ReasonSplit, false},
		{"spoofed from a trusted proxy that is not a caller", get("10.0.0.1", "X-Shift-Region", "cloud", "X-User-Id", late), "/api/feed", idc, routing.ReasonSplit, false},
		{"spoofed from the internet", get("203.0.113.7", "X-Shift-Region", "cloud"), "/", idc, routing.ReasonSplit, false},
	}
	for _, tc := range cases {
		d := tbl.Decide(nil, []byte(tc.path), tc.r)
		if d.Region != tc.region || d.Reason != tc.reason || d.Internal != tc.intern {
			t.Errorf("%s: got region %d reason %v internal %v, want %d %v %v", tc.name, d.Region, d.Reason, d.Internal, tc.region, tc.reason, tc.intern)
		}
		if !tc.intern {
			// The header from an untrusted peer changes nothing at all.
			clean := *tc.r
			clean.headers = nil
			for _, h := range tc.r.headers {
				if !strings.EqualFold(string(h[0]), routing.RegionHeader) {
					clean.headers = append(clean.headers, h)
				}
			}
			if d2 := tbl.Decide(nil, []byte(tc.path), &clean); d2 != d {
				t.Errorf("%s: the header changed the decision: %+v vs %+v", tc.name, d, d2)
			}
		}
		if got := tbl.TrustedCaller(tc.r.peer); got != tc.intern {
			t.Errorf("%s: TrustedCaller(%s) = %v", tc.name, tc.r.peer, got)
		}
	}

	// A region of the config that is not one of the route's is not believed either.
	three := mustParse(t, `
regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
  cloud: {upstreams: ["127.0.0.1:9002"]}
  edge: {upstreams: ["127.0.0.1:9003"]}
internal: {trusted_callers: ["10.1.0.0/16"]}
split: {from: idc, to: cloud, salt: s}
routes:
  - name: all
    percent: 0
`)
	tt := mustCompile(t, three, nil, false)
	if d := tt.Decide(nil, []byte("/"), get("10.1.2.3", "X-Shift-Region", "edge")); d.Region != regionID(t, three, "idc") || d.Reason != routing.ReasonSplit {
		t.Errorf("affinity to a region outside the route: got %+v", d)
	}
}

func TestSelfRegion(t *testing.T) {
	const cfg = `
regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
  cloud: {upstreams: ["127.0.0.1:9002"]}
  edge: {upstreams: ["127.0.0.1:9003"]}
self_region: SELF
internal: {trusted_callers: ["10.1.0.0/16"]}
split: {from: idc, to: cloud, salt: s, keys: ["header:X-User-Id"]}
routes:
  - name: all
    percent: 50
`
	cases := []struct {
		self, peer string
		headers    []string
		region     string
		reason     routing.Reason
	}{
		{"cloud", "10.1.2.3", nil, "cloud", routing.ReasonSelfRegion},
		{"idc", "10.1.2.3", nil, "idc", routing.ReasonSelfRegion},
		{"cloud", "192.0.2.1", nil, "idc", routing.ReasonNoKey},                                             // not internal
		{"edge", "10.1.2.3", nil, "idc", routing.ReasonNoKey},                                               // not one of the route's regions
		{"cloud", "10.1.2.3", []string{"X-User-Id", "", "X-Other", "1"}, "cloud", routing.ReasonSelfRegion}, // empty key is no key
	}
	for _, tc := range cases {
		c := mustParse(t, strings.ReplaceAll(cfg, "SELF", tc.self))
		tbl := mustCompile(t, c, nil, false)
		d := tbl.Decide(nil, []byte("/"), get(tc.peer, tc.headers...))
		if d.Region != regionID(t, c, tc.region) || d.Reason != tc.reason || d.Bucket != -1 {
			t.Errorf("self %s peer %s: got region %d reason %v bucket %d, want %s %v", tc.self, tc.peer, d.Region, d.Reason, d.Bucket, tc.region, tc.reason)
		}
	}
	// An internal call with a key is split like any other.
	c := mustParse(t, strings.ReplaceAll(cfg, "SELF", "cloud"))
	tbl := mustCompile(t, c, nil, false)
	late := userIn(t, "s", 5000, 10000)
	if d := tbl.Decide(nil, []byte("/"), get("10.1.2.3", "X-User-Id", late)); d.Region != regionID(t, c, "idc") || d.Reason != routing.ReasonSplit || !d.Internal {
		t.Errorf("internal call with a key: got %+v", d)
	}
	// Without self_region an internal keyless call goes to from.
	c = mustParse(t, `
regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
  cloud: {upstreams: ["127.0.0.1:9002"]}
internal: {trusted_callers: ["10.1.0.0/16"]}
split: {from: idc, to: cloud, salt: s, keys: ["header:X-User-Id"]}
routes:
  - name: all
    percent: 50
`)
	tbl = mustCompile(t, c, nil, false)
	if d := tbl.Decide(nil, []byte("/"), get("10.1.2.3")); d.Region != regionID(t, c, "idc") || d.Reason != routing.ReasonNoKey || !d.Internal {
		t.Errorf("internal keyless call without self_region: got %+v", d)
	}
}

func TestNoRoute(t *testing.T) {
	c := mustParse(t, `
regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
  cloud: {upstreams: ["127.0.0.1:9002"]}
split: {from: idc, to: cloud, salt: s}
routes:
  - name: feed
    match: {path_prefix: /api/feed}
    percent: 50
`)
	for _, rollback := range []bool{false, true} {
		tbl := mustCompile(t, c, nil, rollback)
		want := routing.Decision{Route: -1, Bucket: -1, Source: routing.NoSource, Region: conf.NoRegion,
			Other: conf.NoRegion, Reason: routing.ReasonNoRoute}
		for _, path := range []string{"/", "/api", "/api/fee", "", "/API/FEED"} {
			d, e := tbl.Explain(nil, []byte(path), get("192.0.2.1", "X-User-Id", "u-1001"))
			if d != want {
				t.Errorf("rollback %v path %q: got %+v, want %+v", rollback, path, d, want)
			}
			if e.Route != "" || e.Region != "" || e.Reason != "no_route" || e.Bucket != -1 || e.Key != "" || e.Rollback != rollback {
				t.Errorf("rollback %v path %q: explanation %+v", rollback, path, e)
			}
		}
	}
}

// TestSameRegion: a route whose from and to are the same region has no other region.
func TestSameRegion(t *testing.T) {
	c := mustParse(t, `
regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
split: {from: idc, to: idc, salt: s}
routes:
  - name: all
    percent: 0
`)
	tbl := mustCompile(t, c, nil, false)
	d := tbl.Decide(nil, []byte("/"), get("192.0.2.1", "X-User-Id", "u-1001"))
	if d.Region != regionID(t, c, "idc") || d.Other != conf.NoRegion {
		t.Errorf("got %+v", d)
	}
}

func TestReasonString(t *testing.T) {
	want := map[routing.Reason]string{
		routing.ReasonNoRoute: "no_route", routing.ReasonRollback: "rollback", routing.ReasonAffinity: "affinity",
		routing.ReasonForce: "force", routing.ReasonSplit: "split", routing.ReasonSelfRegion: "self_region",
		routing.ReasonNoKey: "no_key", routing.Reason(200): "unknown",
	}
	for r, s := range want {
		if r.String() != s {
			t.Errorf("Reason(%d).String() = %q, want %q", r, r.String(), s)
		}
	}
}

// TestDecideConcurrent shares one table among goroutines (run with -race): each gets
// the answers a lone caller gets.
func TestDecideConcurrent(t *testing.T) {
	c := mustParse(t, mixedConfig)
	tbl := mustCompile(t, c, nil, false)
	rng := rand.New(rand.NewPCG(3, 4))
	type call struct {
		host, path []byte
		r          *req
		want       routing.Decision
	}
	calls := make([]call, 500)
	for i := range calls {
		h, p, r := randomRequest(rng)
		calls[i] = call{h, p, r, tbl.Decide(h, p, r)}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				cl := &calls[(i+g*61)%len(calls)]
				if d := tbl.Decide(cl.host, cl.path, cl.r); d != cl.want {
					errs <- fmt.Sprintf("goroutine %d: %+v, want %+v", g, d, cl.want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestKeyMatchesDecision: the key a decision names, read back with Key, is the key
// Explain reports for the same request, for every key source.
func TestKeyMatchesDecision(t *testing.T) {
	c := mustParse(t, `
regions: {a: {upstreams: ["127.0.0.1:1"]}, b: {upstreams: ["127.0.0.1:2"]}}
client_ip: { trusted_proxies: ["10.0.0.0/8"] }
split: {from: a, to: b, salt: s, keys: ["header:X-User-Id", "cookie:uid", "query:u", "ip"]}
routes: [{name: r, match: {path_prefix: /}, percent: 50}]
`)
	tb := mustCompile(t, c, nil, false)
	for _, tc := range []struct {
		name string
		req  *routing.StaticRequest
		want string
	}{
		{"header", &routing.StaticRequest{MethodName: "GET", Headers: [][2]string{{"X-User-Id", "u-7"}}, PeerAddr: netip.MustParseAddr("192.0.2.1")}, "u-7"},
		{"cookie", &routing.StaticRequest{MethodName: "GET", Cookies: map[string]string{"uid": "c-1"}, PeerAddr: netip.MustParseAddr("192.0.2.1")}, "c-1"},
		{"query", &routing.StaticRequest{MethodName: "GET", QueryArgs: map[string]string{"u": "q-1"}, PeerAddr: netip.MustParseAddr("192.0.2.1")}, "q-1"},
		{"ip", &routing.StaticRequest{MethodName: "GET", PeerAddr: netip.MustParseAddr("192.0.2.9")}, "192.0.2.9"},
		{"ip behind a trusted proxy", &routing.StaticRequest{MethodName: "GET", Headers: [][2]string{{"X-Forwarded-For", "203.0.113.7"}}, PeerAddr: netip.MustParseAddr("10.0.0.1")}, "203.0.113.7"},
		{"no key", &routing.StaticRequest{MethodName: "GET"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ex := tb.Explain(nil, []byte("/"), tc.req)
			var buf [64]byte
			if got := string(tb.Key(d, tc.req, &buf)); got != tc.want || got != ex.Key {
				t.Errorf("Key = %q, Explain's key %q, want %q", got, ex.Key, tc.want)
			}
		})
	}
}
