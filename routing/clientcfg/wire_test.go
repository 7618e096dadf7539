package clientcfg_test

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
	"github.com/shiftgate/shiftgate/routing/clientcfg"
)

// wireRequest is a request as the gateway reads it: parsed by fasthttp from the
// bytes on the wire, looked up as the proxy's reqView does. StaticRequest takes
// values as they are given; the gateway's parser trims a header's optional
// whitespace (SP, HTAB) and a cookie's, and this view sees what it sees.
type wireRequest struct {
	r    *fasthttp.Request
	peer netip.Addr
}

func (w wireRequest) Method() []byte            { return w.r.Header.Method() }
func (w wireRequest) Header(name string) []byte { return w.r.Header.Peek(name) }
func (w wireRequest) Cookie(name string) []byte { return w.r.Header.Cookie(name) }
func (w wireRequest) Query(name string) []byte  { return w.r.URI().QueryArgs().Peek(name) }
func (w wireRequest) Peer() netip.Addr          { return w.peer }
func (w wireRequest) ForwardedFor() [][]byte    { return nil }

// onTheWire writes req as an HTTP client sends it (header and cookie values as
// given, the method upper-cased as fetch and HttpURLConnection send it) and parses
// it as the gateway does.
func onTheWire(t *testing.T, req clientcfg.Request) wireRequest {
	t.Helper()
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = "GET"
	}
	target := req.Path
	if target == "" {
		target = "/"
	}
	var q []string
	for k, v := range req.Query {
		q = append(q, url.QueryEscape(k)+"="+url.QueryEscape(v))
	}
	if len(q) > 0 {
		sort.Strings(q)
		target += "?" + strings.Join(q, "&")
	}
	host := req.Host
	if host == "" {
		host = "gateway.test"
	}
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n")
	for k, v := range req.Headers {
		b.WriteString(k + ": " + v + "\r\n")
	}
	var cookies []string
	for k, v := range req.Cookies {
		cookies = append(cookies, k+"="+v)
	}
	if len(cookies) > 0 {
		sort.Strings(cookies)
		b.WriteString("Cookie: " + strings.Join(cookies, "; ") + "\r\n")
	}
	b.WriteString("\r\n")
	r := new(fasthttp.Request)
	if err := r.Read(bufio.NewReader(strings.NewReader(b.String()))); err != nil {
		t.Fatalf("%q: %v", b.String(), err)
	}
	// An ip the client does not know, or that is not an address, is no peer to hash.
	peer, _ := netip.ParseAddr(req.IP)
	return wireRequest{r: r, peer: peer.Unmap()}
}

// gatewayOf is the gateway config a client config was published from: the same
// routes, regions, salts, key chains and splits.
func gatewayOf(t testing.TB, c *clientcfg.Config) *conf.Config {
	t.Helper()
	regions := map[string]any{}
	addRegion := func(name string) {
		if _, ok := regions[name]; !ok {
			regions[name] = map[string]any{"upstreams": []string{"127.0.0.1:" + string(rune('1'+len(regions)))}}
		}
	}
	for name := range c.Regions {
		addRegion(name)
	}
	var routes []any
	for _, r := range c.Routes {
		addRegion(r.From)
		addRegion(r.To)
		m := map[string]any{"path_prefix": r.Match.PathPrefix}
		if r.Match.Host != "" {
			m["host"] = r.Match.Host
		}
		routes = append(routes, map[string]any{"name": r.Name, "match": m, "from": r.From, "to": r.To,
			"salt": r.Salt, "keys": r.Keys, "percent": r.Percent, "write_percent": r.WritePercent})
	}
	// YAML takes JSON as it is.
	doc, err := json.Marshal(map[string]any{"listen": "127.0.0.1:0", "admin": map[string]any{"listen": "127.0.0.1:0"},
		"regions": regions, "routes": routes})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := conf.Parse("gateway.yaml", doc)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	return gc
}

