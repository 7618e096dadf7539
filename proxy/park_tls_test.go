package proxy

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

// parkTLSGateway starts a gateway on yamlText with a TLS listener (certificate for
// gw.test) and both regions on backend, whose idle connections park after after; it
// returns the client config that trusts the certificate, whose CA is also in the
// gateway's directory as park-ca.pem.
func parkTLSGateway(t *testing.T, backend, yamlText string, after time.Duration) (*tlsGateway, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "park CA")
	ca.WritePair(t, dir, "gw", tlstest.Leaf{Names: []string{"gw.test"}})
	ca.WriteCA(t, dir, "park-ca.pem") // for clients in another process
	text := yamlText + "tls: { listen: 127.0.0.1:0, certs: [{ cert_file: gw.crt, key_file: gw.key }] }\n"
	g := startTLSGatewayOpt(t, dir, text, map[string]string{"IDC": backend, "CLOUD": backend}, Options{parkAfter: after})
	return g, &tls.Config{ServerName: "gw.test", RootCAs: ca.Pool()}
}

// servedTLSConn dials the gateway's TLS listener and has one GET for path answered on
// the connection, which then waits for its next request.
func servedTLSConn(t *testing.T, g *tlsGateway, cfg *tls.Config, path string) *rawConn {
	t.Helper()
	c := dialRawTLS(t, g.tlsAddr, cfg)
	if r, _ := c.roundTrip("GET", get(path)); r.StatusCode != 200 {
		t.Fatalf("GET %s over TLS: %d", path, r.StatusCode)
	}
	return c
}

