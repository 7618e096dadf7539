package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// The hostile-client tests that depend on the client connection, again over TLS:
// smuggling, head limits, slow and silent clients, the connection cap, and slow
// handshakes, which only TLS has.

// startHostileTLS is startHostile with a TLS listener; it returns the client
// configuration that trusts the gateway's certificate.
func startHostileTLS(t *testing.T, reply replyFunc, limits string) (*tlsGateway, *recBackend, *tls.Config) {
	t.Helper()
	b := startBackend(t, reply)
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "hostile CA")
	ca.WritePair(t, dir, "gw", tlstest.Leaf{Names: []string{"gw.test"}})
	limits += "\ntls: { listen: 127.0.0.1:0, certs: [{ cert_file: gw.crt, key_file: gw.key }] }\n"
	g := startTLSGateway(t, dir, hostileConf, map[string]string{"IDC": b.addr, "CLOUD": b.addr, "LIMITS": limits})
	return g, b, &tls.Config{ServerName: "gw.test", RootCAs: ca.Pool()}
}

func TestHostileTLSSmuggling(t *testing.T) {
	t.Parallel()
	g, b, cfg := startHostileTLS(t, replyOK, "")
	for _, tc := range smuggleCases {
		t.Run(tc.name, func(t *testing.T) {
			checkSmuggle(t, func() *rawConn { return dialRawTLS(t, g.tlsAddr, cfg) }, b, tc)
		})
	}
	for _, r := range b.requests() {
		if r.Req.URL.Path == "/hidden" {
			t.Errorf("the hidden request reached the backend on connection %d", r.Conn)
		}
	}
	b.mustBeClean(t)
}

func TestHostileTLSHeadLimits(t *testing.T) {
	t.Parallel()
	g, b, cfg := startHostileTLS(t, replyOK, "limits: { max_header_bytes: 8KiB }")
	for _, tc := range []struct {
		name   string
		raw    string
		status int
	}{
		{"request line over the limit", "GET /" + strings.Repeat("a", 9<<10) + " HTTP/1.1\r\nHost: gw.test\r\n\r\n", 414},
		{"head over the limit", headWithFields(10 << 10), 431},
		{"head under the limit", headWithFields(6 << 10), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bytesBefore := b.totalBytes()
			c := dialRawTLS(t, g.tlsAddr, cfg)
			go func() {
				c.c.SetWriteDeadline(time.Now().Add(ioWait))
				io.WriteString(c.c, tc.raw)
			}()
			r, body := c.mustResponse("GET")
			if r.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", r.StatusCode, body, tc.status)
			}
			if tc.status != 200 {
				c.mustClose()
				if n := b.totalBytes() - bytesBefore; n != 0 {
					t.Errorf("%d bytes reached the backend", n)
				}
			}
		})
	}
	b.mustBeClean(t)
}

// TestHostileTLSSlowHandshake opens connections that never finish a handshake:
// silent ones, and ones that trickle a ClientHello a byte every 100 ms. Each is cut
// within the request-head timeout (1s here, with slack for a loaded machine) and
// counted as a timeout, while ordinary TLS clients are served meanwhile.
func TestHostileTLSSlowHandshake(t *testing.T) {
	t.Parallel()
	g, _, cfg := startHostileTLS(t, replyOK, "")
	const n = 50
	const headTimeout = time.Second
	hello := clientHello(t)
	start := time.Now()
	closedAt := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", g.tlsAddr, ioWait)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Go(func() {
			if i%2 == 1 {
				// Trickle on the side; the read below sees the close.
				go func() {
					for k := 0; k < len(hello); k++ {
						c.SetWriteDeadline(time.Now().Add(time.Second))
						if _, err := c.Write(hello[k : k+1]); err != nil {
							return
						}
						time.Sleep(100 * time.Millisecond)
					}
				}()
			}
			c.SetReadDeadline(time.Now().Add(headTimeout + 4*time.Second))
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				closedAt[i] = -1
				return
			}
			closedAt[i] = time.Since(start)
		})
	}
	for i := 0; i < 10; i++ {
		c := dialRawTLS(t, g.tlsAddr, cfg)
		if r, _ := c.roundTrip("GET", get("/normal")); r.StatusCode != 200 {
			t.Fatalf("ordinary TLS request %d during slow handshakes: %d", i, r.StatusCode)
		}
		c.c.Close()
	}
	wg.Wait()
	var last time.Duration
	for i, d := range closedAt {
		if d < 0 {
			t.Fatalf("slow handshake %d still open 4s after the head timeout", i)
		}
		last = max(last, d)
	}
	t.Logf("%d slow handshakes all cut after %s (head timeout %s)", n, last, headTimeout)
	if last > headTimeout+2*time.Second {
		t.Errorf("last slow handshake cut after %s, want about %s", last, headTimeout)
	}
	waitUntil(t, "the timeouts to be counted", func() bool {
		return g.metric(`shiftgate_tls_handshake_errors_total{reason="timeout"}`) == fmt.Sprint(n)
	})
}