// TestVectorsOnTheWire sends every config vector's request through fasthttp's parser
// to the gateway's routing, as the proxy does, and checks that the gateway decides
// what the vectors say an SDK must: in particular, that the spaces and tabs around
// header and cookie values are not part of the key, and those around query values are.
func TestVectorsOnTheWire(t *testing.T) {
	var doc clientcfg.Document
	if err := json.Unmarshal(clientcfg.VectorsJSON(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, cv := range doc.Configs {
		tbl, err := routing.Compile(gatewayOf(t, cv.Config), nil, cv.Config.Rollback)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range cv.Cases {
			w := onTheWire(t, tc.Request)
			_, e := tbl.Explain(w.r.Header.Host(), w.r.URI().Path(), w)
			d := tc.Expect
			if e.Route != d.Route || e.Region != d.Region || e.Bucket != d.Bucket || e.Threshold != d.Threshold ||
				e.KeySource != d.KeySource || e.Reason != string(d.Reason) || (d.Route != "" && e.Write != d.Write) {
				t.Errorf("%s / %s:\ngateway %+v\nvectors %+v", cv.Name, tc.Name, e, d)
			}
		}
	}
}

// TestOWSAsGateway: header and cookie values with spaces and tabs around and inside
// them, parsed by the gateway and decided by Decide, land alike.
func TestOWSAsGateway(t *testing.T) {
	cfg := &clientcfg.Config{Version: "t", Algorithm: clientcfg.Algorithm, Regions: map[string]clientcfg.Region{},
		Routes: []clientcfg.Route{{Name: "r", Match: clientcfg.Match{PathPrefix: "/"}, From: "idc", To: "cloud",
			Salt: clientcfg.ContractSalt, Keys: []string{"header:X-User-Id", "cookie:uid", "query:u", "ip"}, Percent: 50}}}
	tbl, err := routing.Compile(gatewayOf(t, cfg), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	pads := []string{"", " ", "  ", "\t", " \t", "\t \t", "\u00a0"}
	cores := []string{"", "42", "u-qa-1", "a b", "a\tb", " "}
	var values []string
	for _, l := range pads {
		for _, c := range cores {
			for _, r := range pads {
				values = append(values, l+c+r)
			}
		}
	}
	for i, v := range values {
		next := values[(i*7+3)%len(values)]
		for _, req := range []clientcfg.Request{
			{Headers: map[string]string{"X-User-Id": v}, Cookies: map[string]string{"uid": next}, IP: "203.0.113.7"},
			{Cookies: map[string]string{"uid": v}, Query: map[string]string{"u": next}},
			{Headers: map[string]string{"x-user-id": v}, Query: map[string]string{"u": v}},
		} {
			_, e := tbl.Explain(nil, []byte("/"), onTheWire(t, req))
			d := clientcfg.Decide(cfg, req)
			if e.Region != d.Region || e.Bucket != d.Bucket || e.KeySource != d.KeySource || e.Reason != string(d.Reason) {
				t.Errorf("%+v:\ngateway %+v\nclient  %+v", req, e, d)
			}
		}
	}
}

// FuzzCookieValueAsGateway: any cookie value a Cookie header can carry, sent as it
// is, lands where the gateway's cookie parser sends it and where Decide sends it.
func FuzzCookieValueAsGateway(f *testing.F) {
	cfg := &clientcfg.Config{Version: "t", Algorithm: clientcfg.Algorithm, Regions: map[string]clientcfg.Region{},
		Routes: []clientcfg.Route{{Name: "r", Match: clientcfg.Match{PathPrefix: "/"}, From: "idc", To: "cloud",
			Salt: clientcfg.ContractSalt, Keys: []string{"cookie:uid", "header:X-Device-Id"}, Percent: 50}}}
	tbl, err := routing.Compile(gatewayOf(f, cfg), nil, false)
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range []string{"42", `"42"`, ` "42" `, `" 42 "`, `"42`, `4\2`, `""`, `"`, "\t", `""42""`} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		// A header value cannot carry control characters but the tab (the gateway
		// refuses the request), and a ';' ends a cookie's value.
		for _, c := range []byte(v) {
			if (c < 0x20 && c != '\t') || c == 0x7f || c == ';' {
				return
			}
		}
		req := clientcfg.Request{Cookies: map[string]string{"uid": v}, Headers: map[string]string{"X-Device-Id": "d-7f3a"}}
		_, e := tbl.Explain(nil, []byte("/"), onTheWire(t, req))
		d := clientcfg.Decide(cfg, req)
		if e.Region != d.Region || e.Bucket != d.Bucket || e.KeySource != d.KeySource {
			t.Errorf("uid=%q:\ngateway %+v\nclient  %+v", v, e, d)
		}
	})
}
