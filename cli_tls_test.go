package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/tlsconf"
	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// TestCheckTLS: check names the config line of a certificate that does not load,
// and fails on one that has expired (which serve would still serve).
func TestCheckTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "check CA")
	ca.WritePair(t, dir, "good", tlstest.Leaf{Names: []string{"good.example"}})
	ca.WritePair(t, dir, "other", tlstest.Leaf{Names: []string{"other.example"}})
	ca.WritePair(t, dir, "old", tlstest.Leaf{Names: []string{"old.example"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	base := "regions:\n  idc: {upstreams: [\"127.0.0.1:9001\"]}\nsplit: {from: idc, to: idc}\nroutes:\n  - name: a\n    match: {path_prefix: /}\ntls:\n  listen: 127.0.0.1:8443\n  certs:\n"
	for _, tc := range []struct {
		name, cert, key string
		code            int
		inErr           string
	}{
		{"good", "good.crt", "good.key", 0, ""},
		{"key of another certificate", "good.crt", "other.key", 1, ":10: tls.certs[0].key_file: " + filepath.Join(dir, "other.key") + ": private key does not match"},
		{"missing file", "gone.crt", "good.key", 1, ":10: tls.certs[0].cert_file: open " + filepath.Join(dir, "gone.crt")},
		{"expired", "old.crt", "old.key", 1, ":10: tls.certs[0].cert_file: " + filepath.Join(dir, "old.crt") + ": certificate expired at"},
	} {
		path := filepath.Join(dir, "c.yaml")
		os.WriteFile(path, []byte(base+"    - {cert_file: "+tc.cert+", key_file: "+tc.key+"}\n"), 0o644)
		code, _, errs := runCLI("check", "-config", path)
		if code != tc.code || !strings.Contains(errs, tc.inErr) {
			t.Errorf("%s: exit %d, %q; want %d and %q", tc.name, code, errs, tc.code, tc.inErr)
		}
	}
}

func TestPrintTLSStatus(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var b bytes.Buffer
	printTLSStatus(&b, &proxy.TLSStatus{
		Listen: "0.0.0.0:443", MinVersion: "1.2", Handshakes: 12,
		Certificates: []tlsconf.Status{
			{Name: "site.example", Use: "server", CertFile: "/etc/site.crt", NotAfter: now.Add(72 * time.Hour),
				Error: "/etc/site.key: private key does not match", ErrorAt: now},
			{Name: "old.example", Use: "server", CertFile: "/etc/old.crt", NotAfter: now.Add(-time.Hour)},
		},
		HandshakeErrors: map[string]uint64{"timeout": 3, "not_tls": 1},
		Unverified:      []string{"cloud"},
		CABundles: []tlsconf.CAStatus{{File: "/etc/cloud-ca.pem", Regions: []string{"cloud", "edge"},
			Subjects: []string{"cloud CA 2026", "cloud CA 2027"}, NotAfter: now.Add(48 * time.Hour),
			Error: "/etc/cloud-ca.pem: no PEM CERTIFICATE block that parses", ErrorAt: now}},
	}, now)
	for _, want := range []string{"tls: 0.0.0.0:443 (min 1.2), 12 handshakes", "site.example", "in 72h0m0s", "RELOAD REFUSED",
		"EXPIRED 2026-02-28T23:00:00Z", "handshake errors: not_tls=1 timeout=3", "NOT VERIFIED in region cloud",
		"cloud CA 2026,cloud CA 2027", "first expiry 2026-03-03T00:00:00Z (in 48h0m0s)  /etc/cloud-ca.pem (2 CAs; regions cloud,edge)",
		"RELOAD REFUSED 2026-03-01T00:00:00Z: /etc/cloud-ca.pem: no PEM CERTIFICATE block that parses (the bundle above stays in use)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}
