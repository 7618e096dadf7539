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
		{"GET", "/api/feed", []string{"X-Device-Id: d-7f3a"}},
		{"GET", "/api/feed?u=%2042", nil},
		{"GET", "/api/checkout", []string{"X-User-Id: u-qa-1"}},
		{"DELETE", "/api/feed/1", []string{"X-User-Id: u-1001"}},
	}
	for _, tc := range cases {
		name := tc.method + " " + tc.target + " " + strings.Join(tc.headers, "|")
		req, host, path, err := DecideRequest(tc.method, tc.target, append([]string{"Host: gw.test"}, tc.headers...), "203.0.113.7")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, want := tbl.Explain(host, path, req)

		raw := tc.method + " " + tc.target + " HTTP/1.1\r\nHost: gw.test\r\n"
		for _, h := range tc.headers {
			raw += h + "\r\n"
		}
		var r fasthttp.Request
		r.Header.DisableNormalizing()
		if err := r.Read(bufio.NewReader(strings.NewReader(raw + "\r\n"))); err != nil {
			t.Fatalf("%s: fasthttp: %v", name, err)
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&r, &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 1}, nil)
		_, got := tbl.Explain(ctx.Request.Header.Host(), ctx.Path(), (*reqView)(&ctx))
		if got != want {
			t.Errorf("%s:\n the gateway: %+v\n  the tools: %+v", name, got, want)
		}
	}
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
	f.Fuzz(func(t *testing.T, method, target, header, ip string) {
		req, host, path, err := DecideRequest(method, target, []string{header}, ip)
		if err != nil {
			return
		}
		tbl.Explain(host, path, req)
	})
}