// TestParkedTLSConnsServe: idle keep-alive TLS connections park like plain ones (no
// goroutine, buffer or context of fasthttp's), keep their TLS session, and go on
// serving on the same connection as TLS: a plain GET (forwarded as https), a 1 MiB
// streamed body, pipelined requests, requests whose records arrive in two parts. They then park again, and are never detached
// from their net.Conn, which holds the session, although the test hook detaches
// parked plain connections as soon as they park.
func TestParkedTLSConnsServe(t *testing.T) {
	b := startBackend(t, replyOK)
	g, cfg := parkTLSGateway(t, b.addr, stallConf, 20*time.Millisecond)
	const n = 8
	conns := make([]*rawConn, n)
	for i := range conns {
		conns[i] = servedTLSConn(t, g, cfg, "/first")
	}
	waitParkedOn(t, g.srv, n, 2)
	if d := g.srv.parking.Detached(); d != 0 {
		t.Fatalf("%d parked TLS connections detached from their session", d)
	}
	if got := g.metric("shiftgate_client_connections_parked"); got != fmt.Sprint(n) {
		t.Errorf("shiftgate_client_connections_parked %q, want %d", got, n)
	}

	for i := 2; i < n; i++ {
		r, body := conns[i].roundTrip("GET", get("/again", "X-Req-Id: again"))
		if r.StatusCode != 200 || !strings.Contains(string(body), "id=again") {
			t.Fatalf("request on parked TLS connection %d: %d %q", i, r.StatusCode, body)
		}
	}
	big := strings.Repeat("0123456789abcdef", 1<<16)
	conns[0].send(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n%s", len(big), big))
	if r, _ := conns[0].mustResponse("POST"); r.StatusCode != 200 {
		t.Fatalf("POST on a parked TLS connection: %d", r.StatusCode)
	}
	conns[1].send(get("/p1", "X-Req-Id: p1") + get("/p2", "X-Req-Id: p2"))
	for _, id := range []string{"p1", "p2"} {
		if r, body := conns[1].mustResponse("GET"); r.StatusCode != 200 || !strings.Contains(string(body), "id="+id) {
			t.Fatalf("pipelined %s on a parked TLS connection: %d %q", id, r.StatusCode, body)
		}
	}
	// A request whose record comes in two parts, the pause longer than the wait
	// before parking: the connection parks with half a record read (crypto/tls
	// keeps it), then reads on.
	raw, err := net.DialTimeout("tcp", g.tlsAddr, ioWait)
	if err != nil {
		t.Fatal(err)
	}
	split := tls.Client(splitWrites{Conn: raw, pause: 100 * time.Millisecond}, cfg)
	t.Cleanup(func() { split.Close() })
	sc := &rawConn{t: t, c: split, br: newReader(split)}
	for _, id := range []string{"split1", "split2"} {
		if r, body := sc.roundTrip("GET", get("/"+id, "X-Req-Id: "+id)); r.StatusCode != 200 || !strings.Contains(string(body), "id="+id) {
			t.Fatalf("request %s in two parts: %d %q", id, r.StatusCode, body)
		}
	}
	split.Close()

	sum := sha256.Sum256([]byte(big))
	found := false
	woken := 0
	for _, r := range b.requests() {
		found = found || (r.Req.URL.Path == "/upload" && r.BodyLen == int64(len(big)) && r.BodySum == sum)
		if r.Req.URL.Path == "/again" {
			woken++
			// Served as TLS after the wake-up, not as the connection under it.
			if p := r.Req.Header.Get("X-Forwarded-Proto"); p != "https" {
				t.Errorf("a request woken from a parked TLS connection was forwarded with X-Forwarded-Proto %q", p)
			}
		}
	}
	if !found {
		t.Error("the backend did not get the POST's body whole")
	}
	if woken != n-2 {
		t.Errorf("the backend got %d requests from woken connections, want %d", woken, n-2)
	}
	waitParkedOn(t, g.srv, n, 2)
	if d := g.srv.parking.Detached(); d != 0 {
		t.Fatalf("%d parked TLS connections detached from their session", d)
	}
}

// splitWrites sends each write in two halves, pause apart.
type splitWrites struct {
	net.Conn
	pause time.Duration
}

func (s splitWrites) Write(p []byte) (int, error) {
	if len(p) < 2 {
		return s.Conn.Write(p)
	}
	n, err := s.Conn.Write(p[:len(p)/2])
	if err != nil {
		return n, err
	}
	time.Sleep(s.pause)
	m, err := s.Conn.Write(p[len(p)/2:])
	return n + m, err
}

// TestParkedTLSConnCap: limits.max_conns counts parked TLS connections: past it a
// TLS connection is closed before its handshake; a parked one that closes frees a
// slot.
func TestParkedTLSConnCap(t *testing.T) {
	const limit = 4
	b := startBackend(t, replyOK)
	conf := strings.Replace(stallConf, "routes:", fmt.Sprintf("limits: { max_conns: %d }\nroutes:", limit), 1)
	g, cfg := parkTLSGateway(t, b.addr, conf, 10*time.Millisecond)
	held := make([]*rawConn, limit)
	for i := range held {
		held[i] = servedTLSConn(t, g, cfg, "/held")
	}
	waitParkedOn(t, g.srv, limit, 2)
	if tc, err := tls.DialWithDialer(&net.Dialer{Timeout: ioWait}, "tcp", g.tlsAddr, cfg); err == nil {
		tc.Close()
		t.Fatal("a TLS connection over the cap completed its handshake while the others were parked")
	}
	if got := g.metric("shiftgate_connections_refused_total"); got != "1" {
		t.Errorf("shiftgate_connections_refused_total %q, want 1", got)
	}
	held[0].c.Close()
	waitUntil(t, "a freed slot", func() bool { return servesTLS(t, g.tlsAddr, cfg) })
}

// tlsHolderEnv starts the test binary as a holder of TLS clients (holdTLSClients).
const tlsHolderEnv = "SHIFTGATE_TEST_TLS_HOLDER"

// holdTLSClients runs in a helper process: spec is "addr n ca-file". It opens n TLS
// connections to addr (server name gw.test), has one GET answered on each, prints
// "ready", then waits for a line on stdin: "again" has one more GET answered on each
// and prints "ok"; anything else, or the end of stdin, ends the process. Keeping the
// clients in a process of their own keeps their heap out of the gateway's figure.
func holdTLSClients(spec string) int {
	var addr, caFile string
	var n int
	if _, err := fmt.Sscan(spec, &addr, &n, &caFile); err != nil {
		fmt.Println("holder: bad spec:", err)
		return 2
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		fmt.Println("holder:", err)
		return 2
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{ServerName: "gw.test", RootCAs: roots}
	conns := make([]*tls.Conn, n)
	readers := make([]*bufio.Reader, n)
	getOn := func(i int, path string) error {
		c := conns[i]
		c.SetDeadline(time.Now().Add(ioWait)) //nolint:errcheck // a dead conn fails below
		if _, err := io.WriteString(c, get(path)); err != nil {
			return err
		}
		r, err := http.ReadResponse(readers[i], nil)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(r.Body)
		if err == nil && r.StatusCode != 200 {
			err = fmt.Errorf("GET %s: %d %q", path, r.StatusCode, body)
		}
		return err
	}
	for i := range conns {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: ioWait}, "tcp", addr, cfg)
		if err != nil {
			fmt.Println("holder: dial:", err)
			return 1
		}
		conns[i], readers[i] = c, bufio.NewReaderSize(c, 512)
		if err := getOn(i, "/idle"); err != nil {
			fmt.Println("holder:", err)
			return 1
		}
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || in.Text() != "again" {
		return 0
	}
	for i := range conns {
		if err := getOn(i, "/again"); err != nil {
			fmt.Printf("holder: connection %d: %v\n", i, err)
			return 1
		}
	}
	fmt.Println("ok")
	return 0
}

// TestParkedTLSIdleMemory: a parked TLS connection gives fasthttp's goroutine, read
// buffer and request context back, as a plain one does, and keeps its net.Conn and
// TLS session: the test measures the gateway's heap per parked TLS connection (the
// clients live in a helper process) and bounds it at 10 KiB (5.4–7.6 KiB measured: the
// session's two AES-GCM states, crypto/tls's record buffer as its handshake left it,
// the connection), where an idle unparked TLS connection holds 76.6 KB (and a
// goroutine with its stack). Each
// connection then still serves its next request.
func TestParkedTLSIdleMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory distorts heap figures")
	}
	const n = 300
	const limit = 10 << 10
	requireFreeFDs(t, 2*n+64)
	g, _ := parkTLSGateway(t, quietBackend(t), stallConf, 20*time.Millisecond)
	caFile := filepath.Join(g.dir, "park-ca.pem")
	holder := func(n int) (*exec.Cmd, io.WriteCloser, *bufio.Scanner) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %s", tlsHolderEnv, g.tlsAddr, n, caFile))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			in.Close()
			cmd.Process.Kill() //nolint:errcheck // it may have ended
			cmd.Wait()         //nolint:errcheck
		})
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "ready" {
			t.Fatalf("TLS client holder: %q %v", sc.Text(), sc.Err())
		}
		return cmd, in, sc
	}
	// Warm the pools and the TLS session cache with one connection, then measure.
	_, warmIn, _ := holder(1)
	waitParkedOn(t, g.srv, 1, 2)
	warmIn.Close()
	waitParkedOn(t, g.srv, 0, 2)
	before := steadyHeap(t, int64(n*limit/10))
	_, in, out := holder(n)
	waitParkedOn(t, g.srv, n, 2)
	per := float64(int64(collectedHeap())-int64(before)) / n
	t.Logf("heap per parked TLS connection: %.0f bytes", per)
	if per > limit {
		t.Errorf("each parked TLS connection holds %.0f bytes of heap, want at most %d", per, limit)
	}
	if _, err := io.WriteString(in, "again\n"); err != nil {
		t.Fatal(err)
	}
	if !out.Scan() || out.Text() != "ok" {
		t.Fatalf("requests on parked TLS connections: %q %v", out.Text(), out.Err())
	}
}
