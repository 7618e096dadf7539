package conf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// TLS configures TLS on the traffic side: a listener of its own, beside the plain
// one, with certificates chosen by SNI.
type TLS struct {
	// Listen is the TLS listener's address, such as 0.0.0.0:443. Required.
	Listen string `yaml:"listen"`
	// Certs are the certificates served. A client gets the one whose names cover
	// the name it asks for (SNI); the first is the default for clients that ask
	// for none or for a name none covers. Files are watched and reloaded.
	Certs []TLSCert `yaml:"certs"`
	// MinVersion is "1.2" (the default) or "1.3".
	MinVersion string `yaml:"min_version"`

	// MinVersionID is MinVersion as crypto/tls numbers it.
	MinVersionID uint16 `yaml:"-"`
}

// TLSCert is one certificate (chain, leaf first) and its private key, PEM files;
// relative paths are resolved against the config file.
type TLSCert struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// RegionTLS configures TLS to a region's upstreams. Verification is on: the
// upstream's certificate must chain to CAFile (or the system roots) and cover
// ServerName.
type RegionTLS struct {
	// ServerName is sent (SNI) and verified; default: each upstream's host.
	ServerName string `yaml:"server_name"`
	// CAFile is a PEM bundle of the CAs to trust; default: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile, both or neither, are the client certificate presented
	// to upstreams that ask for one (mutual TLS). They are watched and reloaded.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerifyDangerous turns certificate verification off: anyone on
	// the path can then read and change the traffic. For a test bed only; it is
	// logged at every start and reload.
	InsecureSkipVerifyDangerous bool `yaml:"insecure_skip_verify_dangerous"`
}

// warnf records a problem that does not stop serving.
func (p *parser) warnf(c *Config, path, format string, args ...any) {
	c.Warnings = append(c.Warnings, &Error{File: p.file, Line: p.ix.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// checkTLS checks the traffic side's tls block; its certificate files must load.
func (p *parser) checkTLS(c *Config) {
	t := c.TLS
	if t == nil {
		return
	}
	if t.Listen == "" {
		p.errf("tls.listen", "the TLS listener needs an address, such as 0.0.0.0:443")
	} else {
		p.checkAddr("tls.listen", t.Listen)
		if _, port, _ := net.SplitHostPort(t.Listen); port != "0" && (t.Listen == c.Listen || t.Listen == c.Admin.Listen) {
			p.errf("tls.listen", "%s is already the plain or the admin listener", t.Listen)
		}
	}
	switch t.MinVersion {
	case "", "1.2":
		t.MinVersion, t.MinVersionID = "1.2", tls.VersionTLS12
	case "1.3":
		t.MinVersionID = tls.VersionTLS13
	default:
		p.errf("tls.min_version", `want "1.2" or "1.3", got %q`, t.MinVersion)
	}
	if len(t.Certs) == 0 {
		p.errf("tls.certs", "at least one certificate is needed: [{cert_file: ..., key_file: ...}]")
	}
	for i := range t.Certs {
		cp := fmt.Sprintf("tls.certs[%d]", i)
		p.checkKeyPair(c, cp, &t.Certs[i].CertFile, &t.Certs[i].KeyFile)
	}
}

// checkRegionTLS checks a region's tls block and turns https:// upstreams into
// host:port with TLS on.
func (p *parser) checkRegionTLS(c *Config, path string, r *Region) {
	https := 0
	for j, u := range r.Upstreams {
		rest, ok := strings.CutPrefix(u, "https://")
		if !ok {
			continue
		}
		https++
		rest = strings.TrimSuffix(rest, "/")
		if _, _, err := net.SplitHostPort(rest); err != nil {
			rest = net.JoinHostPort(strings.Trim(rest, "[]"), "443")
		}
		r.Upstreams[j] = rest
	}
	if https > 0 {
		if https != len(r.Upstreams) {
			p.errf(path+".upstreams", "mixes https:// and plain upstreams: a region speaks TLS to all its upstreams or to none")
		}
		if r.TLS == nil {
			r.TLS = &RegionTLS{}
		}
	}
	t := r.TLS
	if t == nil {
		return
	}
	tp := path + ".tls"
	if t.ServerName != "" && (strings.ContainsAny(t.ServerName, " /:@") || !isToken(t.ServerName)) {
		p.errf(tp+".server_name", "want a host name, got %q", t.ServerName)
	}
	if t.CAFile != "" {
		t.CAFile = p.resolve(c, t.CAFile)
		if t.InsecureSkipVerifyDangerous {
			p.errf(tp+".ca_file", "set ca_file or insecure_skip_verify_dangerous, not both")
		}
		if b, err := os.ReadFile(t.CAFile); err != nil {
			p.errf(tp+".ca_file", "%v", err)
		} else if _, err := ParseCABundle(b); err != nil {
			p.errf(tp+".ca_file", "%s: %v", t.CAFile, err)
		}
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "" || t.KeyFile == "":
		p.errf(tp, "a client certificate needs both cert_file and key_file")
	default:
		p.checkKeyPair(c, tp, &t.CertFile, &t.KeyFile)
	}
}

// checkKeyPair resolves and loads a certificate and its key: both readable, the key
// matching the certificate; a certificate outside its validity is a warning.
func (p *parser) checkKeyPair(c *Config, path string, certFile, keyFile *string) {
	if *certFile == "" {
		p.errf(path+".cert_file", "a PEM certificate file is needed")
	}
	if *keyFile == "" {
		p.errf(path+".key_file", "a PEM private key file is needed")
	}
	if *certFile == "" || *keyFile == "" {
		return
	}
	*certFile, *keyFile = p.resolve(c, *certFile), p.resolve(c, *keyFile)
	certPEM, err := os.ReadFile(*certFile)
	if err != nil {
		p.errf(path+".cert_file", "%v", err)
		return
	}
	keyPEM, err := os.ReadFile(*keyFile)
	if err != nil {
		p.errf(path+".key_file", "%v", err)
		return
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "tls: ")
		switch {
		case strings.Contains(msg, "does not match"):
			p.errf(path+".key_file", "%s: private key does not match the certificate in %s", *keyFile, *certFile)
		case strings.Contains(msg, "certificate"):
			p.errf(path+".cert_file", "%s: %s", *certFile, msg)
		default:
			p.errf(path+".key_file", "%s: %s", *keyFile, msg)
		}
		return
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			p.errf(path+".cert_file", "%s: %v", *certFile, err)
			return
		}
	}
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		p.warnf(c, path+".cert_file", "%s: certificate expired at %s", *certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		p.warnf(c, path+".cert_file", "%s: certificate is not valid before %s", *certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
}

// ParseCABundle returns the certificates of a PEM CA bundle, or why it cannot be
// used: every CERTIFICATE block must parse, none may be cut short (a file half
// written), and one at least must be there; other PEM blocks are skipped.
// x509.CertPool.AppendCertsFromPEM would skip bad blocks quietly and trust fewer CAs
// than the file names. The config check and the gateway's live reload of bundles
// (proxy/tlsconf) both read bundles with it.
func ParseCABundle(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %v", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	switch {
	case bytes.Contains(b, []byte("-----BEGIN")):
		return nil, fmt.Errorf("a PEM block after certificate %d is cut short or malformed (a file half written?)", len(certs))
	case len(certs) == 0:
		return nil, errors.New("no PEM CERTIFICATE block that parses")
	}
	return certs, nil
}
