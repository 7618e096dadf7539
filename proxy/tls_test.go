package proxy

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// edgeTLS is twoRegions with a TLS listener serving two certificates.
const edgeTLS = twoRegions + `tls:
  listen: 127.0.0.1:0
  certs:
    - { cert_file: site.crt, key_file: site.key }
    - { cert_file: api.crt, key_file: api.key }
`

// TestTLSEdge serves two certificates by SNI beside the plain listener; both
// listeners route alike, and status and metrics show the certificates' expiry.
func TestTLSEdge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "edge CA")
	siteEnd := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	ca.WritePair(t, dir, "site", tlstest.Leaf{Names: []string{"site.example", "www.site.example"}, NotAfter: siteEnd})
	ca.WritePair(t, dir, "api", tlstest.Leaf{Names: []string{"api.example"}})
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	g := startTLSGateway(t, dir, edgeTLS, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})

	for _, tc := range []struct{ sni, want string }{
		{"site.example", "site.example"},
		{"www.site.example", "site.example"},
		{"api.example", "api.example"},
		{"", "site.example"}, // no SNI: the first certificate
	} {
		cfg := &tls.Config{ServerName: tc.sni, RootCAs: ca.Pool(), NextProtos: []string{"h2", "http/1.1"}}
		if tc.sni == "" {
			cfg = &tls.Config{InsecureSkipVerify: true}
		}
		resp, _, st := httpsGet(t, g.tlsAddr, cfg, "/api/feed", "X-User-Id: u-qa-1")
		if got := st.PeerCertificates[0].Subject.CommonName; got != tc.want {
			t.Errorf("SNI %q: certificate %q, want %q", tc.sni, got, tc.want)
		}
		if tc.sni != "" && st.NegotiatedProtocol != "http/1.1" {
			t.Errorf("SNI %q: ALPN %q, want http/1.1", tc.sni, st.NegotiatedProtocol)
		}
		if resp.StatusCode != 200 || resp.Header.Get("X-Shift-Region") == "" {
			t.Errorf("SNI %q: %d, region %q", tc.sni, resp.StatusCode, resp.Header.Get("X-Shift-Region"))
		}
	}
	// The same user goes to the same region on either listener.
	for _, user := range []string{"u-1001", "42", "u-qa-1"} {
		tlsResp, _, _ := httpsGet(t, g.tlsAddr, &tls.Config{ServerName: "api.example", RootCAs: ca.Pool()}, "/api/feed", "X-User-Id: "+user)
		c := dialRaw(t, g.addr)
		plain, _ := c.roundTrip("GET", get("/api/feed", "X-User-Id: "+user))
		if a, b := tlsResp.Header.Get("X-Shift-Region"), plain.Header.Get("X-Shift-Region"); a != b || a == "" {
			t.Errorf("user %s: TLS listener sent to %q, plain to %q", user, a, b)
		}
	}

	st := g.srv.Status()
	if st.TLS == nil || len(st.TLS.Certificates) != 2 || st.TLS.Certificates[0].Name != "site.example" ||
		!st.TLS.Certificates[0].NotAfter.Equal(siteEnd) || st.TLS.Handshakes < 7 || st.TLS.MinVersion != "1.2" {
		t.Fatalf("status TLS = %+v", st.TLS)
	}
	series := fmt.Sprintf(`shiftgate_tls_certificate_expiry_seconds{name="site.example",file=%q,use="server"}`, dir+"/site.crt")
	if got := g.metric(series); got != strconv.FormatInt(siteEnd.Unix(), 10) {
		t.Errorf("%s = %q, want %d", series, got, siteEnd.Unix())
	}

	// Failed handshakes are counted by reason.
	c := must(net.Dial("tcp", g.tlsAddr))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(ioWait))
	got, _ := io.ReadAll(c)
	c.Close()
	if !strings.Contains(string(got), "400 Bad Request") || !strings.Contains(string(got), "https://") {
		t.Errorf("plain HTTP on the TLS port got %q", got)
	}
	if _, err := tls.DialWithDialer(&net.Dialer{Timeout: ioWait}, "tcp", g.tlsAddr, &tls.Config{ServerName: "api.example"}); err == nil {
		t.Error("a client without the CA trusted the certificate")
	}
	waitUntil(t, "the handshake errors to be counted", func() bool {
		return g.metric(`shiftgate_tls_handshake_errors_total{reason="not_tls"}`) == "1" &&
			g.metric(`shiftgate_tls_handshake_errors_total{reason="client_alert"}`) == "1"
	})
	if g.metric(`shiftgate_tls_handshake_errors_total{reason="timeout"}`) != "0" {
		t.Error("the timeout series is not there from the start")
	}
}

