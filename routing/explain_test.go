package routing_test

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
)

// mixedConfig exercises every reason: hosts, several key chains and salts, pins,
// trusted proxies and callers, and a self region.
const mixedConfig = `
regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
  cloud: {upstreams: ["127.0.0.1:9002"]}
  edge: {upstreams: ["127.0.0.1:9003"]}
self_region: cloud
client_ip: {trusted_proxies: ["10.0.0.0/8", "fd00::/8"]}
internal: {trusted_callers: ["10.1.0.0/16"]}
split:
  from: idc
  to: cloud
  salt: cutover-2026
  keys: ["header:X-User-Id", "cookie:uid", "header:X-Device-Id", "ip"]
routes:
  - name: feed
    match: {path_prefix: /api/feed}
    percent: 25
    write_percent: 5
    force: {cloud: ["u-qa-1", "u-qa-2"], idc: ["u-7"]}
  - name: search
    match: {path_prefix: /api/search}
    salt: search-1
    keys: ["query:u", "header:X-User-Id"]
    percent: 50.5
  - name: edge
    match: {host: edge.example.com, path_prefix: /}
    from: idc
    to: edge
    keys: ["ip"]
    percent: 12.34
    force: {edge: ["203.0.113.7"]}
  - name: default
    match: {path_prefix: /}
    percent: 1
`

