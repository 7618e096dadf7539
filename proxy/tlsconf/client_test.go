package tlsconf

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// upstream is a TLS echo server with cfg on loopback.
func upstream(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioWait))
				buf := make([]byte, 64)
				if n, err := c.Read(buf); err == nil {
					c.Write(buf[:n])
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func tcpDial(addr string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, timeout)
}

func TestDialer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "upstream CA")
	other := tlstest.NewCA(t, "some other CA")
	clientCA := tlstest.NewCA(t, "client CA")
	srv := ca.TLSCert(t, tlstest.Leaf{Names: []string{"api.internal", "127.0.0.1"}})
	plainAddr := upstream(t, &tls.Config{Certificates: []tls.Certificate{srv}})
	mtlsAddr := upstream(t, &tls.Config{Certificates: []tls.Certificate{srv}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCA.Pool()})

	var cp Pair
	cp.CertFile, cp.KeyFile = clientCA.WritePair(t, dir, "client", tlstest.Leaf{Names: []string{"gateway"}, Client: true})
	l := NewLive()
	clients, err := l.AddClients([]Pair{cp})
	if err != nil {
		t.Fatal(err)
	}

	echo := func(c net.Conn) error {
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioWait))
		if _, err := io.WriteString(c, "hi"); err != nil {
			return err
		}
		b, err := io.ReadAll(c)
		if err == nil && string(b) != "hi" {
			err = errors.New("echo: " + string(b))
		}
		return err
	}
	for _, tc := range []struct {
		name    string
		addr    string
		o       ClientOptions
		wantErr string // in the HandshakeError's reason, or "" for success
	}{
		{"verified by IP address", plainAddr, ClientOptions{CAs: ca.Pool()}, ""},
		{"verified by server name", plainAddr, ClientOptions{CAs: ca.Pool(), ServerName: "api.internal"}, ""},
		{"unknown CA", plainAddr, ClientOptions{CAs: other.Pool()}, "unknown authority"},
		{"system roots do not know a private CA", plainAddr, ClientOptions{}, "unknown authority"},
		{"wrong server name", plainAddr, ClientOptions{CAs: ca.Pool(), ServerName: "db.internal"}, "server_name"},
		{"verification off", plainAddr, ClientOptions{InsecureSkipVerify: true}, ""},
		{"mutual TLS", mtlsAddr, ClientOptions{CAs: ca.Pool(), Cert: clients[0]}, ""},
	} {
		d := NewDialer(tc.o, tcpDial)
		c, err := d.DialTimeout(tc.addr, ioWait)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if err := echo(c); err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var he *HandshakeError
		if !errors.As(err, &he) || !strings.Contains(he.Reason, tc.wantErr) || !strings.Contains(he.Error(), tc.addr) {
			t.Errorf("%s: got %v, want a handshake error with %q", tc.name, err, tc.wantErr)
		}
	}

	// Without a client certificate, a server that requires one refuses: in TLS 1.3
	// the client learns it on its first read.
	d := NewDialer(ClientOptions{CAs: ca.Pool()}, tcpDial)
	c, err := d.DialTimeout(mtlsAddr, ioWait)
	if err == nil {
		err = echo(c)
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("mutual TLS without a client certificate: %v", err)
	}
}
