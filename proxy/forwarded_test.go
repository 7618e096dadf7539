package proxy

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// forwardedConf is hostileConf with {{PROXIES}} as client_ip.trusted_proxies and a TLS
// listener beside the plain one.
const forwardedConf = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
client_ip: { trusted_proxies: [{{PROXIES}}] }
split: { from: idc, to: cloud, salt: hostile }
timeouts: { connect: 500ms, response_header: 1s, body: 2s, request_head: 1s, idle: 2s }
tls: { listen: 127.0.0.1:0, certs: [{ cert_file: gw.crt, key_file: gw.key }] }
routes:
  - name: default
    match: { path_prefix: / }
    percent: 0
    breaker: { disabled: true }
`

// TestForwardedProto: the backend learns from X-Forwarded-Proto whether the client
// used TLS. Whatever a client sends is replaced, in every spelling ('_' ones are
// dropped), unless the client is a trusted proxy (client_ip.trusted_proxies), whose
// own X-Forwarded-Proto passes as sent. Plain and TLS listeners, trusted and
// untrusted peers, every spelling.
func TestForwardedProto(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "forwarded CA")
	clientTLS := &tls.Config{ServerName: "gw.test", RootCAs: ca.Pool()}
	// One backend each: a recording backend lists requests by connection.
	backends := map[bool]*recBackend{false: startBackend(t, replyOK), true: startBackend(t, replyOK)}
	gateways := map[bool]*tlsGateway{}
	for trusted, proxies := range map[bool]string{false: `"10.0.0.0/8"`, true: `"10.0.0.0/8", "127.0.0.1/32"`} {
		b, dir := backends[trusted], t.TempDir()
		ca.WritePair(t, dir, "gw", tlstest.Leaf{Names: []string{"gw.test"}})
		gateways[trusted] = startTLSGateway(t, dir, forwardedConf, map[string]string{"IDC": b.addr, "CLOUD": b.addr, "PROXIES": proxies})
	}
	spellings := []struct {
		name   string
		fields []string
		kept   string // what a trusted proxy's value arrives as ("" when nothing may be kept)
	}{
		{"none", nil, ""},
		{"canonical", []string{"X-Forwarded-Proto: ftp"}, "ftp"},
		{"lower case", []string{"x-forwarded-proto: ftp"}, "ftp"},
		{"upper case", []string{"X-FORWARDED-PROTO: ftp"}, "ftp"},
		{"underscores", []string{"X_Forwarded_Proto: ftp"}, ""},
		{"lower case underscores", []string{"x_forwarded_proto: ftp"}, ""},
		{"one underscore", []string{"X-Forwarded_Proto: ftp"}, ""},
		{"underscore and dash", []string{"X_FORWARDED_PROTO: gopher", "X-Forwarded-Proto: ftp"}, "ftp"},
	}
	for _, overTLS := range []bool{false, true} {
		for _, trusted := range []bool{false, true} {
			g, b := gateways[trusted], backends[trusted]
			for _, sp := range spellings {
				name := map[bool]string{false: "plain", true: "TLS"}[overTLS] + "/" +
					map[bool]string{false: "untrusted", true: "trusted"}[trusted] + "/" + sp.name
				t.Run(name, func(t *testing.T) {
					n := len(b.requests())
					var c *rawConn
					if overTLS {
						c = dialRawTLS(t, g.tlsAddr, clientTLS)
					} else {
						c = dialRaw(t, g.addr)
					}
					if resp, body := c.roundTrip("GET", get("/p", sp.fields...)); resp.StatusCode != 200 {
						t.Fatalf("status %d (%q)", resp.StatusCode, body)
					}
					b.waitFor(t, ioWait, "the request", func() bool { return b.numRequests() > n })
					r := b.requests()[n]
					want := "http"
					if overTLS {
						want = "https"
					}
					if trusted && sp.kept != "" {
						want = sp.kept
					}
					got := fieldsNamed(headFields(r.Head), "X-Forwarded-Proto")
					if strings.Join(got, "|") != want {
						t.Errorf("backend got X-Forwarded-Proto %q, want exactly %q\n%s", got, want, r.Head)
					}
				})
			}
		}
	}
	for _, b := range backends {
		b.mustBeClean(t)
	}
}

// tlsConnAddr is a client connection that fasthttp takes for a TLS one (ctx.IsTLS),
// for the allocation test; the handler calls nothing else on it but RemoteAddr.
type tlsConnAddr struct {
	net.Conn
	remote net.Addr
}

func (c *tlsConnAddr) RemoteAddr() net.Addr                 { return c.remote }
func (c *tlsConnAddr) LocalAddr() net.Addr                  { return c.remote }
func (c *tlsConnAddr) Handshake() error                     { return nil }
func (c *tlsConnAddr) ConnectionState() tls.ConnectionState { return tls.ConnectionState{} }

// TestHandlerAllocsForwardedProto: X-Forwarded-Proto sent by an untrusted client in
// every spelling and replaced, over TLS and plain, and kept from a trusted proxy,
// costs no allocation.
func TestHandlerAllocsForwardedProto(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	m := newInMemory(t) // trusted_proxies: 10.0.0.0/8
	for _, tc := range []struct {
		name string
		peer net.IP
		tls  bool
		want string
	}{
		{"untrusted plain", net.IPv4(127, 0, 0, 1), false, "http"},
		{"untrusted TLS", net.IPv4(127, 0, 0, 1), true, "https"},
		{"trusted proxy", net.IPv4(10, 2, 3, 4), false, "ftp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			remote := &net.TCPAddr{IP: tc.peer, Port: 40000}
			if tc.tls {
				ctx.Init2(&tlsConnAddr{remote: remote}, nil, true)
			} else {
				ctx.Init(&fasthttp.Request{}, remote, nil)
			}
			run := func() {
				ctx.Request.Reset()
				ctx.Request.SetRequestURI("/api/feed?page=1")
				ctx.Request.Header.SetHost("gw")
				ctx.Request.Header.Set("X-User-Id", "u-1001")
				ctx.Request.Header.Set("X-Forwarded-Proto", "ftp")
				ctx.Request.Header.Set("X_Forwarded_Proto", "gopher")
				ctx.Response.Reset()
				m.srv.handle(&ctx)
				ctx.Response.Body()
				if ctx.Response.StatusCode() != 200 {
					t.Fatalf("status %d", ctx.Response.StatusCode())
				}
			}
			for i := 0; i < 100; i++ {
				run()
			}
			if got := string(ctx.Request.Header.Peek("X-Forwarded-Proto")); got != tc.want {
				t.Fatalf("X-Forwarded-Proto %q upstream, want %q", got, tc.want)
			}
			if n := testing.AllocsPerRun(200, run); n != 0 {
				t.Errorf("%.1f allocations per proxied request, want 0", n)
			}
		})
	}
}
