package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/proxy"
)

func (g *liveGateway) call(t testing.TB, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, g.admin+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// keepAliveClient sends requests one after another on one connection and records
// every failure, including the gateway closing the connection.
type keepAliveClient struct {
	failures atomic.Int64
	closed   atomic.Int64
	requests atomic.Int64
}

type sample struct {
	sent   time.Time
	region string
}

func (k *keepAliveClient) run(ctx context.Context, addr string, id int, record func(sample)) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		k.failures.Add(1)
		return
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for n := 0; ctx.Err() == nil; n++ {
		user := fmt.Sprintf("u-%d", (id*7919+n)%5000)
		sent := time.Now()
		c.SetDeadline(sent.Add(5 * time.Second))
		fmt.Fprintf(c, "GET /api/feed?n=%d HTTP/1.1\r\nHost: gw\r\nX-User-Id: %s\r\n\r\n", n, user)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if err == io.EOF || strings.Contains(err.Error(), "EOF") {
				k.closed.Add(1)
			}
			k.failures.Add(1)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		k.requests.Add(1)
		if resp.StatusCode != 200 || resp.Close {
			k.failures.Add(1)
			if resp.Close {
				k.closed.Add(1)
				return
			}
		}
		record(sample{sent, resp.Header.Get("X-Shift-Region")})
	}
}

const liveConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: {{PERCENT}}
  - name: default
    match: { path_prefix: / }
    percent: 0