// TestTLSRenewal renews a certificate on disk while the gateway runs: new
// connections get it, without a restart. Then a broken renewal (the certificate
// without its key) is refused: logged with the file and reason, counted, and the
// renewed certificate keeps serving.
func TestTLSRenewal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "edge CA")
	ca.WritePair(t, dir, "site", tlstest.Leaf{Names: []string{"site.example"}})
	ca.WritePair(t, dir, "api", tlstest.Leaf{Names: []string{"api.example"}})
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	g := startTLSGateway(t, dir, edgeTLS, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	cfg := &tls.Config{ServerName: "api.example", RootCAs: ca.Pool()}
	serial := func() string {
		_, _, st := httpsGet(t, g.tlsAddr, cfg, "/")
		return st.PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	// A connection opened before the renewal keeps working after it.
	old := dialRawTLS(t, g.tlsAddr, cfg)
	if r, _ := old.roundTrip("GET", get("/before")); r.StatusCode != 200 {
		t.Fatalf("before renewal: %d", r.StatusCode)
	}

	renewedEnd := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	certPEM, keyPEM := ca.Issue(t, tlstest.Leaf{Names: []string{"api.example"}, NotAfter: renewedEnd})
	tlstest.WriteFile(t, dir+"/api.key", keyPEM)
	tlstest.WriteFile(t, dir+"/api.crt", certPEM)
	waitUntil(t, "the renewed certificate", func() bool { return serial() != first })
	renewed := serial()
	if r, _ := old.roundTrip("GET", get("/after")); r.StatusCode != 200 {
		t.Errorf("a connection from before the renewal: %d", r.StatusCode)
	}
	if g.metric("shiftgate_tls_certificate_reloads_total") != "1" {
		t.Errorf("reloads = %s", g.metric("shiftgate_tls_certificate_reloads_total"))
	}
	series := fmt.Sprintf(`shiftgate_tls_certificate_expiry_seconds{name="api.example",file=%q,use="server"}`, dir+"/api.crt")
	if got := g.metric(series); got != strconv.FormatInt(renewedEnd.Unix(), 10) {
		t.Errorf("expiry after renewal = %s, want %d", got, renewedEnd.Unix())
	}

	// A broken renewal: a new certificate, its key never written.
	half, _ := ca.Issue(t, tlstest.Leaf{Names: []string{"api.example"}})
	tlstest.WriteFile(t, dir+"/api.crt", half)
	waitUntil(t, "the refusal", func() bool { return g.metric("shiftgate_tls_certificate_reload_errors_total") == "1" })
	logged := g.log.String()
	if !strings.Contains(logged, "certificate refused") || !strings.Contains(logged, "file="+dir+"/api.key") ||
		!strings.Contains(logged, "does not match the certificate in "+dir+"/api.crt") {
		t.Errorf("log does not say which file and why:\n%s", logged)
	}
	if got := serial(); got != renewed {
		t.Errorf("after a broken renewal serving serial %s, want the renewed %s", got, renewed)
	}
	if st := g.srv.Status().TLS; !strings.Contains(st.Certificates[1].Error, "does not match") {
		t.Errorf("status does not show the refusal: %+v", st.Certificates[1])
	}
}

// upstreamTLS routes everything to cloud, which speaks TLS; {{TLS}} is its block.
const upstreamTLS = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud:
    upstreams: ["{{CLOUD}}"]
    tls: {{TLS}}
split: { from: idc, to: cloud, salt: cutover-2026 }
timeouts: { connect: 1s, response_header: 2s, body: 5s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 100
    pipeline: {{PIPELINE}}
  - name: default
    match: { path_prefix: / }
    percent: 100
    breaker: { disabled: true }
`

// TestUpstreamMutualTLS sends a region's traffic over mutual TLS: the upstream
// requires a client certificate from its own CA and the gateway verifies the
// upstream by server name against a CA bundle. Connections are pooled (far fewer
// handshakes than requests), pipelined routes work over TLS too, and WebSocket
// tunnels dial TLS.
func TestUpstreamMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	upCA, clientCA := tlstest.NewCA(t, "upstream CA"), tlstest.NewCA(t, "client CA")
	upCA.WriteCA(t, dir, "upstream-ca.pem")
	clientCA.WritePair(t, dir, "gateway", tlstest.Leaf{Names: []string{"gateway.internal"}, Client: true})
	srvCfg := &tls.Config{
		Certificates: []tls.Certificate{upCA.TLSCert(t, tlstest.Leaf{Names: []string{"api.internal"}})},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCA.Pool(),
	}
	cloud := startTLSBackend(t, "cloud", srvCfg)
	ws := tlsWSBackend(t, srvCfg)
	idc := startRegion(t, "idc")
	block := "{ server_name: api.internal, ca_file: upstream-ca.pem, cert_file: gateway.crt, key_file: gateway.key }"
	for _, pipeline := range []string{"false", "true"} {
		t.Run("pipeline="+pipeline, func(t *testing.T) {
			sub := t.TempDir()
			for _, f := range []string{"upstream-ca.pem", "gateway.crt", "gateway.key"} {
				tlstest.WriteFile(t, sub+"/"+f, must(os.ReadFile(dir+"/"+f)))
			}
			g := startTLSGateway(t, sub, upstreamTLS, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.addr, "TLS": block, "PIPELINE": pipeline})
			before := cloud.conns.Load()
			var wg sync.WaitGroup
			for w := 0; w < 4; w++ {
				wg.Go(func() {
					c := dialRaw(t, g.addr)
					for i := 0; i < 25; i++ {
						r, body := c.roundTrip("GET", get(fmt.Sprintf("/api/feed/%d/%d", w, i)))
						if r.StatusCode != 200 || string(body) != fmt.Sprintf("/api/feed/%d/%d", w, i) ||
							r.Header.Get("X-Client-CN") != "gateway.internal" {
							t.Errorf("%d %q client CN %q", r.StatusCode, body, r.Header.Get("X-Client-CN"))
							return
						}
					}
				})
			}
			wg.Wait()
			if n := cloud.conns.Load() - before; n > 8 {
				t.Errorf("%d TLS connections for 100 requests from 4 clients: not pooled", n)
			}
		})
	}

	// The WebSocket tunnel dials TLS to the TLS region, from a TLS client too.
	g := startTLSGateway(t, dir, strings.Replace(upstreamTLS, "upstreams: [\"{{CLOUD}}\"]", "upstreams: [\""+ws+"\"]", 1)+
		"tls: { listen: 127.0.0.1:0, certs: [{ cert_file: gateway.crt, key_file: gateway.key }] }\n",
		map[string]string{"IDC": idc.Addr, "TLS": block, "PIPELINE": "false"})
	c := must(tls.Dial("tcp", g.tlsAddr, &tls.Config{InsecureSkipVerify: true}))
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioWait))
	io.WriteString(c, "GET /api/feed/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("X-Shift-Region") != "cloud" {
		t.Fatalf("upgrade over TLS: %v %+v", err, resp)
	}
	io.WriteString(c, "ping over two TLS hops")
	buf := make([]byte, len("ping over two TLS hops"))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping over two TLS hops" {
		t.Fatalf("tunnel echo: %q %v", buf, err)
	}
}

// TestUpstreamTLSRefused: an upstream whose certificate the gateway cannot verify
// gets no request; the client gets a clear 502, the log says why (once per few
// seconds, not once per request), and the failures are counted. Switching
// verification off takes the loudly named key, and is logged.
func TestUpstreamTLSRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	upCA, other := tlstest.NewCA(t, "upstream CA"), tlstest.NewCA(t, "another CA")
	other.WriteCA(t, dir, "wrong-ca.pem")
	upCA.WriteCA(t, dir, "right-ca.pem")
	cloud := startTLSBackend(t, "cloud", &tls.Config{Certificates: []tls.Certificate{upCA.TLSCert(t, tlstest.Leaf{Names: []string{"api.internal"}})}})
	idc := startRegion(t, "idc")
	for _, tc := range []struct {
		name, block, inLog string
	}{
		{"unknown CA", "{ server_name: api.internal, ca_file: wrong-ca.pem }", "signed by an unknown authority"},
		{"system roots", "{ server_name: api.internal }", "signed by an unknown authority"},
		{"wrong name", "{ server_name: db.internal, ca_file: right-ca.pem }", "db.internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := t.TempDir()
			for _, f := range []string{"wrong-ca.pem", "right-ca.pem"} {
				tlstest.WriteFile(t, sub+"/"+f, must(os.ReadFile(dir+"/"+f)))
			}
			g := startTLSGateway(t, sub, upstreamTLS, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.addr, "TLS": tc.block, "PIPELINE": "false"})
			before := cloud.reqs.Load()
			for i := 0; i < 5; i++ {
				c := dialRaw(t, g.addr)
				r, body := c.roundTrip("GET", get("/other"))
				if r.StatusCode != 502 || !strings.Contains(string(body), "TLS to region cloud failed") {
					t.Fatalf("%d %q, want a 502 that names TLS and the region", r.StatusCode, body)
				}
			}
			if n := cloud.reqs.Load() - before; n != 0 {
				t.Errorf("%d requests reached an unverified upstream", n)
			}
			logged := g.log.String()
			if !strings.Contains(logged, "TLS to upstream failed") || !strings.Contains(logged, "region=cloud") ||
				!strings.Contains(logged, tc.inLog) || !strings.Contains(logged, cloud.addr) {
				t.Errorf("log does not say why:\n%s", logged)
			}
			if n := strings.Count(logged, "TLS to upstream failed"); n != 1 {
				t.Errorf("%d log lines for 5 failures within seconds, want 1", n)
			}
			if got := g.metric(`shiftgate_upstream_tls_errors_total{region="cloud"}`); got != "5" {
				t.Errorf("upstream TLS errors = %q, want 5", got)
			}
		})
	}
	t.Run("client certificate refused", func(t *testing.T) {
		// In TLS 1.3 the upstream refuses the gateway's certificate after the
		// handshake, with an alert on the first read that names no address: the log
		// line says the address and server name all the same.
		clientCA := tlstest.NewCA(t, "client CA")
		strict := startTLSBackend(t, "cloud", &tls.Config{
			Certificates: []tls.Certificate{upCA.TLSCert(t, tlstest.Leaf{Names: []string{"api.internal"}})},
			ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: clientCA.Pool()})
		sub := t.TempDir()
		tlstest.WriteFile(t, sub+"/right-ca.pem", upCA.PEM)
		other.WritePair(t, sub, "gateway", tlstest.Leaf{Names: []string{"gateway.internal"}, Client: true})
		g := startTLSGateway(t, sub, upstreamTLS, map[string]string{"IDC": idc.Addr, "CLOUD": strict.addr,
			"TLS": "{ server_name: api.internal, ca_file: right-ca.pem, cert_file: gateway.crt, key_file: gateway.key }", "PIPELINE": "false"})
		c := dialRaw(t, g.addr)
		if r, body := c.roundTrip("GET", get("/other")); r.StatusCode != 502 || !strings.Contains(string(body), "TLS to region cloud failed") {
			t.Fatalf("%d %q, want a 502 that names TLS and the region", r.StatusCode, body)
		}
		logged := g.log.String()
		if !strings.Contains(logged, "TLS to upstream failed") || !strings.Contains(logged, strict.addr) ||
			!strings.Contains(logged, `api.internal`) || !strings.Contains(logged, "certificate") {
			t.Errorf("log does not say where and why:\n%s", logged)
		}
	})
	t.Run("verification off", func(t *testing.T) {
		g := startTLSGateway(t, t.TempDir(), upstreamTLS, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.addr,
			"TLS": "{ insecure_skip_verify_dangerous: true }", "PIPELINE": "false"})
		c := dialRaw(t, g.addr)
		if r, _ := c.roundTrip("GET", get("/other")); r.StatusCode != 200 {
			t.Fatalf("%d", r.StatusCode)
		}
		if !strings.Contains(g.log.String(), "NOT VERIFIED") || g.srv.Status().TLS.Unverified[0] != "cloud" {
			t.Errorf("verification off is not loud:\n%s", g.log.String())
		}
	})
	t.Run("https upstream", func(t *testing.T) {
		sub := t.TempDir()
		tlstest.WriteFile(t, sub+"/right-ca.pem", upCA.PEM)
		cfg := strings.Replace(upstreamTLS, "upstreams: [\"{{CLOUD}}\"]", "upstreams: [\"https://{{CLOUD}}\"]", 1)
		g := startTLSGateway(t, sub, cfg, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.addr,
			"TLS": "{ server_name: api.internal, ca_file: right-ca.pem }", "PIPELINE": "false"})
		c := dialRaw(t, g.addr)
		if r, body := c.roundTrip("GET", get("/other")); r.StatusCode != 200 || r.Header.Get("X-Served-By") != "cloud" {
			t.Fatalf("%d %q", r.StatusCode, body)
		}
	})
}

// TestUpstreamCABundleReload rotates a region's CA bundle on disk while the gateway
// runs, with no config change: once the file names the new CA, new upstream
// connections to a backend that now presents a certificate of the new CA verify.
// Then a broken bundle is refused (logged with the file and reason, counted, shown
// by status) and the rotated one stays in use.
func TestUpstreamCABundleReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldCA, newCA := tlstest.NewCA(t, "old upstream CA"), tlstest.NewCA(t, "new upstream CA")
	oldCA.WriteCA(t, dir, "cloud-ca.pem")
	leaf := tlstest.Leaf{Names: []string{"api.internal"}}
	var serving atomic.Pointer[tls.Certificate]
	oldCert, newCert := oldCA.TLSCert(t, leaf), newCA.TLSCert(t, leaf)
	serving.Store(&oldCert)
	// The backend closes every connection after its answer and resumes no
	// session: each request is a new upstream connection with a full handshake,
	// verified against the bundle in use at that time.
	ln := tls.NewListener(must(net.Listen("tcp", "127.0.0.1:0")), &tls.Config{
		GetCertificate:         func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return serving.Load(), nil },
		SessionTicketsDisabled: true,
	})
	var reqs atomic.Int64
	backend := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		reqs.Add(1)
		ctx.SetConnectionClose()
		ctx.SetBodyString("cloud")
	}, Logger: quietLogger{}}
	go backend.Serve(ln)
	t.Cleanup(func() { backend.Shutdown() })
	idc := startRegion(t, "idc")
	g := startTLSGateway(t, dir, upstreamTLS, map[string]string{"IDC": idc.Addr, "CLOUD": ln.Addr().String(),
		"TLS": "{ server_name: api.internal, ca_file: cloud-ca.pem }", "PIPELINE": "false"})
	status := func() int {
		t.Helper()
		r, _ := dialRaw(t, g.addr).roundTrip("GET", get("/other"))
		return r.StatusCode
	}
	if s := status(); s != 200 {
		t.Fatalf("old CA, old bundle: %d", s)
	}
	serving.Store(&newCert)
	before := reqs.Load()
	if s := status(); s != 502 {
		t.Fatalf("new CA's certificate under the old bundle: %d, want 502", s)
	}
	if reqs.Load() != before {
		t.Fatal("a request reached an upstream the bundle does not verify")
	}

	bundle := dir + "/cloud-ca.pem"
	tlstest.WriteFile(t, bundle, newCA.PEM)
	waitUntil(t, "the rotated bundle", func() bool { return g.metric("shiftgate_tls_ca_bundle_reloads_total") == "1" })
	if s := status(); s != 200 {
		t.Fatalf("new CA's certificate after the rotation: %d", s)
	}
	series := fmt.Sprintf(`shiftgate_tls_ca_bundle_expiry_seconds{file=%q}`, bundle)
	if got := g.metric(series); got != strconv.FormatInt(newCA.Cert.NotAfter.Unix(), 10) {
		t.Errorf("%s = %q, want %d", series, got, newCA.Cert.NotAfter.Unix())
	}

	// A broken rotation: the file cut in the middle of a second CA.
	tlstest.WriteFile(t, bundle, append(append([]byte{}, newCA.PEM...), oldCA.PEM[:50]...))
	waitUntil(t, "the refusal", func() bool { return g.metric("shiftgate_tls_ca_bundle_reload_errors_total") == "1" })
	logged := g.log.String()
	if !strings.Contains(logged, "CA bundle refused") || !strings.Contains(logged, "file="+bundle) ||
		!strings.Contains(logged, "cut short") {
		t.Errorf("log does not say which file and why:\n%s", logged)
	}
	for i := 0; i < 3; i++ {
		if s := status(); s != 200 {
			t.Fatalf("after a refused bundle: %d, want the rotated bundle still in use", s)
		}
	}
	st := g.srv.Status().TLS
	if len(st.CABundles) != 1 || st.CABundles[0].File != bundle || !strings.Contains(st.CABundles[0].Error, "cut short") ||
		st.CABundles[0].Subjects[0] != "new upstream CA" || st.CABundles[0].Regions[0] != "cloud" {
		t.Errorf("status ca_bundles: %+v", st.CABundles)
	}
}
