package proxy

import (
	"bufio"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
)

// TestDecideRequestMatchesTheWire: `shiftgate route` and /v1/decide build their
// request with DecideRequest; the gateway decides on the request fasthttp parsed. The
// two must agree on the route, key, bucket, write side and region, whatever the
// spelling: a method's case (methods are case-sensitive, so a literal "get" is a
// write at the gateway), spaces and tabs around header and cookie values,
// percent-encoded query values. Before, the explain tools upper-cased the method,
// trimmed more than the gateway and took query values undecoded.
func TestDecideRequestMatchesTheWire(t *testing.T) {
	c, err := conf.LoadFile(copyExample(t))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := routing.Compile(c, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		method, target string
		headers        []string
	}{
		{"GET", "/api/feed", []string{"X-User-Id: 42"}},
		{"get", "/api/feed", []string{"X-User-Id: 1"}},
		{"Get", "/api/feed", []string{"X-User-Id: 1"}},
		{"POST", "/api/feed", []string{"X-User-Id: 1"}},
		{"GET", "/api/feed", []string{"X-User-Id:  1 \t"}},
		{"GET", "/api/feed", []string{"X-User-Id: \t "}},
		{"GET", "/api/feed", []string{"X-User-Id: u 1"}},
		{"GET", "/api/feed", []string{"Cookie: uid= 42\t; other=1"}},
		// fasthttp's cookie parser: one pair of quotes is not part of the value; a
		// value still holding a quote or backslash is dropped (the next key source
		// applies); of one name sent twice, in one header or two, the first counts.
		{"GET", "/api/feed", []string{`Cookie: uid="u-qa-1"`}},
		{"GET", "/api/feed", []string{`Cookie: uid= "u-qa-1" `}},
		{"GET", "/api/feed", []string{`Cookie: uid="u-qa-1`, "X-Device-Id: d-7f3a"}},
		{"GET", "/api/feed", []string{`Cookie: uid=u\qa`, "X-Device-Id: d-7f3a"}},
		{"GET", "/api/feed", []string{"Cookie: uid=42; uid=u-qa-1"}},
		{"GET", "/api/feed", []string{"Cookie: uid=; uid=u-qa-1", "X-Device-Id: d-7f3a"}},
		{"GET", "/api/feed", []string{"Cookie: a=1", "Cookie: uid=42", "Cookie: uid=u-qa-1"}},
		// The path as the gateway routes it: decoded and normalised.
		{"GET", "/api/%66eed", []string{"X-User-Id: u-qa-1"}},
		{"GET", "/api/checkout/../feed", []string{"X-User-Id: u-qa-1"}},
		{"GET", "/api//feed", []string{"X-User-Id: u-qa-1"}},
		{"GET", "//api/feed/1", []string{"X-User-Id: u-qa-1"}},
		{"GET", "//api/feed?u=42", nil},
		{"GET", "/api/feed?u=1&u=2", nil},
		{"GET", "/api/feed", []string{"X-Device-Id: d-7f3a"}},
		{"GET", "/api/feed?u=%2042", nil},
		{"GET", "/api/checkout", []string{"X-User-Id: u-qa-1"}},
		{"DELETE", "/api/feed/1", []string{"X-User-Id: u-1001"}},
	}
	for _, tc := range cases {
		name := tc.method + " " + tc.target + " " + strings.Join(tc.headers, "|")
		tools, err := explainTools(tbl, tc.method, tc.target, tc.headers)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		gateway, err := explainWire(tbl, tc.method, tc.target, tc.headers)
		if err != nil {
			t.Fatalf("%s: fasthttp: %v", name, err)
		}
		if gateway != tools {
			t.Errorf("%s:\n the gateway: %+v\n  the tools: %+v", name, gateway, tools)
		}
	}
}

// explainTools is the decision `shiftgate route` and /v1/decide explain.
func explainTools(tbl *routing.Table, method, target string, headers []string) (routing.Explanation, error) {
	req, host, path, err := DecideRequest(method, target, append([]string{"Host: gw.test"}, headers...), "203.0.113.7")
	if err != nil {
		return routing.Explanation{}, err
	}
	_, e := tbl.Explain(host, path, req)
	return e, nil
}

// explainWire is the gateway's decision on the same request sent on the wire.
func explainWire(tbl *routing.Table, method, target string, headers []string) (routing.Explanation, error) {
	raw := method + " " + target + " HTTP/1.1\r\nHost: gw.test\r\n"
	for _, h := range headers {
		raw += h + "\r\n"
	}
	var r fasthttp.Request
	r.Header.DisableNormalizing()
	if err := r.Read(bufio.NewReader(strings.NewReader(raw + "\r\n"))); err != nil {
		return routing.Explanation{}, err
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&r, &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 1}, nil)
	_, e := tbl.Explain(ctx.Request.Header.Host(), ctx.Path(), (*reqView)(&ctx))
	return e, nil
}

// FuzzDecideRequest: what /v1/decide and `shiftgate route` build from outside input
// (a method, a target, a header line, an address) is refused with an error or
// decided; never a panic.
func FuzzDecideRequest(f *testing.F) {
	c, err := conf.LoadFile(copyExample(f))
	if err != nil {
		f.Fatal(err)
	}
	tbl, err := routing.Compile(c, nil, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("GET", "/api/feed?u=%2042&x", "X-User-Id:  1 \t", "203.0.113.7")
	f.Add("get", "/", "Cookie: uid= 42\t; a", "")
	f.Add("", "/%zz?%zz=%zz", "Host: a:b", "::1")
	f.Add("GET", "/api/%66eed/../feed?u=%2042&u=1", `Cookie: uid="u-1"; uid=2`, "203.0.113.7")
	f.Add("GET", "//api/feed//x?u=1", "X-User-Id: 7", "203.0.113.7")
	f.Fuzz(func(t *testing.T, method, target, header, ip string) {
		req, host, path, err := DecideRequest(method, target, []string{header}, ip)
		if err != nil {
			return
		}
		tbl.Explain(host, path, req)
		// Where the same request can be sent on the wire, the gateway decides as the
		// tools explain.
		if method == "" || strings.ContainsAny(method+target+header, "\r\n\x00") || strings.ContainsAny(method+target, " \t") {
			return
		}
		if name, _, ok := strings.Cut(header, ":"); !ok || name != strings.TrimSpace(name) || name == "" || strings.EqualFold(name, "host") {
			return
		}
		tools, err := explainTools(tbl, method, target, []string{header})
		if err != nil {
			return
		}
		gateway, err := explainWire(tbl, method, target, []string{header})
		if err != nil {
			return
		}
		if gateway != tools {
			t.Errorf("%q %q %q:\n the gateway: %+v\n  the tools: %+v", method, target, header, gateway, tools)
		}
	})
}
