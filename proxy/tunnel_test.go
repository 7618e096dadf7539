package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
)

// wsBackend accepts upgrades and echoes.
func wsBackend(t *testing.T) string {
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
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				// A backend's own request id is replaced by the gateway's.
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nx-request-id: backend\r\n\r\n")
				io.Copy(c, br)
			}(c)
		}
	}()
	return ln.Addr().String()
}

func openTunnel(t *testing.T, gw, user string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c := must(net.Dial("tcp", gw))
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, "GET /api/feed/ws HTTP/1.1\r\nHost: x\r\nX-User-Id: "+user+"\r\nX-Request-Id: ws-"+user+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade for %s: %v %v", user, err, resp)
	}
	// Like every answer, the 101 names the region chosen.
	if r := resp.Header.Get("X-Shift-Region"); r != "idc" && r != "cloud" {
		t.Fatalf("upgrade for %s: 101 without X-Shift-Region (%q): %v", user, r, resp.Header)
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
	// ...then closes.
	mc.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := mbr.ReadByte(); err == nil {
		t.Fatal("mover's tunnel got data, want it closed")
	}
	if took := time.Since(switched); took < 250*time.Millisecond || took > 2*time.Second {
		t.Errorf("mover's tunnel closed %v after the switch, want about the 300ms grace", took)
	}
	// The stayer's tunnel is untouched.
	io.WriteString(sc, "pong")
	sc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(sbr, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("stayer's tunnel after the switch: %q %v", buf, err)
	}
}