`

// TestLiveChangesUnderLoad storms reloads (renames into place, in-place writes, a
// broken file), split changes and a rollback cycle under steady keep-alive load, and
// expects zero failed requests, no connection closed by the gateway, and the rollback
// in effect for every request sent after the command returned.
func TestLiveChangesUnderLoad(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	vars := map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr, "PERCENT": "10"}
	g := startLive(t, liveConfig, vars)

	ctx, stop := context.WithCancel(context.Background())
	var (
		mu      sync.Mutex
		samples []sample
		wg      sync.WaitGroup
		k       keepAliveClient
	)
	record := func(s sample) { mu.Lock(); samples = append(samples, s); mu.Unlock() }
	const clients = 24
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); k.run(ctx, g.addr, i, record) }(i)
	}
	time.Sleep(200 * time.Millisecond)

	text := func(percent string) string {
		s := strings.ReplaceAll(liveConfig, "{{STATE}}", filepath.Join(g.dir, "state"))
		s = strings.ReplaceAll(s, "{{IDC}}", idc.Addr)
		s = strings.ReplaceAll(s, "{{CLOUD}}", cloud.Addr)
		return strings.ReplaceAll(s, "{{PERCENT}}", percent)
	}
	// 50 reloads: every third a rename into place, every third an in-place write, and
	// every tenth a broken file, which must be refused while the last good one serves.
	for i := 0; i < 50; i++ {
		body := text(fmt.Sprintf("%d", 10+i%5))
		switch {
		case i%10 == 9:
			body = strings.Replace(body, "percent:", "percnt:", 1)
			os.WriteFile(g.path, []byte(body), 0o644)
		case i%2 == 0:
			tmp := g.path + ".tmp"
			os.WriteFile(tmp, []byte(body), 0o644)
			os.Rename(tmp, g.path)
		default:
			os.WriteFile(g.path, []byte(body), 0o644)
		}
		time.Sleep(60 * time.Millisecond)
	}
	// 20 split changes through the admin API (an override: the file reloads keep it).
	for i := 0; i < 20; i++ {
		st, body := g.call(t, "PUT", "/v1/routes/feed/split", fmt.Sprintf(`{"percent":%d,"write_percent":%d}`, 20+i, 15))
		if st != 200 {
			t.Fatalf("split: %d %s", st, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Rollback on: from the moment the command returns, nothing goes to the cloud.
	st, body := g.call(t, "POST", "/v1/rollback", `{"on":true}`)
	if st != 200 {
		t.Fatalf("rollback on: %d %s", st, body)
	}
	rolledBack := time.Now()
	time.Sleep(500 * time.Millisecond)
	if st, body := g.call(t, "POST", "/v1/rollback", `{"on":false}`); st != 200 {
		t.Fatalf("rollback off: %d %s", st, body)
	}
	rolledForward := time.Now()
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()

	if f, c := k.failures.Load(), k.closed.Load(); f != 0 || c != 0 {
		t.Errorf("%d failed requests, %d connections closed by the gateway, of %d requests", f, c, k.requests.Load())
	}
	late := 0
	cloudAfter := 0
	for _, s := range samples {
		if s.sent.After(rolledBack) && s.sent.Before(rolledForward.Add(-50*time.Millisecond)) && s.region == "cloud" {
			late++
		}
		if s.sent.After(rolledForward.Add(50*time.Millisecond)) && s.region == "cloud" {
			cloudAfter++
		}
	}
	if late != 0 {
		t.Errorf("%d requests sent after the rollback returned still went to the cloud", late)
	}
	if cloudAfter == 0 {
		t.Error("no request went to the cloud after rollback off")
	}
	// The last split override survived the file reloads: 39 %.
	var status proxy.Status
	_, sb := g.call(t, "GET", "/v1/status", "")
	json.Unmarshal([]byte(sb), &status)
	if status.Routes[0].Percent != 39 || status.Routes[0].FilePercent < 10 {
		t.Errorf("status after storm: %+v", status.Routes[0])
	}
	t.Logf("%d requests on %d keep-alive connections, %d reloads seen", k.requests.Load(), clients, counterValue(g.srv, "shiftgate_config_reloads_total"))
}

// TestRollbackSurvivesRestart turns rollback on, stops the gateway as a crash would
// leave it (only the state dir remains) and starts it again.
func TestRollbackSurvivesRestart(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	vars := map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr, "PERCENT": "100"}
	g := startLive(t, liveConfig, vars)
	if st, body := g.call(t, "POST", "/v1/rollback", `{"on":true}`); st != 200 {
		t.Fatalf("rollback: %d %s", st, body)
	}
	if st, body := g.call(t, "PUT", "/v1/routes/feed/split", `{"percent":50,"force":true}`); st != 200 {
		t.Fatalf("split: %d %s", st, body)
	}
	store, _ := store.NewFile(filepath.Join(g.dir, "state"))
	cfg, err := conf.LoadFile(g.path)
	if err != nil {
		t.Fatal(err)
	}
	srv2, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Shutdown(time.Second)
	ov := srv2.Overrides()
	if !ov.Rollback.On || ov.Routes["feed"].PercentBP != 5000 {
		t.Fatalf("after restart: overrides %+v", ov)
	}
	if st := srv2.Status(); !st.Rollback.On || st.Routes[0].Effective != 0 {
		t.Errorf("rollback not in effect after restart: %+v", st.Rollback)
	}
}

func TestAdminAPIErrors(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	g := startLive(t, liveConfig, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr, "PERCENT": "25"})
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"PUT", "/v1/routes/nope/split", `{"percent":5}`, 404, "no route"},
		{"PUT", "/v1/routes/feed/split", `{"percent":101}`, 400, "want 0..100"},
		{"PUT", "/v1/routes/feed/split", `{"percent":1.005}`, 400, "two decimals"},
		{"PUT", "/v1/routes/feed/split", `{"percent":5,"write_percent":6}`, 400, "above percent"},
		{"PUT", "/v1/routes/feed/split", `{"percent":5,"bogus":1}`, 400, "unknown field"},
		{"PUT", "/v1/routes/feed/split", `{"percent":30,"dry_run":true}`, 200, `"share_moving_forward": 0.05`},
		{"PUT", "/v1/routes/feed/split", `{"percent":20,"dry_run":true}`, 409, `moves 5.00% of users' reads`},
		{"PUT", "/v1/routes/feed/split", `{"percent":20,"dry_run":true,"force":true}`, 200, `"share_moving_back": 0.05`},
		{"PUT", "/v1/routes/feed/split", `{"percent":"abc"}`, 400, `percent: want 0..100`},
		{"PUT", "/v1/routes/feed/split", `{"percent":true}`, 400, `body: percent: want number from 0 to 100 such as 25 or 0.5, got a JSON bool`},
		{"PUT", "/v1/routes/feed/split", `{"percent":30,"write_percent":[5]}`, 400, `body: write_percent: want number from 0 to 100`},
		{"PUT", "/v1/routes/feed/split", `{"percent":30,"force":"yes"}`, 400, `body: force: want true or false, got a JSON string`},
		{"DELETE", "/v1/routes/default/split", ``, 404, `route default has no override to clear`},
		{"DELETE", "/v1/routes/feed/split", ``, 404, `has no override to clear`},
		{"DELETE", "/v1/routes/nope/split", ``, 404, `no route`},
		{"POST", "/v1/rollback", `{"on":true,"ramp":"10m"}`, 400, "ramp applies"},
		{"POST", "/v1/rollback", `{"on":false,"ramp":"forever"}`, 400, "ramp:"},
		// A switch without "on" is a mistake, not "off".
		{"POST", "/v1/rollback", `{}`, 400, "body: on is required"},
		{"POST", "/v1/rollback", `{"ramp":"10m"}`, 400, "body: on is required"},
		{"POST", "/v1/cutoff", `{"routes":["feed"]}`, 400, "body: on is required"},
		{"POST", "/v1/rollback", `{"on":true,"bogus":1}`, 400, "unknown field"},
		{"POST", "/v1/rollback", `[]`, 400, "body: want a JSON object with on"},
		{"POST", "/v1/rollback", `null`, 400, "body: want a JSON object with on"},
		{"POST", "/v1/cutoff", `null`, 400, "body: want a JSON object with on"},
		{"GET", "/v1/decide?method=GET&path=/api/feed&header=X-User-Id:42", "", 200, `"bucket": 2799`},
		{"GET", "/v1/decide?path=/api/feed&ip=203.0.113.7", "", 200, `"bucket": 3466`},
		{"GET", "/metrics", "", 200, "shiftgate_requests_total"},
		{"PUT", "/v1/limits", `{"site":{"rps":"x"}}`, 400, "body: rps: want requests per second above 0"},
	} {
		st, body := g.call(t, tc.method, tc.path, tc.body)
		if st != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s; want %d containing %q", tc.method, tc.path, tc.body, st, body, tc.status, tc.want)
		}
	}
	// The dry runs changed nothing.
	if ov := g.srv.Overrides(); len(ov.Routes) != 0 {
		t.Errorf("dry run stored %+v", ov.Routes)
	}
}

