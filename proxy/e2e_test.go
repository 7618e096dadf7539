package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/loadtest/freeport"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/routing"
)

const exampleDir = "../../shared/examples"

// copyExample copies the reference config and its files into a temp dir, so its
// relative state_dir lands there and not in the shared folder.
func copyExample(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"cutover.yaml", "feed-fallback.json"} {
		b, err := os.ReadFile(filepath.Join(exampleDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "cutover.yaml")
}

// copyExampleFreePorts is copyExample with the upstream addresses the reference
// config names (127.0.0.1:9001, :9011, :9002) moved to free ports, so that two test
// runs on one machine do not fight over them; addr maps a named address to its
// stand-in's.
func copyExampleFreePorts(t *testing.T) (path string, addr func(string) string) {
	t.Helper()
	path = copyExample(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	moved := map[string]string{}
	text := string(b)
	for _, a := range []string{"127.0.0.1:9001", "127.0.0.1:9011", "127.0.0.1:9002"} {
		moved[a] = must(freeport.Addr())
		text = strings.ReplaceAll(text, `"`+a+`"`, `"`+moved[a]+`"`)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, func(a string) string { return moved[a] }
}

// get sends one request through the gateway and returns the response's region header,
// the region that served it and the status.
func doGet(t testing.TB, c *fasthttp.HostClient, method, path string, hdr ...string) (region, served string, status int, body string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://gw" + path)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return string(resp.Header.Peek("X-Shift-Region")), string(resp.Header.Peek(standin.RegionHeader)), resp.StatusCode(), string(resp.Body())
}

// TestExampleConfigEndToEnd runs the reference config as it is, next to stand-ins on
// the three addresses it names, and checks every user lands where the contract says.
func TestExampleConfigEndToEnd(t *testing.T) {
	path, addr := copyExampleFreePorts(t)
	for _, r := range []struct{ name, addr string }{{"idc", "127.0.0.1:9001"}, {"idc", "127.0.0.1:9011"}, {"cloud", "127.0.0.1:9002"}} {
		s, err := standin.Start(r.name, addr(r.addr), standin.Options{})
		if err != nil {
			t.Fatalf("stand-in %s on %s: %v (is the port taken?)", r.name, r.addr, err)
		}
		t.Cleanup(func() { s.Close() })
	}
	cfg, err := conf.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, Options{Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ln := must(net.Listen("tcp", "127.0.0.1:0"))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(5 * time.Second) })
	c := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 16}

	const users = 4000
	cloud := 0
	for u := 1; u <= users; u++ {
		key := fmt.Sprintf("u-%d", u)
		want := "idc"
		if routing.Bucket("cutover-2026", key) < 2500 {
			want = "cloud"
			cloud++
		}
		region, served, status, _ := doGet(t, c, "GET", "/api/feed?page=1", "X-User-Id", key)
		if status != 200 || region != want || served != want {
			t.Fatalf("user %s: status %d, X-Shift-Region %q, served by %q; contract says %q", key, status, region, served, want)
		}
	}
	if share := float64(cloud) / users; share < 0.24 || share > 0.26 {
		t.Errorf("cloud share %.4f, want 0.25 ± 0.01", share)
	}
	// Writes use write_percent 5: a user in buckets [500, 2500) reads from the cloud
	// and writes to the datacenter.
	checked := 0
	for u := 1; checked < 20; u++ {
		key := fmt.Sprintf("u-%d", u)
		if b := routing.Bucket("cutover-2026", key); b < 500 || b >= 2500 {
			continue
		}
		checked++
		if r, s, _, _ := doGet(t, c, "POST", "/api/feed", "X-User-Id", key); r != "idc" || s != "idc" {
			t.Fatalf("write of %s went to %s/%s, want idc", key, r, s)
		}
		if r, _, _, _ := doGet(t, c, "GET", "/api/feed", "X-User-Id", key); r != "cloud" {
			t.Fatalf("read of %s went to %s, want cloud", key, r)
		}
	}
	// Testers in force land in the cloud whatever their bucket.
	for _, k := range []string{"u-qa-1", "u-qa-2"} {
		if r, s, _, _ := doGet(t, c, "GET", "/api/feed", "X-User-Id", k); r != "cloud" || s != "cloud" {
			t.Errorf("tester %s went to %s/%s, want cloud", k, r, s)
		}
	}
	// A spoofed X-Shift-Region from 127.0.0.1 (not a trusted caller) changes nothing,
	// in any spelling.
	for u := 1; u <= 200; u++ {
		key := fmt.Sprintf("u-%d", u)
		want := "idc"
		if routing.Bucket("cutover-2026", key) < 2500 {
			want = "cloud"
		}
		other := map[string]string{"idc": "cloud", "cloud": "idc"}[want]
		for _, name := range []string{"X-Shift-Region", "x-shift-region", "X_Shift_Region"} {
			if r, s, _, _ := doGet(t, c, "GET", "/api/feed", "X-User-Id", key, name, other); r != want || s != want {
				t.Fatalf("user %s spoofing %s: %s went to %s/%s, want %s", key, other, name, r, s, want)
			}
		}
	}
	// The default route keeps everything in the datacenter.
	if r, s, _, _ := doGet(t, c, "GET", "/other", "X-User-Id", "u-qa-1"); r != "idc" || s != "idc" {
		t.Errorf("default route went to %s/%s, want idc", r, s)
	}
	// Without any key (no header, cookie or device id), the client IP is the key.
	want := "idc"
	if routing.Bucket("cutover-2026", "127.0.0.1") < 2500 {
		want = "cloud"
	}
	if r, _, _, _ := doGet(t, c, "GET", "/api/feed"); r != want {
		t.Errorf("keyless request went to %s, want %s (by client IP)", r, want)
	}
}

func quietLog() *slogLogger { return discardLogger() }

// TestWebSocketTunnel upgrades a connection through the gateway and echoes frames.
func TestWebSocketTunnel(t *testing.T) {
	backend := must(net.Listen("tcp", "127.0.0.1:0"))
	defer backend.Close()
	seen := make(chan http.Header, 1)
	go func() {
		for {
			c, err := backend.Accept()
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
				seen <- req.Header
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
				io.Copy(c, br) // echo
			}(c)
		}
	}()
	cloud := startRegion(t, "cloud")
	gw := startGateway(t, twoRegions, map[string]string{"IDC": backend.Addr().String(), "CLOUD": cloud.Addr})
	c := must(net.Dial("tcp", gw.addr))
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// u-3 is in the datacenter at 25 % (its bucket is above 2500).
	if routing.Bucket("cutover-2026", "u-3") < 2500 {
		t.Fatal("test key u-3 should stay in idc")
	}
	io.WriteString(c, "GET /api/feed/ws HTTP/1.1\r\nHost: x\r\nX-User-Id: u-3\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	h := <-seen
	if h.Get("Upgrade") != "websocket" || !strings.EqualFold(h.Get("Connection"), "upgrade") || h.Get("X-Shift-Region") != "idc" || h.Get("Sec-Websocket-Key") == "" {
		t.Errorf("backend saw headers %v", h)
	}
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("frame-%d", i)
		io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q: got %q, %v", msg, buf, err)
		}
	}
	if n := gw.srv.tunnels.Len(); n != 1 {
		t.Errorf("open tunnels = %d, want 1", n)
	}
}
