package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
)

// wsBackend accepts upgrades and echoes (scriptedUpgrades on any other path than
// .../hang and .../fail).
func wsBackend(t *testing.T) string { return scriptedUpgrades(t) }

func openTunnel(t *testing.T, gw, user string) (net.Conn, *bufio.Reader) {
	t.Helper()
	return openTunnelWith(t, gw, user, "")
}

// openTunnelWith is openTunnel with extra header lines ("Name: v\r\n") in the upgrade.
func openTunnelWith(t *testing.T, gw, user, extra string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c := must(net.Dial("tcp", gw))
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "GET /api/feed/ws HTTP/1.1\r\nHost: x\r\nX-User-Id: "+user+"\r\nX-Request-Id: ws-"+user+"\r\n"+extra+"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade for %s: %v %v", user, err, resp)
	}
	// Like every answer, the 101 names the region chosen, and only the gateway says
	// what it did.
	if r := resp.Header.Values("X-Shift-Region"); len(r) != 1 || r[0] != "idc" && r[0] != "cloud" {
		t.Fatalf("upgrade for %s: 101 with X-Shift-Region %q, want the gateway's alone: %v", user, r, resp.Header)
	}
	for name := range resp.Header {
		if n := strings.ToLower(strings.ReplaceAll(name, "_", "-")); n == "x-shift-fallback" || n == "x-shift-shed" {
			t.Fatalf("upgrade for %s: the backend's %s reached the client: %v", user, name, resp.Header)
		}
	}
	if resp.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("upgrade for %s: 101 without its Upgrade field: %v", user, resp.Header)
	}
	if ids := resp.Header.Values("X-Request-Id"); len(ids) != 1 || ids[0] != "ws-"+user {
		t.Fatalf("upgrade for %s: 101 with request ids %q, want the client's", user, ids)
	}
	return c, br
}

