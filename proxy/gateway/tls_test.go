package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// TestLiveTLS runs the assembly with a tls block: the TLS listener serves beside
// the plain one; a renewed certificate and a certificate added by a config reload
// are both served without a restart; status shows them; the drain closes all.
func TestLiveTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "live CA")
	ca.WritePair(t, dir, "site", tlstest.Leaf{Names: []string{"site.example"}})
	ca.WritePair(t, dir, "api", tlstest.Leaf{Names: []string{"api.example"}})
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	text := strings.NewReplacer("{{STATE}}", filepath.Join(dir, "state"), "{{IDC}}", idc.Addr, "{{CLOUD}}", cloud.Addr).Replace(twoRegions)
	one := text + "tls:\n  listen: 127.0.0.1:0\n  certs:\n    - { cert_file: site.crt, key_file: site.key }\n"
	path := filepath.Join(dir, "shiftgate.yaml")
	if err := os.WriteFile(path, []byte(one), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, err := Start(ctx, Options{ConfigPath: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", TLSListen: "127.0.0.1:0", Debounce: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if g.TLSAddr == "" {
		t.Fatal("no TLS listener")
	}
	get := func(sni string) (*http.Response, *tls.ConnectionState, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", g.TLSAddr, &tls.Config{ServerName: sni, RootCAs: ca.Pool()})
		if err != nil {
			return nil, nil, err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /api/feed HTTP/1.1\r\nHost: "+sni+"\r\nX-User-Id: u-qa-1\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return nil, nil, err
		}
		st := c.ConnectionState()
		return resp, &st, nil
	}
	resp, st, err := get("site.example")
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Shift-Region") != "cloud" {
		t.Fatalf("over TLS: %v %+v", err, resp)
	}
	firstSerial := st.PeerCertificates[0].SerialNumber.String()

	// Renewal: served on new connections, no restart.
	ca.WritePair(t, dir, "site", tlstest.Leaf{Names: []string{"site.example"}})
	waitUntil(t, "the renewed certificate", func() bool {
		_, st, err := get("site.example")
		return err == nil && st.PeerCertificates[0].SerialNumber.String() != firstSerial
	})

	// A reload that adds a certificate: served by SNI.
	two := one + "    - { cert_file: api.crt, key_file: api.key }\n"
	tlstest.WriteFile(t, path, []byte(two))
	waitUntil(t, "the added certificate", func() bool {
		_, st, err := get("api.example")
		return err == nil && st.PeerCertificates[0].Subject.CommonName == "api.example"
	})

	// Status over the admin API.
	hr, err := http.Get("http://" + g.AdminAddr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var status proxy.Status
	json.NewDecoder(hr.Body).Decode(&status)
	hr.Body.Close()
	if status.TLS == nil || len(status.TLS.Certificates) != 2 || status.TLS.Certificates[1].Name != "api.example" {
		t.Fatalf("status tls = %+v", status.TLS)
	}

	cancel()
	if err := g.Wait(); err != nil {
		t.Fatalf("wait: %v", err)
	}
	if c, err := net.DialTimeout("tcp", g.TLSAddr, time.Second); err == nil {
		c.Close()
		t.Error("the TLS listener is still open after the drain")
	}
}

// waitFor polls cond for up to 10 s; it measures nothing about time.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
