package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
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

const exchangeConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
access_log: { path: {{LOG}} }
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
  down:  { upstreams: ["{{DOWN}}"] }
split: { from: idc, to: cloud, salt: s }
timeouts: { connect: 500ms, response_header: 2s, body: 2s }
routes:
  - name: cut
    match: { path_prefix: /cut }
    percent: 100
    breaker: { disabled: true }
  - name: over
    match: { path_prefix: /over }
    to: down
    percent: 100
    failover: idempotent
    breaker: { disabled: true }
  - name: default
    match: { path_prefix: / }
    percent: 0
`

// TestAccessLogExchange: the access log says which region answered (after a
// failover too), which upstream, the bytes each way (a body cut short marked), the
// user agent and the request id; the id is the client's when valid, made when not,
// sent upstream once and returned.
func TestAccessLogExchange(t *testing.T) {
	var mu sync.Mutex
	var seen [][]string // X-Request-Id values each request carried upstream
	idc := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		var ids []string
		for _, v := range ctx.Request.Header.PeekAll("X-Request-Id") {
			ids = append(ids, string(v))
		}
		mu.Lock()
		seen = append(seen, ids)
		mu.Unlock()
		ctx.SetBodyString("hello from idc")
	}}
	idcLn := must(net.Listen("tcp", "127.0.0.1:0"))
	go idc.Serve(idcLn)
	defer idc.Shutdown()
	// cloud promises 200000 bytes and closes after 100000.
	cutLn := must(net.Listen("tcp", "127.0.0.1:0"))
	defer cutLn.Close()
	go func() {
		for {
			c, err := cutLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + strings.Repeat("x", 100000)))
			}()
		}
	}()
	down := must(net.Listen("tcp", "127.0.0.1:0"))
	downAddr := down.Addr().String()
	down.Close()
	logPath := filepath.Join(t.TempDir(), "access.log")
	gw := startGateway(t, exchangeConfig, map[string]string{"IDC": idcLn.Addr().String(), "CLOUD": cutLn.Addr().String(),
		"DOWN": downAddr, "LOG": logPath})

	raw := func(req string) (*http.Response, []byte, error) {
		c := must(net.Dial("tcp", gw.addr))
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return nil, nil, err
		}
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	resp, _, err := raw("GET /hello HTTP/1.1\r\nHost: gw\r\nUser-Agent: probe/1.0 \"x\"\r\nX-Request-Id: abc.DEF_1-2\r\n\r\n")
	if err != nil || resp.Header.Get("X-Request-Id") != "abc.DEF_1-2" {
		t.Fatalf("a valid id: %v %v", resp, err)
	}
	resp, _, err = raw("POST /hello HTTP/1.1\r\nHost: gw\r\nX-Request-Id: not valid!\r\nX-Request-Id: second\r\nContent-Length: 5\r\n\r\n12345")
	made := resp.Header.Get("X-Request-Id")
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{12}-[0-9a-f]+$`).MatchString(made) {
		t.Fatalf("an invalid id was not replaced: %q %v", made, err)
	}
	resp2, _, _ := raw("GET /hello HTTP/1.1\r\nHost: gw\r\n\r\n")
	if id2 := resp2.Header.Get("X-Request-Id"); id2 == made || !strings.HasPrefix(id2, made[:13]) {
		t.Errorf("two made ids: %q then %q", made, id2)
	}
	if resp, _, err := raw("GET /over HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("failover: %v %v", resp, err)
	}
	if resp, body, err := raw("GET /cut HTTP/1.1\r\nHost: gw\r\n\r\n"); resp == nil || resp.StatusCode != 200 || err == nil || len(body) >= 200000 {
		t.Fatalf("cut body: %v, %d bytes, %v", resp, len(body), err)
	}
	mu.Lock()
	if len(seen) < 3 || strings.Join(seen[0], ",") != "abc.DEF_1-2" || strings.Join(seen[1], ",") != made {
		t.Errorf("ids upstream: %v (want one each: abc.DEF_1-2, then %s)", seen, made)
	}
	mu.Unlock()

	waitFor(t, "five log lines", func() bool { return len(readLogLines(t, logPath)) == 5 })
	lines := readLogLines(t, logPath)
	byURI := map[string]map[string]any{}
	for _, l := range lines {
		if k := l["method"].(string) + " " + l["uri"].(string); byURI[k] == nil {
			byURI[k] = l // the first of each
		}
	}
	idcAddr := idcLn.Addr().String()
	for key, want := range map[string]map[string]any{
		"GET /hello": {"request_id": "abc.DEF_1-2", "user_agent": `probe/1.0 "x"`, "region": "idc", "answered_by": "idc",
			"upstream": idcAddr, "bytes_in": float64(0), "bytes_out": float64(len("hello from idc")), "status": float64(200)},
		"POST /hello": {"request_id": made, "bytes_in": float64(5), "answered_by": "idc"},
		"GET /over":   {"region": "down", "answered_by": "idc", "upstream": idcAddr, "reason": "split"},
		"GET /cut":    {"region": "cloud", "answered_by": "cloud", "upstream": cutLn.Addr().String(), "bytes_out": float64(100000), "cut": true},
	} {
		l := byURI[key]
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%s: %s = %v, want %v (line %v)", key, k, l[k], v, l)
			}
		}
	}
	if _, cut := byURI["GET /hello"]["cut"]; cut {
		t.Errorf("a whole body marked cut: %v", byURI["GET /hello"])
	}
}

