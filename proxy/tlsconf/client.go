package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// ClientOptions configure TLS to one region's upstreams.
type ClientOptions struct {
	// ServerName is the name sent (SNI) and verified; "" means the host of each
	// upstream address (an IP address is then verified against the certificate's
	// IP addresses).
	ServerName string
	// CAs verify the upstreams' certificates; nil means the system roots.
	CAs *x509.CertPool
	// Roots, when set, is a CA bundle in service that replaces CAs: each new
	// connection verifies against its latest good load.
	Roots *CABundle
	// Cert, when set, is presented to upstreams that ask (mutual TLS); it follows
	// reloads of its files.
	Cert *ClientCert
	// InsecureSkipVerify turns verification off. Never the default; the config
	// key that sets it says so in its name.
	InsecureSkipVerify bool
}

// Dialer opens TLS connections to upstreams: TCP through Dial, then the handshake,
// all within one timeout, with verification on unless the options turn it off.
// Sessions are resumed across connections to the same address, so a pool that
// reconnects pays a full handshake rarely. A Dialer is safe for concurrent use and
// holds no connections.
type Dialer struct {
	// Dial opens the TCP connection; the timeout is what is left of the whole.
	Dial func(addr string, timeout time.Duration) (net.Conn, error)

	mu      sync.Mutex
	base    *tls.Config
	configs map[string]*tls.Config // per address: ServerName filled in
	roots   *CABundle
	rootsIn *CAs // the load of roots that base verifies against
}

// NewDialer returns a Dialer for o that opens TCP connections with dial.
func NewDialer(o ClientOptions, dial func(addr string, timeout time.Duration) (net.Conn, error)) *Dialer {
	base := &tls.Config{
		ServerName:         o.ServerName,
		RootCAs:            o.CAs,
		InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // opt-in, loudly named in the config
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"http/1.1"},
		ClientSessionCache: tls.NewLRUClientSessionCache(256),
	}
	if o.Cert != nil {
		base.GetClientCertificate = o.Cert.Get
	}
	d := &Dialer{Dial: dial, base: base, configs: map[string]*tls.Config{}, roots: o.Roots}
	if o.Roots != nil {
		d.rootsIn = o.Roots.Current()
		base.RootCAs = d.rootsIn.Pool
	}
	return d
}

func (d *Dialer) config(addr string) *tls.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.roots != nil {
		if cur := d.roots.Current(); cur != d.rootsIn {
			// A reloaded bundle: new connections verify against it, and sessions
			// verified under the old one are not resumed.
			d.rootsIn = cur
			d.base = d.base.Clone()
			d.base.RootCAs = cur.Pool
			d.base.ClientSessionCache = tls.NewLRUClientSessionCache(256)
			clear(d.configs)
		}
	}
	if c := d.configs[addr]; c != nil {
		return c
	}
	c := d.base
	if c.ServerName == "" {
		c = c.Clone()
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		c.ServerName = strings.Trim(host, "[]")
	}
	d.configs[addr] = c
	return c
}

// HandshakeError is a failed TLS handshake with an upstream; nothing was sent on
// the connection. Reason is short and says what to fix.
type HandshakeError struct {
	Addr       string
	ServerName string
	Reason     string
	Err        error
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("TLS to upstream %s (server name %q): %s", e.Addr, e.ServerName, e.Reason)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// DialTimeout connects to addr and completes the handshake within timeout. The
// result is a *tls.Conn; a failed handshake is a *HandshakeError.
func (d *Dialer) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	raw, err := d.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	cfg := d.config(addr)
	c := tls.Client(raw, cfg)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &HandshakeError{Addr: addr, ServerName: cfg.ServerName, Reason: clientReason(err), Err: err}
	}
	return c, nil
}

// clientReason says in a few words why an upstream handshake failed.
func clientReason(err error) string {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var ve *tls.CertificateVerificationError
	var ne net.Error
	switch {
	case errors.As(err, &ua):
		return "certificate verification failed: signed by an unknown authority (set regions.R.tls.ca_file)"
	case errors.As(err, &hn):
		return "certificate verification failed: " + hn.Error() + " (set regions.R.tls.server_name)"
	case errors.As(err, &ci):
		return "certificate verification failed: " + ci.Error()
	case errors.As(err, &ve):
		return "certificate verification failed: " + ve.Err.Error()
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "handshake timed out"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return "the upstream refused the handshake: " + op.Err.Error() + " (a client certificate it does not accept?)"
	}
	return "handshake failed: " + err.Error()
}
