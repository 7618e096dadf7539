package loadtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// TLSOptions configure the client side of an https:// target. The zero value
// verifies the server against the system roots with Go's default key exchanges.
type TLSOptions struct {
	// CAFile is a PEM bundle to verify the server with, instead of the system roots.
	CAFile string
	// ServerName is sent (SNI) and verified; "" means the URL's host.
	ServerName string
	// InsecureSkipVerify accepts any certificate (a bench against a self-signed one).
	InsecureSkipVerify bool
	// Curve pins the key exchange: "" for Go's default preferences (which offer
	// the post-quantum hybrid first), "x25519" or "p256". A side-by-side bench pins
	// one so every server does the same work.
	Curve string
	// Resume lets new connections resume earlier sessions; off, every new
	// connection is a full handshake.
	Resume bool
}

// tlsDialer opens TLS connections for a run and remembers what the first one
// negotiated. Safe for concurrent use.
type tlsDialer struct {
	cfg     *tls.Config
	timeout time.Duration
	once    sync.Once
	state   atomic.Pointer[tls.ConnectionState]
	dials   atomic.Int64
}

func newTLSDialer(o TLSOptions, t target, timeout time.Duration) (*tlsDialer, error) {
	cfg := &tls.Config{
		ServerName:         o.ServerName,
		InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // opt-in, for benches
		NextProtos:         []string{"http/1.1"},
	}
	if cfg.ServerName == "" {
		cfg.ServerName = t.sni
	}
	if cfg.ServerName == "" {
		// An IP address: verified against the certificate's IP addresses (Go
		// sends no SNI for it).
		cfg.ServerName, _, _ = net.SplitHostPort(t.dial)
	}
	if o.CAFile != "" {
		b, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("loadtest: -cacert: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("loadtest: -cacert %s: no PEM certificate", o.CAFile)
		}
	}
	switch o.Curve {
	case "":
	case "x25519":
		cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	case "p256":
		cfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
	default:
		return nil, fmt.Errorf("loadtest: tls curve: want x25519 or p256, got %q", o.Curve)
	}
	if o.Resume {
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1024)
	}
	return &tlsDialer{cfg: cfg, timeout: timeout}, nil
}

// dial connects and completes the handshake within the run's timeout.
func (d *tlsDialer) dial(addr string) (net.Conn, error) {
	raw, err := fasthttp.DialTimeout(addr, d.timeout)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, d.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	d.dials.Add(1)
	d.once.Do(func() {
		st := c.ConnectionState()
		d.state.Store(&st)
	})
	return c, nil
}

// describe says what the first connection negotiated: version, cipher suite, key
// exchange and protocol, so a bench can show every server did the same work.
func (d *tlsDialer) describe() string {
	st := d.state.Load()
	if st == nil {
		return ""
	}
	return fmt.Sprintf("%s %s %s alpn=%s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite),
		st.CurveID, st.NegotiatedProtocol)
}