// TestTunnelsFollowASwitch: after a split change, a tunnel whose user now belongs to
// the other region is closed once the grace period is over, so its client reconnects
// there; a tunnel whose user did not move stays open.
func TestTunnelsFollowASwitch(t *testing.T) {
	idc, cloud := wsBackend(t), wsBackend(t)
	cfg := strings.Replace(twoRegions, "timeouts: {", "timeouts: { tunnel_grace: 300ms,", 1)
	cfg = strings.Replace(cfg, "percent: 25\n    write_percent: 5\n", "percent: 0\n", 1)
	gw := startGateway(t, cfg, map[string]string{"IDC": idc, "CLOUD": cloud})
	// mover's bucket is below 5000, stayer's above: at 50 % only mover moves.
	var mover, stayer string
	for _, k := range []string{"u-1", "u-2", "u-3", "u-4", "u-5", "u-6", "u-7", "u-8"} {
		if b := routing.Bucket("cutover-2026", k); b < 5000 && mover == "" {
			mover = k
		} else if b >= 5000 && stayer == "" {
			stayer = k
		}
	}
	mc, mbr := openTunnel(t, gw.addr, mover)
	sc, sbr := openTunnel(t, gw.addr, stayer)
	ov := gw.srv.Overrides().Clone()
	ov.Routes["feed"] = conf.RouteOverride{PercentBP: 5000, WritePercentBP: 5000}
	switched := time.Now()
	if err := gw.srv.ApplyOverrides(ov); err != nil {
		t.Fatal(err)
	}
	// The mover's tunnel still works within the grace period...
	io.WriteString(mc, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(mbr, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("mover's tunnel during grace: %q %v", buf, err)
	}
	// ...then closes: by the gateway (not the test's own read deadline), and not
	// before the grace period is over (its timer starts after switched was taken).
	mc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := mbr.ReadByte(); err == nil {
		t.Fatal("mover's tunnel got data, want it closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("mover's tunnel is still open 10s after the switch, want it closed after the 300ms grace")
	}
	if took := time.Since(switched); took < 300*time.Millisecond {
		t.Errorf("mover's tunnel closed %v after the switch, before its 300ms grace", took)
	}
	// The stayer's tunnel is untouched.
	io.WriteString(sc, "pong")
	sc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(sbr, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("stayer's tunnel after the switch: %q %v", buf, err)
	}
}

// TestTrustedCallersTunnelsFollowASwitch: a trusted caller's tunnel that named no
// region follows its user's move like anyone's; one that named its region (affinity)
// stays. Before, the recheck read the X-Shift-Region the gateway itself had put in
// the upgrade's head as the caller's affinity, and no trusted caller's tunnel ever
// moved.
func TestTrustedCallersTunnelsFollowASwitch(t *testing.T) {
	idc, cloud := wsBackend(t), wsBackend(t)
	cfg := strings.Replace(twoRegions, "timeouts: {", "timeouts: { tunnel_grace: 100ms,", 1)
	cfg = strings.Replace(cfg, "percent: 25\n    write_percent: 5\n", "percent: 0\n", 1)
	cfg = strings.Replace(cfg, `trusted_callers: ["10.1.0.0/16"]`, `trusted_callers: ["127.0.0.0/8"]`, 1)
	gw := startGateway(t, cfg, map[string]string{"IDC": idc, "CLOUD": cloud})
	var mover string
	for i := 0; mover == ""; i++ {
		if k := "u-" + strconv.Itoa(i); routing.Bucket("cutover-2026", k) < 5000 {
			mover = k
		}
	}
	free, fbr := openTunnelWith(t, gw.addr, mover, "")
	pinned, pbr := openTunnelWith(t, gw.addr, mover, "X-Shift-Region: idc\r\n")
	ov := gw.srv.Overrides().Clone()
	ov.Routes["feed"] = conf.RouteOverride{PercentBP: 5000, WritePercentBP: 5000}
	if err := gw.srv.ApplyOverrides(ov); err != nil {
		t.Fatal(err)
	}
	free.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := fbr.ReadByte(); err == nil {
		t.Fatal("the moved user's tunnel got data, want it closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the moved user's tunnel is still open 10s after the switch")
	}
	// The pinned one is untouched: a round trip after the free one closed.
	io.WriteString(pinned, "pong")
	pinned.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(pbr, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("the pinned tunnel after the switch: %q %v", buf, err)
	}
}

// scriptedUpgrades answers each upgrade by its path's last segment: "hang" never
// answers, "fail" answers 500, anything else switches (with a request id of its own)
// and echoes.
func scriptedUpgrades(t *testing.T) string {
	t.Helper()
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				switch {
				case strings.HasSuffix(req.URL.Path, "/hang"):
					io.Copy(io.Discard, br) // until the gateway gives up
				case strings.HasSuffix(req.URL.Path, "/fail"):
					io.WriteString(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom")
				default:
					// A backend's own request id is replaced by the gateway's, and its
					// say-so of what the gateway did is dropped.
					io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nx-request-id: backend\r\n"+
						"X-Shift-Region: elsewhere\r\nx_shift_shed: site\r\nX-Shift-Fallback: cache\r\n\r\n")
					io.Copy(c, br)
				}
			}(c)
		}
	}()
	return ln.Addr().String()
}

