// Package tlsconf is shiftgate's TLS: certificates loaded from PEM files and checked
// (key matches, expiry), a set of them chosen by SNI, reloaded from disk when their
// files change while the last good one keeps serving, a listener that bounds and
// counts handshakes, and the client side for upstreams (server name, CA bundle,
// client certificate, verification). It imports only the standard library, xxhash
// and fsnotify: what to load and where to report is its callers' to say.
package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Pair names a certificate (chain) and its private key on disk, both PEM. It is a
// comparable value: the identity of a certificate across reloads.
type Pair struct {
	CertFile string
	KeyFile  string
}

// Cert is one loaded certificate. It is immutable once Load returns it and may be
// shared by any number of goroutines.
type Cert struct {
	Pair
	// TLS is the chain and key as crypto/tls serves them; TLS.Leaf is parsed.
	TLS *tls.Certificate
	// Names are the DNS names the leaf is valid for, lower case (its SANs, or its
	// common name when it has none).
	Names []string
	// NotBefore and NotAfter bound the leaf's validity.
	NotBefore, NotAfter time.Time
	// hash identifies the bytes it was loaded from, so a reload of unchanged files
	// is skipped.
	hash uint64
}

// Name is the certificate's primary name: its first DNS name, else its subject's
// common name, else its serial number. Metrics and status label certificates by it.
func (c *Cert) Name() string {
	if len(c.Names) > 0 {
		return c.Names[0]
	}
	if cn := c.TLS.Leaf.Subject.CommonName; cn != "" {
		return cn
	}
	return "serial:" + c.TLS.Leaf.SerialNumber.String()
}

// LoadError says which file of a pair could not be loaded and why.
type LoadError struct {
	File   string
	Reason string
}

func (e *LoadError) Error() string { return e.File + ": " + e.Reason }

// Load reads and checks a pair: both files readable, PEM that parses, a key that
// matches the leaf certificate. It does not refuse an expired certificate (a server
// whose renewal failed still serves its old one rather than nothing); Check does.
// Errors are *LoadError.
func Load(p Pair) (*Cert, error) {
	certPEM, err := os.ReadFile(p.CertFile)
	if err != nil {
		return nil, &LoadError{File: p.CertFile, Reason: readReason(err)}
	}
	keyPEM, err := os.ReadFile(p.KeyFile)
	if err != nil {
		return nil, &LoadError{File: p.KeyFile, Reason: readReason(err)}
	}
	return parse(p, certPEM, keyPEM)
}

func readReason(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func parse(p Pair, certPEM, keyPEM []byte) (*Cert, error) {
	if !bytes.Contains(certPEM, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, &LoadError{File: p.CertFile, Reason: "no PEM CERTIFICATE block"}
	}
	if bytes.Contains(certPEM, []byte("PRIVATE KEY-----")) && p.CertFile != p.KeyFile {
		return nil, &LoadError{File: p.CertFile, Reason: "holds a private key: keep keys out of certificate files"}
	}
	if !bytes.Contains(keyPEM, []byte("PRIVATE KEY-----")) {
		return nil, &LoadError{File: p.KeyFile, Reason: "no PEM PRIVATE KEY block"}
	}
	tc, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The usual cause in operations: a renewal wrote the new certificate and
		// not yet its key (or the reverse).
		msg := strings.TrimPrefix(err.Error(), "tls: ")
		switch {
		case strings.Contains(msg, "does not match"):
			return nil, &LoadError{File: p.KeyFile, Reason: "private key does not match the certificate in " + p.CertFile}
		case strings.Contains(msg, "certificate"):
			return nil, &LoadError{File: p.CertFile, Reason: msg}
		}
		return nil, &LoadError{File: p.KeyFile, Reason: msg}
	}
	leaf := tc.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(tc.Certificate[0]); err != nil {
			return nil, &LoadError{File: p.CertFile, Reason: err.Error()}
		}
		tc.Leaf = leaf
	}
	c := &Cert{Pair: p, TLS: &tc, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter,
		hash: xxhash.Sum64(certPEM) ^ xxhash.Sum64(keyPEM)*31}
	for _, n := range leaf.DNSNames {
		c.Names = append(c.Names, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	if len(c.Names) == 0 && leaf.Subject.CommonName != "" && len(leaf.IPAddresses) == 0 {
		c.Names = append(c.Names, strings.ToLower(leaf.Subject.CommonName))
	}
	for _, ip := range leaf.IPAddresses {
		c.Names = append(c.Names, ip.String())
	}
	return c, nil
}

// Check is Load that also refuses a certificate outside its validity at now: not
// yet valid, or expired. It is what `shiftgate check` runs.
func Check(p Pair, now time.Time) (*Cert, error) {
	c, err := Load(p)
	if err != nil {
		return nil, err
	}
	if err := c.CheckValidity(now); err != nil {
		return nil, err
	}
	return c, nil
}

// CheckValidity returns a *LoadError when now is outside the certificate's validity.
func (c *Cert) CheckValidity(now time.Time) error {
	switch {
	case now.After(c.NotAfter):
		return &LoadError{File: c.CertFile, Reason: fmt.Sprintf("certificate for %s expired at %s", c.Name(), c.NotAfter.UTC().Format(time.RFC3339))}
	case now.Before(c.NotBefore):
		return &LoadError{File: c.CertFile, Reason: fmt.Sprintf("certificate for %s is not valid before %s", c.Name(), c.NotBefore.UTC().Format(time.RFC3339))}
	}
	return nil
}
