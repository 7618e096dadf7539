package proxy

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func readLogLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAccessLog: one JSON line per request with route, region, reason and key source
// (not the key), odd bytes escaped, and a rotated file opened again.
func TestAccessLog(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := strings.Replace(twoRegions, "routes:", "access_log: { path: "+logPath+" }\nroutes:", 1)
	gw := startGateway(t, cfg, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	c := &fasthttp.HostClient{Addr: gw.addr}
	send := func(uri, user string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://gw" + uri)
		if user != "" {
			req.Header.Set("X-User-Id", user)
		}
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	send("/api/feed?q=%22quoted%22", "u-secret-42")
	send("/elsewhere", "")
	waitFor(t, "two log lines", func() bool { return len(readLogLines(t, logPath)) == 2 })
	lines := readLogLines(t, logPath)
	first := lines[0]
	for k, want := range map[string]any{"method": "GET", "uri": "/api/feed?q=%22quoted%22", "status": float64(200),
		"route": "feed", "reason": "split", "key_source": "header:X-User-Id", "peer": "127.0.0.1"} {
		if first[k] != want {
			t.Errorf("log field %s = %v, want %v (line %v)", k, first[k], want, first)
		}
	}
	if r := first["region"]; r != "idc" && r != "cloud" {
		t.Errorf("region %v", r)
	}
	raw, _ := os.ReadFile(logPath)
	if strings.Contains(string(raw), "u-secret-42") {
		t.Error("the routing key (a user id) was logged")
	}
	if lines[1]["route"] != "default" || lines[1]["key_source"] != "ip" {
		t.Errorf("second line %v", lines[1])
	}
	// Rotation: the file is renamed away; new lines go to a new file at the path.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the log reopened", func() bool {
		send("/api/feed", "u-1")
		_, err := os.Stat(logPath)
		return err == nil && len(readLogLines(t, logPath)) > 0
	})
}