// clientHello returns the bytes of a real ClientHello.
func clientHello(t *testing.T) []byte {
	t.Helper()
	cl, sv := net.Pipe()
	out := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 4096)
		sv.SetReadDeadline(time.Now().Add(ioWait))
		n, _ := sv.Read(buf)
		out <- buf[:n]
		sv.Close()
	}()
	go tls.Client(cl, &tls.Config{ServerName: "gw.test"}).Handshake()
	return <-out
}

// TestHostileTLSSlowloris: after a quick handshake, a head trickled a byte at a
// time is cut by the request-head timeout, as on the plain listener.
func TestHostileTLSSlowloris(t *testing.T) {
	t.Parallel()
	g, b, cfg := startHostileTLS(t, replyOK, "")
	const n = 20
	var wg sync.WaitGroup
	start := time.Now()
	closedAt := make([]time.Duration, n)
	for i := 0; i < n; i++ {
		c := dialRawTLS(t, g.tlsAddr, cfg)
		stop := make(chan struct{})
		go func() {
			head := "GET / HTTP/1.1\r\nHost: gw.test\r\nX-Slow: "
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				ch := byte('a')
				if k < len(head) {
					ch = head[k]
				}
				c.c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.c.Write([]byte{ch}); err != nil {
					return
				}
			}
		}()
		wg.Go(func() {
			defer close(stop)
			c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.Copy(io.Discard, c.c) // a 408 and the end, or a reset
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				closedAt[i] = -1
				return
			}
			closedAt[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i, d := range closedAt {
		if d < 0 || d > 3*time.Second {
			t.Errorf("trickling TLS connection %d: closed after %v (-1: not at all), want about 1s", i, d)
		}
	}
	if b.numRequests() != 0 {
		t.Errorf("%d trickled requests reached the backend", b.numRequests())
	}
}

// TestHostileTLSConnCap: past the connection cap a TLS connection is closed before
// its handshake (no plain-text refusal is written into a TLS stream, and the accept
// loop never waits for a handshake); once a slot frees, TLS clients are served.
func TestHostileTLSConnCap(t *testing.T) {
	t.Parallel()
	const limit = 5
	g, _, cfg := startHostileTLS(t, replyOK, fmt.Sprintf("limits: { max_conns: %d }", limit))
	var held []*rawConn
	for i := 0; i < limit; i++ {
		c := dialRawTLS(t, g.tlsAddr, cfg)
		if r, _ := c.roundTrip("GET", get("/held")); r.StatusCode != 200 {
			t.Fatalf("connection %d under the cap: %d", i, r.StatusCode)
		}
		held = append(held, c)
	}
	_, err := tls.DialWithDialer(&net.Dialer{Timeout: ioWait}, "tcp", g.tlsAddr, cfg)
	if err == nil {
		t.Fatal("a TLS connection over the cap completed its handshake")
	}
	// The plain listener has its own cap: it still serves.
	c := dialRaw(t, g.addr)
	if r, _ := c.roundTrip("GET", get("/plain")); r.StatusCode != 200 {
		t.Errorf("plain listener while the TLS one is full: %d", r.StatusCode)
	}
	held[0].c.Close()
	waitUntil(t, "a freed slot", func() bool { return servesTLS(t, g.tlsAddr, cfg) })
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
