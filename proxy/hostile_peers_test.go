package proxy

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/loadtest/freeport"
	"github.com/shiftgate/shiftgate/proxy/wire"
)

// TestHostilePeerComparison runs the smuggling cases and a few header cases through
// nginx and HAProxy, as installed, in front of the same kind of recording backend, and
// logs how each answers next to shiftgate. It runs only with SHIFTGATE_PEERS=1 (the
// peers are not part of the build); it checks that each peer served a plain request, so
// a broken setup does not pass for a comparison.
func TestHostilePeerComparison(t *testing.T) {
	if os.Getenv("SHIFTGATE_PEERS") == "" {
		t.Skip("set SHIFTGATE_PEERS=1 to compare with nginx and HAProxy")
	}
	type peer struct {
		name string
		addr string
		b    *recBackend
	}
	var peers []peer
	{
		gw, b := startHostile(t, replyOK, "")
		peers = append(peers, peer{"shiftgate", gw.addr, b})
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		b := startBackend(t, replyOK)
		addr := startNginx(t, p, b.addr)
		peers = append(peers, peer{"nginx", addr, b})
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		b := startBackend(t, replyOK)
		addr := startHAProxy(t, p, b.addr)
		peers = append(peers, peer{"haproxy", addr, b})
	}
	for _, p := range peers {
		c := dialRaw(t, p.addr)
		if r, _ := c.roundTrip("GET", get("/plain")); r.StatusCode != 200 {
			t.Fatalf("%s does not serve a plain request: %d\n%s", p.name, r.StatusCode, p.b.dump())
		}
	}
	cases := append([]smuggleCase(nil), smuggleCases...)
	for _, h := range []string{"X_Shift_Region: cloud", "x-shift-region: cloud", "Keep-Alive: 5", "Proxy: http://evil.test",
		"Connection: X-Secret\r\nX-Secret: 1", "Host: evil.test"} {
		cases = append(cases, smuggleCase{name: "header " + strings.ReplaceAll(h, "\r\n", " + "), raw: get("/h", h)})
	}
	cases = append(cases,
		smuggleCase{name: "request line 70 KiB", raw: "GET /" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\nHost: gw.test\r\n\r\n"},
		smuggleCase{name: "head 70 KiB", raw: headWithFields(70 << 10)},
		smuggleCase{name: "trailer X-Shift-Region", raw: post + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Shift-Region: cloud\r\n\r\n"},
	)
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-40s", "case")
	for _, p := range peers {
		fmt.Fprintf(&sb, " | %-22s", p.name)
	}
	sb.WriteString("\n")
	for _, tc := range cases {
		fmt.Fprintf(&sb, "%-40.40s", tc.name)
		for _, p := range peers {
			fmt.Fprintf(&sb, " | %-22s", peerOutcome(t, p.addr, p.b, tc.raw))
		}
		sb.WriteString("\n")
	}
	t.Log(sb.String())
}

// peerOutcome sends raw on a new connection and sums up what happened: the status (or
// "-" for none), "close" if the connection ended, and what reached the backend: nothing
// (no mark), "fwd" for requests, "X-S-R" if a foreign X-Shift-Region got through,
// "trailer" if trailer fields did, "hop" if a hop-by-hop (or Connection-named) field
// did, "hidden" if the hidden request did, "bad" if what arrived was malformed (or
// cut: a streamed head whose body broke).
func peerOutcome(t *testing.T, addr string, b *recBackend, raw string) string {
	before := len(b.requests())
	totals := b.totals()
	c := dialRaw(t, addr)
	go func() {
		c.c.SetWriteDeadline(time.Now().Add(ioWait))
		c.c.Write([]byte(raw))
	}()
	out := "-"
	if r, _, err := c.response(strings.SplitN(raw, " ", 2)[0]); err == nil {
		out = fmt.Sprint(r.StatusCode)
	}
	// Closed at once, after the answer: not the idle timeout of a peer.
	if ok, _ := c.closed(300 * time.Millisecond); ok {
		out += " close"
	}
	c.c.Close()
	time.Sleep(50 * time.Millisecond) // let the peer finish forwarding; a log, not a check
	reqs := b.requests()
	if len(reqs) > before {
		out += " fwd"
	}
	for _, r := range reqs[before:] {
		if r.Req.URL.Path == "/hidden" {
			out += " hidden"
		}
		for _, f := range headFields(r.Head) {
			if wire.FoldEqual([]byte(f[0]), "x-shift-region") && strings.Contains(f[0], "_") || f[1] == "cloud" {
				out += " X-S-R"
			}
		}
		if len(r.Trailer) > 0 {
			out += " trailer"
		}
		for _, name := range []string{"Keep-Alive", "Proxy", "X-Secret"} {
			if len(fieldsNamed(headFields(r.Head), name)) > 0 {
				out += " hop"
			}
		}
	}
	b.mu.Lock()
	for _, i := range growIdx(b, totals) {
		if rc := b.conns[i]; rc.bad != nil {
			out += " bad"
			rc.bad = nil
		}
	}
	b.mu.Unlock()
	return out
}

func growIdx(b *recBackend, totals []int64) []int {
	var out []int
	for i, c := range b.conns {
		if i >= len(totals) || c.total > totals[i] {
			out = append(out, i)
		}
	}
	return out
}

// freePort returns a loopback address nobody listens on (for a peer to bind).
func freePort(t *testing.T) string {
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// startPeer runs a peer proxy in the foreground until the test ends (killed by its
// PID) and waits until it accepts connections.
func startPeer(t *testing.T, addr string, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(ioWait)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start on %s: %v", name, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startNginx(t *testing.T, bin, backend string) string {
	dir := t.TempDir()
	addr := freePort(t)
	conf := fmt.Sprintf(`daemon off; master_process off; worker_processes 1;
error_log %[1]s/error.log; pid %[1]s/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fcgi;
  uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  upstream b { server %[2]s; keepalive 16; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Shift-Region idc;
    }
  }
}
`, dir, backend, addr)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startPeer(t, addr, bin, "-p", dir, "-c", path)
	return addr
}

func startHAProxy(t *testing.T, bin, backend string) string {
	dir := t.TempDir()
	addr := freePort(t)
	conf := fmt.Sprintf(`global
  maxconn 1000
defaults
  mode http
  timeout connect 1s
  timeout client 5s
  timeout server 5s
  timeout http-request 1s
  option http-keep-alive
  option forwardfor
frontend f
  bind %s
  http-request set-header X-Shift-Region idc
  default_backend b
backend b
  server s1 %s
`, addr, backend)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startPeer(t, addr, bin, "-db", "-f", path)
	return addr
}
