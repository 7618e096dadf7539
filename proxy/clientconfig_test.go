package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/routing/clientcfg"
)

// clientRegions is twoRegions with what the client config publishes and what it must
// not: public URLs, a ttl, forced keys, an admin token, trusted networks, a fleet's
// etcd endpoint and user.
const clientRegions = `listen: 127.0.0.1:0
state_dir: {{STATE}}
admin: { listen: 127.0.0.1:0, token_file: {{TOKEN}} }
regions:
  idc:   { upstreams: ["{{IDC}}"], public_url: "https://idc.example.com" }
  cloud: { upstreams: ["{{CLOUD}}"], public_url: "https://cloud.example.com/edge/" }
client_ip: { trusted_proxies: ["10.77.0.0/16"] }
internal: { trusted_callers: ["10.88.0.0/16"] }
client_config: { ttl: 30s }
split: { from: idc, to: cloud, salt: cutover-2026, keys: ["header:X-User-Id", "cookie:uid", "ip"] }
timeouts: { connect: 500ms, response_header: 2s, body: 5s }
routes:
  - name: feed
    match: { host: API.example.com, path_prefix: /api/feed }
    percent: 25
    write_percent: 5
    force: { cloud: ["u-secret-tester"], idc: ["u-pinned-elsewhere"] }
  - name: default
    match: { path_prefix: / }
    percent: 0
`

const clientToken = "s3cret-admin-token-0123456789"

func startClientGateway(t *testing.T) (*gateway, *standin.Server, *standin.Server) {
	t.Helper()
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte(clientToken), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := startGatewayIn(t, dir, clientRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr, "TOKEN": token}, nil)
	return gw, idc, cloud
}

// configAnswer is one answer of the client-config endpoint.
type configAnswer struct {
	status int
	header map[string]string
	body   string
}

func fetchConfig(t testing.TB, addr, method string, hdr ...string) configAnswer {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://" + addr + ClientConfigPath)
	req.Header.SetHost("api.example.com")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	c := &fasthttp.Client{}
	if method == "HEAD" {
		resp.SkipBody = true
	}
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, ClientConfigPath, err)
	}
	a := configAnswer{status: resp.StatusCode(), header: map[string]string{}, body: string(resp.Body())}
	for _, k := range resp.Header.PeekKeys() {
		a.header[string(k)] = string(resp.Header.PeekBytes(k))
	}
	return a
}