func TestAdminToken(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	dir := t.TempDir()
	token := "s3cret-token-of-some-length"
	os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600)
	cfg := strings.Replace(liveConfig, "routes:", "admin: { listen: 127.0.0.1:0, token_file: "+filepath.Join(dir, "token")+" }\nroutes:", 1)
	g := startLive(t, cfg, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr, "PERCENT": "25"})
	for _, tc := range []struct {
		auth   string
		status int
	}{
		{"", 401}, {"Bearer wrong", 401}, {"Bearer " + token + "x", 401}, {"Basic " + token, 401},
		{"Bearer " + token, 200}, {"bearer " + token, 200}, {"BEARER " + token, 200},
	} {
		req, _ := http.NewRequest("POST", g.admin+"/v1/rollback", bytes.NewReader([]byte(`{"on":true}`)))
		req.Header.Set("Content-Type", "application/json")
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("Authorization %q: %d, want %d", tc.auth, resp.StatusCode, tc.status)
		}
	}
	if !g.srv.Overrides().Rollback.On {
		t.Error("the authorised rollback did not take effect")
	}
}

func TestAdminOffLoopbackNeedsToken(t *testing.T) {
	_, err := conf.Parse("x.yaml", []byte(strings.NewReplacer("{{STATE}}", "/tmp/x", "{{IDC}}", "127.0.0.1:1", "{{CLOUD}}", "127.0.0.1:2", "{{PERCENT}}", "1").
		Replace(strings.Replace(liveConfig, "routes:", "admin: { listen: 0.0.0.0:9090 }\nroutes:", 1))))
	if err == nil || !strings.Contains(err.Error(), "needs a bearer token") {
		t.Fatalf("admin on 0.0.0.0 without token: %v", err)
	}
}