// flakyDisk fails every write while full is set, as a full disk does.
type flakyDisk struct {
	full bool
	got  bytes.Buffer
}

func (d *flakyDisk) Write(b []byte) (int, error) {
	if d.full {
		return 0, syscall.ENOSPC
	}
	return d.got.Write(b)
}

// TestAccessLogWriterRecovers: a write that fails (a full disk) drops and counts
// the lines it held, and the next lines are tried on the file again; once the disk
// takes writes they are written. Before, the buffered writer kept its first error and
// every later line was lost, uncounted, until a rotation.
func TestAccessLogWriterRecovers(t *testing.T) {
	var logs bytes.Buffer
	l := &accessLog{path: "test.log", dropped: metrics.NewSet().NewCounter("dropped_total"), log: slog.New(slog.NewTextHandler(&logs, nil))}
	disk := &flakyDisk{}
	lw := &logWriter{l: l}
	lw.reset(disk)
	lw.write([]byte("one\n"))
	lw.flush()
	disk.full = true
	lw.write([]byte("two\n"))
	lw.write([]byte("three\n"))
	lw.flush()
	lw.write([]byte("four\n"))
	lw.flush()
	if n := l.dropped.Get(); n != 3 {
		t.Errorf("%d lines counted dropped, want 3 (two, three, four)", n)
	}
	disk.full = false
	lw.write([]byte("five\n"))
	lw.flush()
	if got := disk.got.String(); got != "one\nfive\n" {
		t.Errorf("file holds %q, want one and five", got)
	}
	if c := strings.Count(logs.String(), "access log write failed"); c != 1 {
		t.Errorf("%d failure lines logged, want 1:\n%s", c, logs.String())
	}
	if !strings.Contains(logs.String(), "access log written again") {
		t.Errorf("the recovery was not logged:\n%s", logs.String())
	}
}

// TestAccessLogOnAFullDisk: with the access log on a device that refuses every write
// (/dev/full), requests are served and every line is counted as dropped.
func TestAccessLogOnAFullDisk(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no /dev/full: %v", err)
		}
		t.Skip("no /dev/full")
	}
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	cfg := strings.Replace(twoRegions, "routes:", "access_log: { path: /dev/full }\nroutes:", 1)
	gw := startGateway(t, cfg, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	c := &fasthttp.HostClient{Addr: gw.addr}
	for i := 0; i < 20; i++ {
		status, _, err := c.Get(nil, "http://gw/api/feed")
		if err != nil || status != 200 {
			t.Fatalf("request %d on a full disk: %d %v", i, status, err)
		}
	}
	waitFor(t, "20 lines counted dropped", func() bool {
		var m bytes.Buffer
		gw.srv.WriteMetrics(&m)
		return strings.Contains(m.String(), "shiftgate_access_log_dropped_total 20")
	})
}