// TestClientConfigEndpoint: the document is what the config says, served with an
// ETag, cacheable for the ttl by anyone, 304 to a matching If-None-Match, never sent
// to an upstream, and free of anything that is not the split's.
func TestClientConfigEndpoint(t *testing.T) {
	gw, idc, cloud := startClientGateway(t)
	a := fetchConfig(t, gw.addr, "GET")
	if a.status != 200 || a.header["Content-Type"] != "application/json" {
		t.Fatalf("GET: %d %v\n%s", a.status, a.header, a.body)
	}
	if got := a.header["Cache-Control"]; got != "public, max-age=30" {
		t.Errorf("Cache-Control %q, want public for the ttl", got)
	}
	if a.header["Access-Control-Allow-Origin"] != "*" || !strings.Contains(a.header["Access-Control-Expose-Headers"], "ETag") {
		t.Errorf("CORS headers %v: any origin must read the config and its ETag", a.header)
	}
	if a.header[standin.RegionHeader] != "" || a.header["X-Shift-Region"] != "" {
		t.Errorf("the config request reached an upstream: %v", a.header)
	}
	etag := a.header["Etag"]
	if etag != clientcfg.ETag([]byte(a.body)) {
		t.Fatalf("ETag %q is not the body's %q", etag, clientcfg.ETag([]byte(a.body)))
	}
	cfg, err := clientcfg.Parse([]byte(a.body))
	if err != nil {
		t.Fatalf("the SDK refuses the document: %v\n%s", err, a.body)
	}
	if a.header["X-Shift-Config-Version"] != cfg.Version || len(cfg.Version) != 16 {
		t.Errorf("X-Shift-Config-Version %q, document version %q", a.header["X-Shift-Config-Version"], cfg.Version)
	}
	want := clientcfg.Config{
		Version: cfg.Version, Algorithm: clientcfg.Algorithm, TTL: 30,
		Regions: map[string]clientcfg.Region{"idc": {PublicURL: "https://idc.example.com"}, "cloud": {PublicURL: "https://cloud.example.com/edge"}},
		Routes: []clientcfg.Route{
			{Name: "feed", Match: clientcfg.Match{Host: "api.example.com", PathPrefix: "/api/feed"}, From: "idc", To: "cloud",
				Salt: "cutover-2026", Keys: []string{"header:X-User-Id", "cookie:uid", "ip"}, Percent: 25, WritePercent: 5},
			{Name: "default", Match: clientcfg.Match{PathPrefix: "/"}, From: "idc", To: "cloud",
				Salt: "cutover-2026", Keys: []string{"header:X-User-Id", "cookie:uid", "ip"}},
		},
	}
	wantBody, _, _ := clientcfg.Marshal(&want)
	if a.body != string(wantBody) {
		t.Errorf("document\n%s\nwant\n%s", a.body, wantBody)
	}
	for _, secret := range []string{idc.Addr, cloud.Addr, "u-secret-tester", "u-pinned-elsewhere", clientToken,
		"10.77.0.0", "10.88.0.0", "upstream", "force", "token", "127.0.0.1"} {
		if strings.Contains(a.body, secret) {
			t.Errorf("the client config publishes %q:\n%s", secret, a.body)
		}
	}

	for _, c := range []struct {
		name, method, inm string
		status            int
		body              bool
	}{
		{"matching ETag", "GET", etag, 304, false},
		{"weak form", "GET", "W/" + etag, 304, false},
		{"in a list", "GET", `"0000000000000000", ` + etag, 304, false},
		{"star", "GET", "*", 304, false},
		{"other ETag", "GET", `"0000000000000000"`, 200, true},
		{"HEAD", "HEAD", "", 200, false},
		{"HEAD, matching", "HEAD", etag, 304, false},
	} {
		var hdr []string
		if c.inm != "" {
			hdr = []string{"If-None-Match", c.inm}
		}
		got := fetchConfig(t, gw.addr, c.method, hdr...)
		if got.status != c.status || (got.body != "") != c.body || got.header["Etag"] != etag ||
			got.header["Cache-Control"] != "public, max-age=30" || got.header["X-Shift-Config-Version"] != cfg.Version {
			t.Errorf("%s: %d %v body %q; want %d with the ETag, Cache-Control and version", c.name, got.status, got.header, got.body, c.status)
		}
	}
	if got := fetchConfig(t, gw.addr, "OPTIONS", "Origin", "https://app.example", "Access-Control-Request-Headers", "if-none-match"); got.status != 204 ||
		got.header["Access-Control-Allow-Origin"] != "*" || !strings.Contains(got.header["Access-Control-Allow-Headers"], "If-None-Match") {
		t.Errorf("CORS preflight: %d %v", got.status, got.header)
	}
	if got := fetchConfig(t, gw.addr, "POST"); got.status != 405 || got.header["Allow"] != "GET, HEAD, OPTIONS" {
		t.Errorf("POST: %d %v", got.status, got.header)
	}
	var m strings.Builder
	gw.srv.WriteMetrics(&m)
	for _, line := range []string{`shiftgate_client_config_requests_total{status="200"} 3`, `shiftgate_client_config_requests_total{status="304"} 5`} {
		if !strings.Contains(m.String(), line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	// Like every answer, it carries the request's id: the client's when valid.
	if a.header["X-Request-Id"] == "" {
		t.Errorf("the config answer has no X-Request-Id: %v", a.header)
	}
	if got := fetchConfig(t, gw.addr, "GET", "X-Request-Id", "cc-test-1"); got.header["X-Request-Id"] != "cc-test-1" {
		t.Errorf("X-Request-Id %q, want the client's cc-test-1", got.header["X-Request-Id"])
	}
}

// TestClientConfigFollowsLevers: a split, rollback and cut-off each change the
// document, its version and its ETag at once; undoing them gives back the same
// version, since the version is derived from the content.
func TestClientConfigFollowsLevers(t *testing.T) {
	gw, _, _ := startClientGateway(t)
	ctx := context.Background()
	get := func() (*clientcfg.Config, string) {
		t.Helper()
		a := fetchConfig(t, gw.addr, "GET")
		cfg, err := clientcfg.Parse([]byte(a.body))
		if err != nil || a.status != 200 {
			t.Fatalf("%d %v", a.status, err)
		}
		if st := gw.srv.Status(); st.ClientConfigVersion != cfg.Version {
			t.Fatalf("status says client config %s, endpoint %s", st.ClientConfigVersion, cfg.Version)
		}
		return cfg, a.header["Etag"]
	}
	seen := map[string]string{}
	step := func(name string, check func(*clientcfg.Config) bool) string {
		t.Helper()
		cfg, etag := get()
		if !check(cfg) {
			t.Fatalf("%s: document %+v", name, cfg)
		}
		if prev, dup := seen[cfg.Version]; dup {
			t.Fatalf("%s: version %s already served for %s", name, cfg.Version, prev)
		}
		seen[cfg.Version] = name
		if a := fetchConfig(t, gw.addr, "GET", "If-None-Match", etag); a.status != 304 {
			t.Fatalf("%s: own ETag answered %d", name, a.status)
		}
		return cfg.Version
	}
	start, startETag := get()
	seen[start.Version] = "start"

	must(gw.srv.ChangeSplits(ctx, "test", BulkSplitRequest{Routes: map[string]SplitRequest{"feed": {Percent: "50", WritePercent: ptr(json.Number("12.5"))}}}))
	if a := fetchConfig(t, gw.addr, "GET", "If-None-Match", startETag); a.status != 200 {
		t.Fatalf("after a split the old ETag answered %d", a.status)
	}
	split := step("split", func(c *clientcfg.Config) bool {
		return c.Routes[0].Percent == 50 && c.Routes[0].WritePercent == 12.5 && c.Routes[1].Percent == 0
	})
	must(gw.srv.SetRollback(ctx, "test", RollbackRequest{On: true}))
	step("rollback", func(c *clientcfg.Config) bool { return c.Rollback && c.Routes[0].Percent == 50 })
	must(gw.srv.SetRollback(ctx, "test", RollbackRequest{On: false}))
	if cfg, _ := get(); cfg.Version != split {
		t.Fatalf("rollback off: version %s, want the split's %s again", cfg.Version, split)
	}
	must(gw.srv.SetCutoff(ctx, "test", CutoffRequest{On: true, Routes: []string{"feed"}}))
	step("route cut-off", func(c *clientcfg.Config) bool { return !c.Cutoff && c.Routes[0].Cutoff && !c.Routes[1].Cutoff })
	must(gw.srv.SetCutoff(ctx, "test", CutoffRequest{On: true}))
	step("site cut-off", func(c *clientcfg.Config) bool { return c.Cutoff && c.Routes[0].Cutoff && c.Routes[1].Cutoff })
	// One route cannot be let out of a site-wide cut-off: refused, not "done".
	if _, err := gw.srv.SetCutoff(ctx, "test", CutoffRequest{On: false, Routes: []string{"feed"}}); StatusOf(err) != 409 ||
		!strings.Contains(err.Error(), "site-wide cut-off is on") {
		t.Fatalf("cut-off off for one route under a site-wide one: %v (status %d), want 409", err, StatusOf(err))
	}
	res := must(gw.srv.SetCutoff(ctx, "test", CutoffRequest{On: false}))
	if res.On || len(res.Routes) != 0 || res.ClientConfigVersion != split {
		t.Fatalf("cut-off off: %+v, want nothing cut off and the split's version %s", res, split)
	}
	if _, err := gw.srv.SetCutoff(ctx, "test", CutoffRequest{On: true, Routes: []string{"nope"}}); StatusOf(err) != 404 {
		t.Fatalf("cut-off of an unknown route: %v (status %d), want 404", err, StatusOf(err))
	}
	if st := gw.srv.Status(); st.Cutoff.On || len(st.Cutoff.Routes) != 0 {
		t.Fatalf("status cut-off %+v after off", st.Cutoff)
	}
}

func ptr[T any](v T) *T { return &v }

// TestClientConfigRamp: during a rollback ramp the document carries the splits in
// force, climbing with the ramp, not the override's target.
func TestClientConfigRamp(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	dir := t.TempDir()
	text := strings.NewReplacer("{{STATE}}", filepath.Join(dir, "state"), "{{IDC}}", idc.Addr, "{{CLOUD}}", cloud.Addr).Replace(twoRegions)
	cfg, err := conf.Parse(filepath.Join(dir, "c.yaml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv, err := New(cfg, Options{Logger: quietLog(), Now: clock, NoFallbackStore: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(time.Second)
	ctx := context.Background()
	must(srv.SetRollback(ctx, "test", RollbackRequest{On: true}))
	if doc := srv.state.Load().client.cfg; !doc.Rollback || doc.Routes[0].Percent != 25 {
		t.Fatalf("rollback on: %+v", doc)
	}
	must(srv.SetRollback(ctx, "test", RollbackRequest{On: false, Ramp: "10m"}))
	if doc := srv.state.Load().client.cfg; doc.Rollback || doc.Routes[0].Percent != 0 || doc.Routes[0].WritePercent != 0 {
		t.Fatalf("ramp start: %+v", doc.Routes[0])
	}
	mu.Lock()
	now = now.Add(5 * time.Minute)
	mu.Unlock()
	must(0, srv.ApplyOverrides(srv.Overrides())) // what the ramp loop does at each step
	if r := srv.state.Load().client.cfg.Routes[0]; r.Percent != 12.5 || r.WritePercent != 2.5 {
		t.Fatalf("half way through the ramp: %g/%g, want 12.5/2.5", r.Percent, r.WritePercent)
	}
}

// TestClientConfigVersionCoversEverything: any change of what the document holds
// (here the ttl and a public URL, which no lever changes) gives another version.
func TestClientConfigVersionCoversEverything(t *testing.T) {
	parse := func(text string) *conf.Config {
		c, err := conf.Parse("c.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	text := strings.NewReplacer("{{STATE}}", t.TempDir(), "{{IDC}}", "127.0.0.1:1", "{{CLOUD}}", "127.0.0.1:2").Replace(twoRegions)
	variants := []string{
		text,
		text + "client_config: { ttl: 61s }\n",
		strings.Replace(text, `cloud: { upstreams: ["127.0.0.1:2"] }`, `cloud: { upstreams: ["127.0.0.1:2"], public_url: "https://c.example" }`, 1),
		strings.Replace(text, "percent: 25", "percent: 25.01", 1),
		strings.Replace(text, "salt: cutover-2026", "salt: cutover-2027", 1),
		strings.Replace(text, "path_prefix: /api/feed", "path_prefix: /api/feeds", 1),
	}
	seen := map[string]int{}
	for i, v := range variants {
		c := parse(v)
		splits, rollback, _ := conf.Overrides{}.Effective(c, time.Now())
		doc, err := buildClientDoc(c, splits, rollback, conf.Cutoff{})
		if err != nil {
			t.Fatal(err)
		}
		if j, dup := seen[string(doc.version)]; dup {
			t.Errorf("variants %d and %d share version %s", j, i, doc.version)
		}
		seen[string(doc.version)] = i
		// The same inputs give the same version: instances of a fleet agree.
		again, _ := buildClientDoc(parse(v), splits, rollback, conf.Cutoff{})
		if string(again.version) != string(doc.version) || again.etag != doc.etag {
			t.Errorf("variant %d: two builds give %s and %s", i, doc.version, again.version)
		}
	}
	// Only what the document holds counts: an upstream address is not in it.
	c1, c2 := parse(text), parse(strings.Replace(text, "127.0.0.1:1", "127.0.0.1:9", 1))
	s1, _, _ := conf.Overrides{}.Effective(c1, time.Now())
	d1, _ := buildClientDoc(c1, s1, false, conf.Cutoff{})
	d2, _ := buildClientDoc(c2, s1, false, conf.Cutoff{})
	if string(d1.version) != string(d2.version) {
		t.Errorf("an upstream change moved the version: %s -> %s", d1.version, d2.version)
	}
}

// TestClientHeaderCounting: the gateway decides whatever the app says, answers its
// config version to apps that send X-Shift-Client (and only to them), and counts
// agreement, disagreement and stale versions per route.
func TestClientHeaderCounting(t *testing.T) {
	gw, _, _ := startClientGateway(t)
	version := gw.srv.Status().ClientConfigVersion
	c := &fasthttp.HostClient{Addr: gw.addr}
	// Buckets with salt cutover-2026: u-qa-1 900 (cloud at 25 %), u-1001 7356 (idc).
	cases := []struct {
		name, user, client, region string
		want                       int // index of the counter that moves, -1 none
	}{
		{"no header", "u-qa-1", "", "cloud", -1},
		{"agree", "u-qa-1", "cloud;v=" + version, "cloud", clientAgree},
		{"agree, spaced and quoted", "u-1001", ` idc ; x=1; v="` + version + `"`, "idc", clientAgree},
		{"disagree", "u-1001", "cloud;v=" + version, "idc", clientDisagree},
		{"unknown region", "u-1001", "mars;v=" + version, "idc", clientDisagree},
		{"stale", "u-qa-1", "cloud;v=0123456789abcdef", "cloud", clientStale},
		{"no version", "u-qa-1", "cloud", "cloud", clientStale},
		{"garbage", "u-qa-1", ";;;v", "cloud", clientStale},
	}
	var counts [clientOutcomes]uint64
	for _, tc := range cases {
		hdr := []string{"X-User-Id", tc.user}
		if tc.client != "" {
			hdr = append(hdr, "X-Shift-Client", tc.client)
		}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://api.example.com/api/feed/x")
		for i := 0; i < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		region, served := string(resp.Header.Peek("X-Shift-Region")), string(resp.Header.Peek(standin.RegionHeader))
		gotVersion := string(resp.Header.Peek(ConfigVersionHeader))
		if region != tc.region || served != tc.region {
			t.Errorf("%s: sent to %q (served by %q), want the gateway's own decision %q", tc.name, region, served, tc.region)
		}
		if (tc.client != "") != (gotVersion == version) || (tc.client == "" && gotVersion != "") {
			t.Errorf("%s: X-Shift-Config-Version %q", tc.name, gotVersion)
		}
		if tc.want >= 0 {
			counts[tc.want]++
		}
		rs := gw.srv.Status().Routes[0]
		if got := [clientOutcomes]uint64{rs.Clients.Agree, rs.Clients.Disagree, rs.Clients.Stale}; got != counts {
			t.Errorf("%s: counts %v, want %v", tc.name, got, counts)
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	// Any spelling of the header's name counts, as header names are case-insensitive.
	conn, err := net.Dial("tcp", gw.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /api/feed HTTP/1.1\r\nHost: api.example.com\r\nX-User-Id: u-qa-1\r\nx-SHIFT-client: cloud;v=%s\r\n\r\n", version)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	counts[clientAgree]++
	if resp.Header.Get(ConfigVersionHeader) != version || gw.srv.Status().Routes[0].Clients.Agree != counts[clientAgree] {
		t.Errorf("a lower-case X-Shift-Client: version %q, agree %d", resp.Header.Get(ConfigVersionHeader), gw.srv.Status().Routes[0].Clients.Agree)
	}
	var m strings.Builder
	gw.srv.WriteMetrics(&m)
	for i, name := range clientOutcomeNames {
		line := fmt.Sprintf("shiftgate_client_decisions_total{route=\"feed\",outcome=%q} %d\n", name, counts[i])
		if !strings.Contains(m.String(), line) {
			t.Errorf("metrics lack %q", line)
		}
	}
	// A route no app calls still shows its series, at 0.
	if !strings.Contains(m.String(), `shiftgate_client_decisions_total{route="default",outcome="stale"} 0`) {
		t.Error("the default route's client series are missing")
	}
	if strings.Contains(m.String(), "shiftgate_cross_region_requests_total") {
		t.Error("cross-region series without self_region")
	}
}

// TestCrossRegionCounting: with self_region set, requests decided for another region
// are counted as crossing from it, per route and target; the others are not.
func TestCrossRegionCounting(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	gw := startGateway(t, "self_region: idc\n"+twoRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	c := &fasthttp.HostClient{Addr: gw.addr}
	sent := map[string]int{}
	for i := 0; i < 400; i++ {
		user := fmt.Sprintf("u-%d", i)
		region, _, status, _ := doGet(t, c, "GET", "/api/feed", "X-User-Id", user)
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		sent[region]++
	}
	if sent["cloud"] == 0 || sent["idc"] == 0 {
		t.Fatalf("want both regions in the sample: %v", sent)
	}
	var m strings.Builder
	gw.srv.WriteMetrics(&m)
	want := fmt.Sprintf("shiftgate_cross_region_requests_total{route=\"feed\",from=\"idc\",to=\"cloud\"} %d\n", sent["cloud"])
	if !strings.Contains(m.String(), want) {
		t.Errorf("metrics lack %q", want)
	}
	if strings.Contains(m.String(), `to="idc"`) {
		t.Error("requests that stay in self_region are counted as crossing")
	}
	if got := gw.srv.Status().Routes[0].Clients.CrossRegion; got != uint64(sent["cloud"]) {
		t.Errorf("status cross_region %d, want %d", got, sent["cloud"])
	}
}

func TestParseClientHeader(t *testing.T) {
	for _, c := range []struct{ in, region, version string }{
		{"cloud;v=abc", "cloud", "abc"},
		{" cloud ; v=abc ", "cloud", "abc"},
		{`cloud;v="abc"`, "cloud", "abc"},
		{"cloud;x=1;V=abc;v=def", "cloud", "abc"},
		{"cloud", "cloud", ""},
		{"cloud;v=", "cloud", ""},
		{";v=abc", "", "abc"},
		{"", "", ""},
		{"cloud;version=abc", "cloud", ""},
	} {
		r, v := parseClientHeader([]byte(c.in))
		if string(r) != c.region || string(v) != c.version {
			t.Errorf("parseClientHeader(%q) = %q, %q; want %q, %q", c.in, r, v, c.region, c.version)
		}
	}
}

func FuzzParseClientHeader(f *testing.F) {
	for _, s := range []string{"cloud;v=abc", ` idc ; v="x"`, ";;", "v=", "\x00;v=\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		region, version := parseClientHeader([]byte(s))
		if !strings.Contains(s, string(region)) || !strings.Contains(s, string(version)) {
			t.Fatalf("parts %q %q are not from %q", region, version, s)
		}
		if o := clientOutcome([]byte(s), []byte("cloud"), []byte("v1")); o < 0 || o >= clientOutcomes {
			t.Fatalf("outcome %d", o)
		}
	})
}

// TestHandlerAllocsClientSwitch: an app's X-Shift-Client, the version answered and
// the cross-region count add no allocation to the request path, and neither does the
// client config's own 304.
func TestHandlerAllocsClientSwitch(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates; run without -race")
	}
	m := newInMemoryWith(t, "self_region: idc\n")
	version := string(m.srv.state.Load().client.version)
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	for _, user := range []string{"u-1001", "u-qa-1"} { // idc, and cloud (a crossing)
		run := func() {
			ctx.Request.Reset()
			ctx.Request.SetRequestURI("/api/feed?page=1")
			ctx.Request.Header.SetHost("gw")
			ctx.Request.Header.Set("X-User-Id", user)
			ctx.Request.Header.Set(ClientHeader, "cloud;v="+version)
			ctx.Response.Reset()
			m.srv.handle(&ctx)
			ctx.Response.Body()
			if ctx.Response.StatusCode() != 200 || string(ctx.Response.Header.Peek(ConfigVersionHeader)) != version {
				t.Fatalf("status %d, version %q", ctx.Response.StatusCode(), ctx.Response.Header.Peek(ConfigVersionHeader))
			}
		}
		for i := 0; i < 100; i++ {
			run()
		}
		if n := testing.AllocsPerRun(200, run); n != 0 {
			t.Errorf("%s: %.1f allocations per request with X-Shift-Client, want 0", user, n)
		}
	}
}

// BenchmarkHandlerClientHeader is BenchmarkHandler for a request that carries
// X-Shift-Client, on a gateway with self_region set.
func BenchmarkHandlerClientHeader(b *testing.B) {
	m := newInMemoryWith(b, "self_region: idc\n")
	value := "cloud;v=" + string(m.srv.state.Load().client.version)
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ctx.Request.Reset()
		ctx.Request.SetRequestURI("/api/feed?page=1")
		ctx.Request.Header.SetHost("gw")
		ctx.Request.Header.Set("X-User-Id", "u-1001")
		ctx.Request.Header.Set(ClientHeader, value)
		ctx.Response.Reset()
		m.srv.handle(&ctx)
		ctx.Response.Body()
	}
}

func BenchmarkClientOutcome(b *testing.B) {
	value, region, version := []byte(" cloud ; v=0123456789abcdef"), []byte("cloud"), []byte("0123456789abcdef")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if clientOutcome(value, region, version) != clientAgree {
			b.Fatal("outcome")
		}
	}
}

// BenchmarkClientConfig serves the document (200) on the handler path.
func BenchmarkClientConfig(b *testing.B) {
	m := newInMemory(b)
	var ctx fasthttp.RequestCtx
	ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ctx.Request.Reset()
		ctx.Request.SetRequestURI(ClientConfigPath)
		ctx.Request.Header.SetHost("gw")
		ctx.Response.Reset()
		m.srv.handle(&ctx)
	}
}

// TestCutoffSurvivesRestart: a cut-off is stored with the other overrides (here the
// state_dir file) and published again by a gateway started on the same store.
func TestCutoffSurvivesRestart(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	dir := t.TempDir()
	fs, err := store.NewFile(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	gw := startGatewayIn(t, dir, twoRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr}, fs)
	res := must(gw.srv.SetCutoff(context.Background(), "ops", CutoffRequest{On: true, Routes: []string{"feed"}}))
	if res.Revision == 0 || res.ClientConfigVersion != string(gw.srv.state.Load().client.version) {
		t.Fatalf("result %+v", res)
	}
	again, err := New(gw.srv.Config(), Options{Logger: quietLog(), Store: fs, NoFallbackStore: true})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Shutdown(time.Second)
	doc := again.state.Load().client
	if !doc.cfg.Routes[0].Cutoff || doc.cfg.Routes[1].Cutoff || string(doc.version) != res.ClientConfigVersion {
		t.Fatalf("after a restart: %+v, version %s, want feed cut off under %s", doc.cfg.Routes, doc.version, res.ClientConfigVersion)
	}
	if st := again.Status(); !slices.Equal(st.Cutoff.Routes, []string{"feed"}) || st.Cutoff.Who != "ops" || !st.Routes[0].Cutoff {
		t.Fatalf("status after a restart: %+v", st.Cutoff)
	}
}
