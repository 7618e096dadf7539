package tlsconf

import (
	"crypto/tls"
	"strings"
)

// Set is the traffic listener's certificates, chosen by the name a client asks for
// (SNI). It is immutable once built and safe for concurrent use; a reload builds a
// new Set and swaps it in whole.
type Set struct {
	certs []*Cert
	// exact and wild map a name (wild: the part after "*.") to the certificates
	// that cover it, in config order. Several may: an ECDSA and an RSA certificate
	// for the same names, each served to the clients that support it.
	exact map[string][]*Cert
	wild  map[string][]*Cert
}

// NewSet indexes certs by their names. The first certificate is the default: it is
// served to clients that send no name or a name no certificate covers, as nginx's
// default server does. certs is retained, not copied.
func NewSet(certs []*Cert) *Set {
	s := &Set{certs: certs, exact: map[string][]*Cert{}, wild: map[string][]*Cert{}}
	for _, c := range certs {
		for _, n := range c.Names {
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				s.wild[rest] = append(s.wild[rest], c)
			} else {
				s.exact[n] = append(s.exact[n], c)
			}
		}
	}
	return s
}

// Certs returns the certificates in config order; the caller must not modify them.
func (s *Set) Certs() []*Cert { return s.certs }

// Select returns the certificate for a client hello: one whose names cover the
// requested name exactly, else through a wildcard of one label, else the default.
// Among several that cover the name, the first the client supports (key type,
// signature algorithms) wins. It returns nil only for an empty set.
func (s *Set) Select(hello *tls.ClientHelloInfo) *Cert {
	if len(s.certs) == 0 {
		return nil
	}
	name := normalizeName(hello.ServerName)
	if name != "" {
		if c := pick(hello, s.exact[name]); c != nil {
			return c
		}
		if _, parent, ok := strings.Cut(name, "."); ok {
			if c := pick(hello, s.wild[parent]); c != nil {
				return c
			}
		}
	}
	if c := pick(hello, s.certs); c != nil {
		return c
	}
	return s.certs[0]
}

func pick(hello *tls.ClientHelloInfo, cands []*Cert) *Cert {
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0]
	}
	for _, c := range cands {
		if hello.SupportsCertificate(c.TLS) == nil {
			return c
		}
	}
	return cands[0]
}

// normalizeName lower-cases a server name and drops a trailing dot; a name already
// in that form (the usual case) is returned without a copy.
func normalizeName(n string) string {
	n = strings.TrimSuffix(n, ".")
	for i := 0; i < len(n); i++ {
		if c := n[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(n)
		}
	}
	return n
}
