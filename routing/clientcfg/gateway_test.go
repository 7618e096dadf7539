package clientcfg_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
	"github.com/shiftgate/shiftgate/routing/clientcfg"
)

// gatewayYAML has what the client config can express: hosts, prefixes, key chains,
// read and write splits, salts. No force lists (they are not published), no trusted
// proxies or callers (a client does not see them).
const gatewayYAML = `
listen: 127.0.0.1:0
admin: { listen: 127.0.0.1:0 }
regions:
  idc:   { upstreams: ["127.0.0.1:1"] }
  cloud: { upstreams: ["127.0.0.1:2"] }
split:
  from: idc
  to: cloud
  salt: cutover-2026
  keys: ["header:X-User-Id", "cookie:uid", "query:u", "ip"]
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 33.33
    write_percent: 0.01
  - name: api
    match: { path_prefix: /api }
    percent: 50
  - name: host-api
    match: { host: API.example.com, path_prefix: /api/v2 }
    salt: ""
    keys: ["cookie:uid", "ip"]
    percent: 99.99
    write_percent: 12.5
  - name: host-root
    match: { host: api.example.com, path_prefix: / }
    salt: other
    keys: ["ip"]
    percent: 100
  - name: rest
    match: { path_prefix: / }
    from: cloud
    to: idc
    percent: 0.57
`

// fromConf is the mapping the gateway's client-config endpoint makes.
func fromConf(c *conf.Config) *clientcfg.Config {
	out := &clientcfg.Config{Version: "t", Algorithm: clientcfg.Algorithm, Regions: map[string]clientcfg.Region{}}
	for _, r := range c.RegionList {
		out.Regions[r.Name] = clientcfg.Region{PublicURL: "https://" + r.Name + ".example.com"}
	}
	for _, r := range c.Routes {
		keys := make([]string, len(r.KeySources))
		for i, k := range r.KeySources {
			keys[i] = k.String()
		}
		out.Routes = append(out.Routes, clientcfg.Route{
			Name: r.Name, Match: clientcfg.Match{Host: r.Match.Host, PathPrefix: r.Match.PathPrefix},
			From: c.RegionList[r.FromID].Name, To: c.RegionList[r.ToID].Name, Salt: r.SaltValue, Keys: keys,
			Percent: float64(r.PercentBP) / 100, WritePercent: float64(r.WritePercentBP) / 100,
		})
	}
	return out
}

// TestSameDecisionAsGateway makes random requests and asks both the gateway's
// routing.Table and Decide: route, region, bucket, key source and reason must agree.
func TestSameDecisionAsGateway(t *testing.T) {
	c, err := conf.Parse("gateway.yaml", []byte(gatewayYAML))
	if err != nil {
		t.Fatal(err)
	}
	cc := fromConf(c)
	body, _, err := clientcfg.Marshal(cc)
	if err != nil {
		t.Fatal(err)
	}
	if cc, err = clientcfg.Parse(body); err != nil {
		t.Fatal(err)
	}
	for _, rollback := range []bool{false, true} {
		cc.Rollback = rollback
		tbl, err := routing.Compile(c, nil, rollback)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(7, uint64(len(fmt.Sprint(rollback)))))
		for i := range 20000 {
			req := randomRequest(rng)
			sr := &routing.StaticRequest{MethodName: req.Method, Cookies: req.Cookies, QueryArgs: req.Query}
			for k, v := range req.Headers {
				sr.Headers = append(sr.Headers, [2]string{k, v})
			}
			if req.IP != "" {
				sr.PeerAddr, _ = netip.ParseAddr(req.IP)
			}
			_, e := tbl.Explain([]byte(req.Host), []byte(req.Path), sr)
			d := clientcfg.Decide(cc, req)
			if e.Route != d.Route || e.Region != d.Region || e.Bucket != d.Bucket || e.Threshold != d.Threshold ||
				e.KeySource != d.KeySource || e.Reason != string(d.Reason) || (d.Route != "" && e.Write != d.Write) {
				t.Fatalf("request %d %+v:\ngateway %+v\nclient  %+v", i, req, e, d)
			}
		}
	}
}

// randomRequest draws requests that the gateway and a client see alike: one value per
// header name (in any case), IPs the gateway would see as the TCP peer.
func randomRequest(rng *rand.Rand) clientcfg.Request {
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	maybe := func(name string, m map[string]string, vals ...string) {
		if rng.IntN(3) == 0 {
			m[name] = pick(vals...)
		}
	}
	users := []string{"", "42", "u-1001", "u-qa-1", "d-7f3a", "café", "用户", fmt.Sprint(rng.Uint64())}
	r := clientcfg.Request{
		Method:  pick("GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"),
		Host:    pick("", "api.example.com", "API.Example.Com:8443", "www.example.com", "api.example.com.", "[::1]:80"),
		Path:    pick("/", "/api", "/api/feed", "/api/feedback", "/api/v2", "/api/v2/x", "/apix", "/home", "/API/feed"),
		Headers: map[string]string{}, Cookies: map[string]string{}, Query: map[string]string{},
	}
	maybe(pick("X-User-Id", "x-user-id", "X-USER-ID"), r.Headers, users...)
	maybe("uid", r.Cookies, users...)
	maybe("u", r.Query, users...)
	if rng.IntN(4) != 0 {
		var a netip.Addr
		switch rng.IntN(3) {
		case 0:
			a = netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		case 1:
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			a = netip.AddrFrom16(b)
		default:
			a = netip.AddrFrom16(netip.AddrFrom4([4]byte{192, 0, 2, byte(rng.IntN(256))}).As16())
		}
		r.IP = a.String()
	}
	return r
}

// TestBucketMatchesRouting: this package's bucket is routing's, for any salt and key.
func TestBucketMatchesRouting(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50000 {
		salt := randomText(rng, 40)
		key := randomText(rng, 300)
		if a, b := clientcfg.Bucket(salt, key), routing.Bucket(salt, key); a != b {
			t.Fatalf("Bucket(%q, %q) = %d, routing.Bucket = %d", salt, key, a, b)
		}
	}
}

func randomText(rng *rand.Rand, maxLen int) string {
	n := rng.IntN(maxLen + 1)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return string(b)
}