// expectKey finds the key of a request by the contract, independently of routing: the
// first present, non-empty source of the chain.
func expectKey(c *conf.Config, keys []conf.KeySource, r *req) (string, int8) {
	for i, k := range keys {
		var v []byte
		switch k.Kind {
		case conf.KeyHeader:
			v = r.Header(k.Name)
		case conf.KeyCookie:
			v = r.Cookie(k.Name)
		case conf.KeyQuery:
			v = r.Query(k.Name)
		case conf.KeyIP:
			var hs []string
			for _, h := range r.xff {
				hs = append(hs, string(h))
			}
			if a := refClientIP(r.peer, hs, c.TrustedProxies); a.IsValid() {
				return a.String(), int8(i)
			}
		}
		if len(v) > 0 {
			return string(v), int8(i)
		}
	}
	return "", routing.NoSource
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func randomRequest(rng *rand.Rand) (host, path []byte, r *req) {
	users := []string{"", "", "", "", "u-qa-1", "u-qa-2", "u-7", "u-1001", "42", "d-7f3a"}
	r = &req{method: []byte(pick(rng, []string{"GET", "GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE"}))}
	if u := pick(rng, users); u != "" || rng.IntN(4) == 0 {
		r.headers = append(r.headers, kv(pick(rng, []string{"X-User-Id", "x-user-id"}), u)...)
	}
	if u := pick(rng, users); u != "" || rng.IntN(4) == 0 {
		r.headers = append(r.headers, kv("X-Device-Id", u)...)
	}
	if rng.IntN(3) == 0 {
		r.headers = append(r.headers, kv("X-Shift-Region", pick(rng, []string{"cloud", "IDC", "edge", "mars", ""}))...)
	}
	if u := pick(rng, users); u != "" {
		r.cookies = kv("uid", u)
	}
	if u := pick(rng, users); u != "" {
		r.query = kv("u", u)
	}
	// Random users too, so the split itself is exercised.
	if rng.IntN(3) == 0 {
		r.headers = append(kv("X-User-Id", "r-"+string(rune('a'+rng.IntN(26)))+string(rune('a'+rng.IntN(26)))), r.headers...)
	}
	r.peer = netip.MustParseAddr(pick(rng, []string{"192.0.2.1", "203.0.113.7", "2001:db8::1", "::ffff:203.0.113.7",
		"10.0.0.1", "10.1.2.3", "10.1.0.9", "fd00::1", "127.0.0.1"}))
	if rng.IntN(2) == 0 {
		r.xff = xff(pick(rng, []string{"203.0.113.7", "198.51.100.1, 10.0.0.5", "garbage, 10.0.0.9", "10.0.0.7", "2001:db8::2", ""}))
	}
	host = []byte(pick(rng, []string{"", "www.example.com", "edge.example.com", "EDGE.example.com:443"}))
	path = []byte(pick(rng, []string{"/", "/api/feed", "/api/feed/x", "/api/search?q=1", "/api/searc", "/other", ""}))
	return host, path, r
}

func TestExplainAgreesWithDecide(t *testing.T) {
	c := mustParse(t, mixedConfig)
	tables := []*routing.Table{
		mustCompile(t, c, nil, false),
		mustCompile(t, c, []routing.Split{{Read: 9000, Write: 100}, {Read: 1, Write: 0}, {Read: 10000, Write: 10000}, {}}, false),
		mustCompile(t, c, nil, true),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	reasons := map[routing.Reason]int{}
	for i := 0; i < 10_000; i++ {
		tbl := tables[i%len(tables)]
		host, path, r := randomRequest(rng)
		d := tbl.Decide(host, path, r)
		d2, e := tbl.Explain(host, path, r)
		reasons[d.Reason]++
		if d != d2 {
			t.Fatalf("request %d: Decide %+v, Explain %+v", i, d, d2)
		}
		if e.Bucket != int(d.Bucket) || e.Threshold != int(d.Threshold) || e.Reason != d.Reason.String() ||
			e.Write != d.Write || e.Internal != d.Internal || e.Rollback != tbl.Rollback() {
			t.Fatalf("request %d: %+v does not spell out %+v", i, e, d)
		}
		if d.Route < 0 {
			if e.Route != "" || e.Region != "" || e.Key != "" || e.KeySource != "" {
				t.Fatalf("request %d: no route but %+v", i, e)
			}
			continue
		}
		route := &c.Routes[d.Route]
		if e.Route != route.Name || e.Region != tbl.RegionName(d.Region) || e.Percent != conf.FormatBP(int(d.Threshold)) {
			t.Fatalf("request %d: %+v does not name %+v", i, e, d)
		}
		if d.Region != route.FromID && d.Region != route.ToID {
			t.Fatalf("request %d: region %d is neither from nor to of %s", i, d.Region, route.Name)
		}
		switch d.Reason {
		case routing.ReasonSplit, routing.ReasonForce:
			key, src := expectKey(c, route.KeySources, r)
			if e.Key != key || d.Source != src || e.KeySource != route.KeySources[src].String() {
				t.Fatalf("request %d %s: key %q from %q (%d), want %q from %d", i, route.Name, e.Key, e.KeySource, d.Source, key, src)
			}
			if d.Reason == routing.ReasonForce {
				if id, ok := route.ForceIDs[key]; !ok || id != d.Region || d.Bucket != -1 {
					t.Fatalf("request %d: forced %+v for key %q", i, d, key)
				}
				break
			}
			if _, pinned := route.ForceIDs[key]; pinned {
				t.Fatalf("request %d: pinned key %q was split", i, key)
			}
			if want := reference(route.SaltValue, key); d.Bucket != int32(want) {
				t.Fatalf("request %d: bucket %d, want %d", i, d.Bucket, want)
			}
			if want := d.Bucket < d.Threshold; (d.Region == route.ToID) != want {
				t.Fatalf("request %d: bucket %d threshold %d went to %d", i, d.Bucket, d.Threshold, d.Region)
			}
		default:
			if e.Key != "" || e.KeySource != "" || d.Source != routing.NoSource || d.Bucket != -1 {
				t.Fatalf("request %d: reason %v with key %q source %q bucket %d", i, d.Reason, e.Key, e.KeySource, d.Bucket)
			}
		}
	}
	// The random requests reach every reason, or the test proves less than it claims.
	for r := routing.ReasonNoRoute; r <= routing.ReasonNoKey; r++ {
		if reasons[r] == 0 {
			t.Errorf("no request had reason %v", r)
		}
	}
	t.Logf("reasons: %v", reasons)
}

func TestExplainFields(t *testing.T) {
	c := loadExample(t)
	tbl := mustCompile(t, c, nil, false)
	cases := []struct {
		name string
		r    *req
		want routing.Explanation
	}{
		{"split read", get("192.0.2.1", "X-User-Id", "u-1001"), routing.Explanation{Route: "feed", KeySource: "header:X-User-Id",
			Key: "u-1001", Bucket: 7356, Threshold: 2500, Percent: "25", Region: "idc", Reason: "split"}},
		{"split write", &req{method: []byte("POST"), cookies: kv("uid", "42"), peer: netip.MustParseAddr("192.0.2.1")},
			routing.Explanation{Route: "feed", KeySource: "cookie:uid", Key: "42", Bucket: 2799, Threshold: 500, Percent: "5",
				Region: "idc", Reason: "split", Write: true}},
		{"ip", get("203.0.113.7"), routing.Explanation{Route: "feed", KeySource: "ip", Key: "203.0.113.7", Bucket: 3466,
			Threshold: 2500, Percent: "25", Region: "idc", Reason: "split"}},
		{"force", get("192.0.2.1", "X-User-Id", "u-qa-1"), routing.Explanation{Route: "feed", KeySource: "header:X-User-Id",
			Key: "u-qa-1", Bucket: -1, Threshold: 2500, Percent: "25", Region: "cloud", Reason: "force"}},
		{"affinity", get("10.1.0.9", "X-Shift-Region", "cloud"), routing.Explanation{Route: "feed", Bucket: -1,
			Threshold: 2500, Percent: "25", Region: "cloud", Reason: "affinity", Internal: true}},
	}
	for _, tc := range cases {
		_, e := tbl.Explain(nil, []byte("/api/feed"), tc.r)
		if e != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, e, tc.want)
		}
	}
	// A 0.01 % split prints as such.
	fine := mustCompile(t, c, []routing.Split{{Read: 1, Write: 1}, {}}, true)
	if _, e := fine.Explain(nil, []byte("/api/feed"), get("192.0.2.1")); e.Percent != "0.01" || !e.Rollback || e.Reason != "rollback" {
		t.Errorf("rollback at 0.01 %%: %+v", e)
	}
}

// TestExplainJSON checks the field names `shiftgate route -json` and /v1/decide
// promise (CONTRACT.md).
func TestExplainJSON(t *testing.T) {
	tbl := mustCompile(t, loadExample(t), nil, false)
	_, e := tbl.Explain(nil, []byte("/api/feed"), get("192.0.2.1", "X-User-Id", "u-1001"))
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"route": "feed", "key_source": "header:X-User-Id", "key": "u-1001", "bucket": 7356.0,
		"threshold": 2500.0, "region": "idc", "reason": "split"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v (in %s)", k, m[k], v, b)
		}
	}
}
