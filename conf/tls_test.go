package conf

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

func TestParseTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	ca.WritePair(t, dir, "site", tlstest.Leaf{Names: []string{"site.example"}})
	ca.WritePair(t, dir, "other", tlstest.Leaf{Names: []string{"other.example"}})
	ca.WritePair(t, dir, "old", tlstest.Leaf{Names: []string{"old.example"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	ca.WritePair(t, dir, "client", tlstest.Leaf{Names: []string{"gw"}, Client: true})
	ca.WriteCA(t, dir, "ca.pem")
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Two CAs, the second cut off half-way: a bundle half written.
	if err := os.WriteFile(filepath.Join(dir, "cut.pem"), append(append([]byte{}, ca.PEM...), ca.PEM[:60]...), 0o600); err != nil {
		t.Fatal(err)
	}
	parse := func(text string) (*Config, error) {
		return Parse(filepath.Join(dir, "c.yaml"), []byte(text))
	}
	f := func(name, extra, want string) {
		t.Helper()
		_, err := parse(base + extra)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: unexpected error: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
	}
	const good = "tls:\n  listen: 127.0.0.1:8443\n  certs:\n    - {cert_file: site.crt, key_file: site.key}\n"
	f("valid", good, "")
	f("no listen", "tls:\n  certs: [{cert_file: site.crt, key_file: site.key}]\n", "c.yaml:10: tls.listen: the TLS listener needs an address")
	f("listen taken", "tls:\n  listen: 127.0.0.1:8080\n  certs: [{cert_file: site.crt, key_file: site.key}]\n", "tls.listen: 127.0.0.1:8080 is already")
	f("no certs", "tls: {listen: 127.0.0.1:8443}\n", "tls.certs: at least one certificate")
	f("missing cert", "tls:\n  listen: 127.0.0.1:8443\n  certs:\n    - {cert_file: nope.crt, key_file: site.key}\n",
		"c.yaml:12: tls.certs[0].cert_file: open "+filepath.Join(dir, "nope.crt"))
	f("key of another certificate", "tls:\n  listen: 127.0.0.1:8443\n  certs:\n    - {cert_file: site.crt, key_file: site.key}\n    - {cert_file: site.crt, key_file: other.key}\n",
		"c.yaml:13: tls.certs[1].key_file: "+filepath.Join(dir, "other.key")+": private key does not match the certificate in "+filepath.Join(dir, "site.crt"))
	f("swapped", "tls:\n  listen: 127.0.0.1:8443\n  certs:\n    - {cert_file: site.key, key_file: site.crt}\n", "tls.certs[0].cert_file")
	f("no key file", "tls:\n  listen: 127.0.0.1:8443\n  certs:\n    - {cert_file: site.crt}\n", "tls.certs[0].key_file: a PEM private key file is needed")
	f("min version", good+"  min_version: \"1.1\"\n", `tls.min_version: want "1.2" or "1.3"`)
	f("unknown key", good+"  ciphers: [x]\n", "tls.ciphers: unknown key")

	c, err := parse(base + good + "  min_version: \"1.3\"\n")
	if err != nil || c.TLS.MinVersionID != tls.VersionTLS13 || c.TLS.Certs[0].CertFile != filepath.Join(dir, "site.crt") {
		t.Fatalf("min 1.3: %v %+v", err, c)
	}
	c, err = parse(base + good)
	if err != nil || c.TLS.MinVersionID != tls.VersionTLS12 || len(c.Warnings) != 0 {
		t.Fatalf("default min version: %v %+v", err, c)
	}

	// An expired certificate loads, with a warning that check turns into a failure.
	c, err = parse(base + "tls:\n  listen: 127.0.0.1:8443\n  certs:\n    - {cert_file: old.crt, key_file: old.key}\n")
	if err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].Error(), "c.yaml:12: tls.certs[0].cert_file: "+filepath.Join(dir, "old.crt")+": certificate expired at") {
		t.Fatalf("expired: %v %v", err, c.Warnings)
	}

	// Upstream TLS.
	region := func(tlsBlock string) string {
		return strings.Replace(base, `cloud: {upstreams: ["127.0.0.1:9002"]}`, "cloud:\n    upstreams: [\"127.0.0.1:9002\"]\n    tls: "+tlsBlock, 1)
	}
	g := func(name, block, want string) {
		t.Helper()
		_, err := parse(region(block))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: unexpected error: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
	}
	g("defaults", "{}\n", "")
	g("full", "{server_name: api.internal, ca_file: ca.pem, cert_file: client.crt, key_file: client.key}\n", "")
	g("bad CA bundle", "{ca_file: junk.pem}\n", "c.yaml:5: regions.cloud.tls.ca_file: "+filepath.Join(dir, "junk.pem")+": no PEM CERTIFICATE")
	g("missing CA bundle", "{ca_file: none.pem}\n", "regions.cloud.tls.ca_file: open")
	g("CA bundle cut short", "{ca_file: cut.pem}\n", "c.yaml:5: regions.cloud.tls.ca_file: "+filepath.Join(dir, "cut.pem")+": a PEM block after certificate 1 is cut short")
	g("cert without key", "{cert_file: client.crt}\n", "regions.cloud.tls: a client certificate needs both")
	g("mismatched client pair", "{cert_file: client.crt, key_file: site.key}\n", "regions.cloud.tls.key_file")
	g("insecure and a CA", "{ca_file: ca.pem, insecure_skip_verify_dangerous: true}\n", "not both")
	g("bad server name", "{server_name: \"a b\"}\n", "regions.cloud.tls.server_name: want a host name")
	g("old name for the switch", "{insecure_skip_verify: true}\n", "regions.cloud.tls.insecure_skip_verify: unknown key")

	c, err = parse(strings.Replace(base, `["127.0.0.1:9002"]`, `["https://api.internal", "https://10.0.0.1:8443"]`, 1))
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := c.Region("cloud")
	if cl.TLS == nil || strings.Join(cl.Upstreams, ",") != "api.internal:443,10.0.0.1:8443" {
		t.Fatalf("https upstreams: %+v", cl)
	}
	if idc, _ := c.Region("idc"); idc.TLS != nil {
		t.Fatal("TLS on a plain region")
	}
	_, err = parse(strings.Replace(base, `["127.0.0.1:9002"]`, `["https://a.internal", "10.0.0.1:80"]`, 1))
	if err == nil || !strings.Contains(err.Error(), "mixes https:// and plain upstreams") {
		t.Fatalf("mixed upstreams: %v", err)
	}
}