// TestUpgradeAnswersJudged: an upgrade goes through the region's breaker as one
// exchange, dial and answer, like any request. A backend that never answers gets a
// 504 at timeouts.response_header (not response_header plus body, as before), and
// upgrades answered with a failure status open the breaker (before, only a failed
// dial counted, and an upgrade answered 500 was a success).
func TestUpgradeAnswersJudged(t *testing.T) {
	b := scriptedUpgrades(t)
	cfg := strings.Replace(twoRegions, "response_header: 2s, body: 5s", "response_header: 500ms, body: 30s", 1)
	cfg = strings.Replace(cfg, "percent: 25\n    write_percent: 5\n",
		"percent: 0\n    breaker: { min_requests: 5, failure_ratio: 0.5, window: 10s, open_for: 1m }\n", 1)
	if !strings.Contains(cfg, "body: 30s") || !strings.Contains(cfg, "min_requests: 5") {
		t.Fatal("the config edits did not apply")
	}
	gw := startGateway(t, cfg, map[string]string{"IDC": b, "CLOUD": b})
	upgrade := func(path string) (*http.Response, time.Duration) {
		t.Helper()
		c := must(net.Dial("tcp", gw.addr))
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		start := time.Now()
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\nX-User-Id: u-1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("upgrade %s: %v", path, err)
		}
		resp.Body.Close()
		return resp, time.Since(start)
	}
	// Failure statuses count: five 500s open the breaker (min_requests 5).
	for i := 0; i < 5; i++ {
		if resp, _ := upgrade("/api/feed/fail"); resp.StatusCode != 500 || resp.Header.Get("X-Shift-Region") != "idc" {
			t.Fatalf("upgrade answered 500: relayed %d (region %q), want the 500", resp.StatusCode, resp.Header.Get("X-Shift-Region"))
		}
	}
	if resp, _ := upgrade("/api/feed/ws"); resp.StatusCode != 503 {
		t.Fatalf("after five failed upgrades: %d, want 503 (circuit open)", resp.StatusCode)
	}
	// No answer (on another route, whose breaker is closed): a 504 well before the
	// 30s body timeout would have ended it.
	if resp, took := upgrade("/other/hang"); resp.StatusCode != 504 || took > 15*time.Second {
		t.Fatalf("upgrade to a backend that never answers: %d after %s, want 504 at the 500ms response_header", resp.StatusCode, took)
	}
}

// grantUpgradeUnhijacked calls the gateway's handler directly with an upgrade its
// backend grants, with no server loop to run the hijack: the state between the
// handler's return and the hijack, which is all there is when fasthttp never runs the
// hijack (the client's connection failed first). closed is closed when the backend
// sees the gateway close the switched upstream connection.
func grantUpgradeUnhijacked(t *testing.T, body string) (gw *gateway, closed chan struct{}) {
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	t.Cleanup(func() { ln.Close() })
	closed = make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(io.Discard, br) // until the gateway closes its end
		close(closed)
	}()
	cfg := strings.Replace(twoRegions, "body: 5s", "body: "+body, 1)
	gw = startGateway(t, cfg, map[string]string{"IDC": ln.Addr().String(), "CLOUD": ln.Addr().String()})
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader("GET /api/feed/ws HTTP/1.1\r\nHost: x\r\nX-User-Id: u-1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"))); err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, nil)
	gw.srv.handle(&ctx)
	if !ctx.Hijacked() {
		t.Fatalf("the upgrade was not granted: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	return gw, closed
}

// TestTunnelUpstreamClosedWhenHijackNeverRuns: when fasthttp never runs the hijack
// handler of a granted upgrade, the upstream connection, already switched, is closed
// after timeouts.body rather than left open until the backend closes it, and the
// tunnel leaves the open set.
func TestTunnelUpstreamClosedWhenHijackNeverRuns(t *testing.T) {
	gw, closed := grantUpgradeUnhijacked(t, "300ms")
	if n := gw.srv.tunnels.Len(); n != 1 {
		t.Fatalf("%d open tunnels before the hijack, want the granted one", n)
	}
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the switched upstream connection is still open 20s after the handler returned without a hijack")
	}
	waitUntil(t, "the orphaned tunnel to leave the open set", func() bool { return gw.srv.tunnels.Len() == 0 })
}

// TestTunnelShutdownBeforeHijack: a shutdown that comes between a granted upgrade's
// handler and its hijack closes the switched upstream connection at once (the tunnel
// is in the set Shutdown closes from the handler on). Before, it was added by the
// hijack and only the orphan timer, at timeouts.body, closed it.
func TestTunnelShutdownBeforeHijack(t *testing.T) {
	gw, closed := grantUpgradeUnhijacked(t, "1h")
	if err := gw.srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the switched upstream connection is still open 20s after the shutdown (its orphan timer is 1h)")
	}
}

