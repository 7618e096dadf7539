package tlsconf

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// ioWait bounds every wait of a test, so a bug fails it rather than hanging it.
const ioWait = 10 * time.Second

// echoListener serves a Listener on loopback: each connection echoes one line.
// It returns the address and a function listing the handshake outcomes so far.
func echoListener(t *testing.T, l *Live, minVersion uint16, timeout time.Duration) (string, func() []string) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var outcomes []string
	cfg := ServerConfig(l, minVersion)
	ln := &Listener{Listener: raw, Config: func() *tls.Config { return cfg }, HandshakeTimeout: timeout,
		OnHandshake: func(reason string, err error) {
			mu.Lock()
			if reason == "" {
				reason = "ok"
			}
			outcomes = append(outcomes, reason)
			mu.Unlock()
		}}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioWait))
				buf := make([]byte, 64)
				n, err := c.Read(buf)
				if err == nil {
					c.Write(buf[:n])
				}
			})
		}
	})
	return raw.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), outcomes...)
	}
}

func TestListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	var a, b Pair
	a.CertFile, a.KeyFile = ca.WritePair(t, dir, "a", tlstest.Leaf{Names: []string{"a.example"}})
	b.CertFile, b.KeyFile = ca.WritePair(t, dir, "b", tlstest.Leaf{Names: []string{"b.example"}})
	l := NewLive()
	must(t, l.SetServer([]Pair{a, b}))
	addr, outcomes := echoListener(t, l, tls.VersionTLS12, 500*time.Millisecond)

	dial := func(cfg *tls.Config) (*tls.Conn, error) {
		d := &net.Dialer{Timeout: ioWait}
		c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err == nil {
			c.SetDeadline(time.Now().Add(ioWait))
		}
		return c, err
	}
	// SNI picks the certificate; verification with the CA succeeds; ALPN says
	// http/1.1 even to a client that prefers h2.
	for _, name := range []string{"a.example", "b.example"} {
		c, err := dial(&tls.Config{ServerName: name, RootCAs: ca.Pool(), NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		st := c.ConnectionState()
		if st.PeerCertificates[0].DNSNames[0] != name || st.NegotiatedProtocol != "http/1.1" {
			t.Errorf("%s: got certificate %v, protocol %q", name, st.PeerCertificates[0].DNSNames, st.NegotiatedProtocol)
		}
		io.WriteString(c, "ping\n")
		if got, _ := io.ReadAll(c); string(got) != "ping\n" {
			t.Errorf("%s: echo %q", name, got)
		}
		c.Close()
	}

	for _, tc := range []struct {
		name   string
		client func() error
		reason string
	}{
		{"TLS 1.1 client", func() error {
			_, err := dial(&tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10})
			return err
		}, ReasonVersion},
		{"h2-only client", func() error {
			_, err := dial(&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
			return err
		}, ReasonALPN},
		{"client that does not trust the certificate", func() error {
			_, err := dial(&tls.Config{ServerName: "a.example"})
			return err
		}, ReasonClientAlert},
		{"plain HTTP", func() error {
			c, err := net.DialTimeout("tcp", addr, ioWait)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(ioWait))
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
			got, _ := io.ReadAll(c)
			if !strings.HasPrefix(string(got), "HTTP/1.0 400 ") || !strings.Contains(string(got), "https://") {
				t.Errorf("plain HTTP got %q", got)
			}
			return nil
		}, ReasonNotTLS},
		{"silent client", func() error {
			c, err := net.DialTimeout("tcp", addr, ioWait)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(ioWait))
			// The server gives up after its handshake timeout (0.5s) and closes.
			_, err = io.ReadAll(c)
			if err != nil {
				t.Errorf("silent client: the server did not close: %v", err)
			}
			return nil
		}, ReasonTimeout},
		{"client that leaves mid-handshake", func() error {
			c, err := net.DialTimeout("tcp", addr, ioWait)
			if err != nil {
				return err
			}
			io.WriteString(c, "\x16\x03\x01\x00\x80") // a record header, then nothing
			c.Close()
			return nil
		}, ReasonEOF},
	} {
		before := len(outcomes())
		tc.client()
		waitFor(t, ioWait, tc.name+"'s handshake outcome", func() bool { return len(outcomes()) > before })
		if got := outcomes()[before]; got != tc.reason {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.reason)
		}
	}
}

// TestListenerSlowHandshake trickles a ClientHello a byte at a time: the handshake
// timeout bounds the whole handshake, not each read, so the server gives up.
func TestListenerSlowHandshake(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	var a Pair
	a.CertFile, a.KeyFile = ca.WritePair(t, dir, "a", tlstest.Leaf{Names: []string{"a.example"}})
	l := NewLive()
	must(t, l.SetServer([]Pair{a}))
	addr, outcomes := echoListener(t, l, tls.VersionTLS12, 300*time.Millisecond)

	// Capture a real ClientHello to trickle.
	hello := make(chan []byte, 1)
	cl, sv := net.Pipe()
	go func() {
		buf := make([]byte, 4096)
		sv.SetReadDeadline(time.Now().Add(ioWait))
		n, _ := sv.Read(buf)
		hello <- buf[:n]
		sv.Close()
	}()
	go tls.Client(cl, &tls.Config{ServerName: "a.example"}).Handshake()
	raw := <-hello

	c, err := net.DialTimeout("tcp", addr, ioWait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed := make(chan struct{})
	go func() {
		c.SetReadDeadline(time.Now().Add(ioWait))
		io.Copy(io.Discard, c)
		close(closed)
	}()
	for i := 0; i < len(raw); i++ {
		select {
		case <-closed:
			i = len(raw)
			continue
		default:
		}
		c.Write(raw[i : i+1])
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-closed:
	case <-time.After(ioWait):
		t.Fatal("a trickling handshake was never cut")
	}
	waitFor(t, ioWait, "the outcome", func() bool { return len(outcomes()) > 0 })
	if got := outcomes()[0]; got != ReasonTimeout {
		t.Errorf("reason %q, want timeout", got)
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{io.EOF, ReasonEOF},
		{errorString("tls: client offered only unsupported versions: [302]"), ReasonVersion},
		{errorString("tls: no cipher suite supported by both client and server; client offered: [5]"), ReasonCipher},
		{errorString("tls: client requested unsupported application protocols ([\"h2\"])"), ReasonALPN},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, ReasonNotTLS},
		{&net.OpError{Op: "remote error", Err: errorString("tls: bad certificate")}, ReasonClientAlert},
		{errNoServerCert, ReasonNoCert},
		{errorString("something new"), ReasonOther},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
