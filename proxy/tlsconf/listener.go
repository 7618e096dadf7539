package tlsconf

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Handshake failure reasons: the values of the reason label of the handshake error
// counter. A fixed, small set, so a hostile client cannot grow the series.
const (
	ReasonTimeout     = "timeout"        // not finished within the handshake timeout
	ReasonNotTLS      = "not_tls"        // plain HTTP (or anything else) on the TLS port
	ReasonEOF         = "eof"            // the client closed or reset mid-handshake
	ReasonVersion     = "version"        // no protocol version in common (a TLS 1.0 client)
	ReasonCipher      = "cipher"         // no cipher suite or key exchange in common
	ReasonALPN        = "alpn"           // the client speaks only protocols other than http/1.1
	ReasonClientAlert = "client_alert"   // the client refused the certificate (unknown CA, name, expiry)
	ReasonNoCert      = "no_certificate" // no certificate to serve
	ReasonOther       = "other"
)

// Reasons lists every reason, for metrics that should show zeros from the start.
var Reasons = [...]string{ReasonTimeout, ReasonNotTLS, ReasonEOF, ReasonVersion, ReasonCipher,
	ReasonALPN, ReasonClientAlert, ReasonNoCert, ReasonOther}

// Reason classifies a server-side handshake error into one of the Reasons.
func Reason(err error) string {
	var rh tls.RecordHeaderError
	var ne net.Error
	var op *net.OpError
	switch {
	case errors.As(err, &rh):
		return ReasonNotTLS
	case errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return ReasonEOF
	case errors.As(err, &op) && op.Op == "remote error":
		return ReasonClientAlert
	case errors.Is(err, errNoServerCert):
		return ReasonNoCert
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unsupported versions"), strings.Contains(msg, "protocol version"),
		strings.Contains(msg, "older than TLS 1.3"), strings.Contains(msg, "inappropriate protocol fallback"):
		return ReasonVersion
	case strings.Contains(msg, "cipher suite"), strings.Contains(msg, "key exchange"),
		strings.Contains(msg, "curve"), strings.Contains(msg, "point formats"):
		return ReasonCipher
	case strings.Contains(msg, "application protocol"):
		return ReasonALPN
	case strings.Contains(msg, "no certificates"):
		return ReasonNoCert
	}
	return ReasonOther
}

// ServerConfig returns the traffic listener's configuration: certificates from l
// chosen by SNI, minVersion (tls.VersionTLS12 or tls.VersionTLS13), ALPN http/1.1
// only (no HTTP/2 is spoken: a client that offers h2 and http/1.1 gets http/1.1),
// and Go's default cipher suites and key exchanges. The result may be shared by any
// number of listeners; session tickets are on.
func ServerConfig(l *Live, minVersion uint16) *tls.Config {
	if minVersion == 0 {
		minVersion = tls.VersionTLS12
	}
	return &tls.Config{
		GetCertificate: l.GetCertificate,
		MinVersion:     minVersion,
		NextProtos:     []string{"http/1.1"},
	}
}

// Listener accepts TLS connections on a TCP listener. Accept never handshakes, so
// a slow client cannot hold up the accept loop: the handshake runs on the
// connection's Handshake, or its first Read or Write, bounded by HandshakeTimeout
// on the raw connection, and its outcome goes to OnHandshake. Set the fields before
// the first Accept.
type Listener struct {
	net.Listener
	// Config returns the configuration for a new connection; it is called once per
	// connection, so a reload (minimum version) applies to the next one.
	Config func() *tls.Config
	// HandshakeTimeout bounds the whole handshake (reads and writes); 0: no bound.
	HandshakeTimeout time.Duration
	// OnHandshake, when set, receives each handshake's outcome: reason "" and a nil
	// error on success, else one of the Reasons and the error. It runs on the
	// connection's goroutine.
	OnHandshake func(reason string, err error)
}

// Accept returns the next connection as a *Conn, not yet handshaken.
func (ln *Listener) Accept() (net.Conn, error) {
	raw, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: tls.Server(raw, ln.Config()), raw: raw, ln: ln}, nil
}

// Conn is a server-side TLS connection from a Listener. It is a net.Conn whose
// Handshake is bounded and reported once; like tls.Conn, Read and Write may be
// called from two goroutines (a tunnel), but not Read from two.
type Conn struct {
	*tls.Conn
	raw  net.Conn
	ln   *Listener
	once sync.Once
	err  error
}

// Handshake runs the handshake once under the listener's timeout and returns its
// error (the same one on every later call). The raw connection's deadlines are
// cleared after it: the caller sets its own for what follows.
func (c *Conn) Handshake() error {
	c.once.Do(c.handshake)
	return c.err
}

func (c *Conn) handshake() {
	d := c.ln.HandshakeTimeout
	if d > 0 {
		c.raw.SetDeadline(time.Now().Add(d)) //nolint:errcheck // a dead conn fails the handshake
	}
	c.err = c.Conn.Handshake()
	if d > 0 && c.err == nil {
		c.raw.SetDeadline(time.Time{}) //nolint:errcheck
	}
	if c.err != nil {
		var rh tls.RecordHeaderError
		if errors.As(c.err, &rh) && rh.Conn != nil && looksLikeHTTP(rh.RecordHeader[:]) {
			// Someone typed http:// for https://: say so, as net/http does, in
			// plain text, since the other side speaks it.
			rh.Conn.SetWriteDeadline(time.Now().Add(time.Second)) //nolint:errcheck
			io.WriteString(rh.Conn, plainHTTPOnTLS)               //nolint:errcheck // closing anyway
		}
	}
	if f := c.ln.OnHandshake; f != nil {
		if c.err == nil {
			f("", nil)
		} else {
			f(Reason(c.err), c.err)
		}
	}
}

const plainHTTPOnTLS = "HTTP/1.0 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
	"shiftgate: this port speaks TLS: use https://\n"

func looksLikeHTTP(hdr []byte) bool {
	for _, m := range []string{"GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH", "CONNE"} {
		if bytes.HasPrefix(hdr, []byte(m)) {
			return true
		}
	}
	return false
}

// Read handshakes first (bounded), then reads.
func (c *Conn) Read(p []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// Write handshakes first (bounded), then writes.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// SetKeepAlive and SetKeepAlivePeriod reach the TCP connection under TLS.
func (c *Conn) SetKeepAlive(on bool) error {
	if k, ok := c.raw.(interface{ SetKeepAlive(bool) error }); ok {
		return k.SetKeepAlive(on)
	}
	return nil
}

// SetKeepAlivePeriod reaches the TCP connection under TLS.
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	if k, ok := c.raw.(interface{ SetKeepAlivePeriod(time.Duration) error }); ok {
		return k.SetKeepAlivePeriod(d)
	}
	return nil
}

// CloseWrite ends the TLS stream (close_notify) and half-closes the TCP connection,
// so the peer of a tunnel sees the end of one direction.
func (c *Conn) CloseWrite() error {
	if err := c.Handshake(); err != nil {
		return c.Close()
	}
	err := c.Conn.CloseWrite()
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		if err2 := cw.CloseWrite(); err == nil {
			err = err2
		}
	}
	return err
}