// TestHeadUpgradeAnswerHasNoBody: a HEAD with Upgrade that the backend refuses with
// 200 and a Content-Length (no body, as a HEAD's answer has none) is relayed at once,
// and counts as the success it is. Before, the answer's body was waited for until
// timeouts.body, then answered 502 and counted against the region: four such requests
// from any client opened a healthy region's breaker.
func TestHeadUpgradeAnswerHasNoBody(t *testing.T) {
	b := startBackend(t, func(c net.Conn, r *recRequest) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
		if r.Req.Method != "HEAD" {
			io.WriteString(c, "hello")
		}
		return true
	})
	cfg := strings.Replace(twoRegions, "response_header: 2s, body: 5s", "response_header: 2s, body: 6s", 1)
	cfg = strings.Replace(cfg, "percent: 25\n    write_percent: 5\n",
		"percent: 0\n    breaker: { min_requests: 3, failure_ratio: 0.5, window: 1m, open_for: 1m }\n", 1)
	if !strings.Contains(cfg, "body: 6s") || !strings.Contains(cfg, "min_requests: 3") {
		t.Fatal("the config edits did not apply")
	}
	gw := startGateway(t, cfg, map[string]string{"IDC": b.addr, "CLOUD": b.addr})
	head := "HEAD /api/feed/x HTTP/1.1\r\nHost: gw.test\r\nX-User-Id: u-1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	for i := 0; i < 6; i++ {
		c := dialRaw(t, gw.addr)
		start := time.Now()
		resp, body := c.roundTrip("HEAD", head)
		took := time.Since(start)
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 5 {
			t.Fatalf("HEAD upgrade %d: %d, Content-Length %d, body %q; want the backend's 200 with Content-Length 5 and no body", i, resp.StatusCode, resp.ContentLength, body)
		}
		if took > 3*time.Second {
			t.Fatalf("HEAD upgrade %d answered after %s: the answer's absent body was waited for (timeouts.body 6s)", i, took)
		}
	}
	// The region is healthy: its breaker is closed, and an ordinary request goes through.
	c := dialRaw(t, gw.addr)
	if resp, _ := c.roundTrip("GET", get("/api/feed/y", "X-User-Id: u-1")); resp.StatusCode != 200 {
		t.Fatalf("after six HEAD upgrades: %d, want 200 (the breaker must stay closed)", resp.StatusCode)
	}
}

// TestRefusedUpgradeRelayedAndClosed: an upgrade the backend refuses, or does not
// answer well, gets the backend's answer as it is (no Content-Type the backend did
// not send, the gateway's HTTP/1.1) or the gateway's error, and then the client's
// connection closes. Before, removing the answer's Connection field cleared the
// close (as did the reset of an error answer), and the reset before the read dropped
// the server's no-default-Content-Type setting, so a text/plain was made up.
func TestRefusedUpgradeRelayedAndClosed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, reply string
		status      int
		body        string
	}{
		{"refused with 200", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnope", 200, "nope"},
		{"refused with 200, closing", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nnope", 200, "nope"},
		{"refused by HTTP/1.0", "HTTP/1.0 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope", 403, "nope"},
		{"closed without an answer", "", 502, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// An idle timeout past the client's wait: a connection left open fails
			// mustClose instead of closing at idle.
			b := startBackend(t, replyRaw(tc.reply, false))
			cfg := strings.Replace(hostileConf, "idle: 2s", "idle: 1m", 1)
			if cfg == hostileConf {
				t.Fatal("hostileConf's idle timeout changed: update this test")
			}
			gw := startGateway(t, cfg, map[string]string{"IDC": b.addr, "CLOUD": b.addr, "LIMITS": ""})
			c := dialRaw(t, gw.addr)
			c.send("GET /ws HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
			c.c.SetReadDeadline(time.Now().Add(ioWait))
			if line, err := c.br.Peek(len("HTTP/1.1 ")); err != nil || string(line) != "HTTP/1.1 " {
				t.Fatalf("status line begins %q (%v), want the gateway's HTTP/1.1", line, err)
			}
			resp, body := c.mustResponse("GET")
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d %q, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.body != "" {
				if string(body) != tc.body {
					t.Errorf("body %q, want the backend's %q", body, tc.body)
				}
				if ct, ok := resp.Header["Content-Type"]; ok {
					t.Errorf("Content-Type %q made up: the backend sent none", ct)
				}
			}
			c.mustClose()
		})
	}
}
