package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/routing/clientcfg"
)

const sdkRegions = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"], public_url: "https://idc.example.com" }
  cloud: { upstreams: ["{{CLOUD}}"], public_url: "https://cloud.example.com" }
split: { from: idc, to: cloud, salt: cutover-2026, keys: ["header:X-User-Id", "cookie:uid", "query:u", "ip"] }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 25
    write_percent: 5
  - name: search
    match: { host: api.example.com, path_prefix: /api }
    salt: ""
    keys: ["query:u", "cookie:uid"]
    percent: 50
  - name: default
    match: { path_prefix: / }
    percent: 3.33
`

// sdkRequest is one request both as the SDKs take it and as it is sent.
type sdkRequest struct {
	clientcfg.Request
	rawQuery string
}

func sdkSample(n int) []sdkRequest {
	rng := rand.New(rand.NewPCG(15, 15))
	keys := []string{"42", "u-1001", "u-qa-1", "用户-%d", "café-%d", "😀-%d", "d-%x", "%d"}
	var out []sdkRequest
	for i := 0; i < n; i++ {
		key := keys[rng.IntN(len(keys))]
		if strings.Contains(key, "%") {
			key = fmt.Sprintf(key, rng.IntN(1<<30))
		}
		r := sdkRequest{Request: clientcfg.Request{
			Method:  []string{"GET", "POST", "HEAD", "PUT"}[rng.IntN(4)],
			Host:    []string{"api.example.com", "www.example.com"}[rng.IntN(2)],
			Path:    []string{"/api/feed/x", "/api/other", "/", "/home"}[rng.IntN(4)],
			Headers: map[string]string{}, Cookies: map[string]string{}, Query: map[string]string{},
			IP: "127.0.0.1",
		}}
		ascii := !strings.ContainsFunc(key, func(c rune) bool { return c > 0x7e })
		switch rng.IntN(4) {
		case 0:
			if ascii { // header values stay ASCII on the wire
				r.Headers["X-User-Id"] = key
			}
		case 1:
			if ascii {
				r.Cookies["uid"] = key
			}
		case 2:
			r.Query["u"] = key
			r.rawQuery = "u=" + url.QueryEscape(key)
		}
		out = append(out, r)
	}
	return out
}

// TestSDKsAgreeWithLiveGateway fetches the client config from a running gateway after
// a split change and lets the Go SDK and the JavaScript SDK decide a sample of
// requests (non-ASCII keys, writes, hosts, the ip key); each must land where the
// gateway sends it, and the gateway counts every app's X-Shift-Client as agreeing.
func TestSDKsAgreeWithLiveGateway(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	gw := startLive(t, sdkRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	if code, body := gw.call(t, "PUT", "/v1/routes/feed/split", `{"percent":41.27,"write_percent":7.5}`); code != 200 {
		t.Fatalf("split: %d %s", code, body)
	}
	resp, err := http.Get("http://" + gw.addr + proxy.ClientConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cfg, err := clientcfg.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Routes[0].Percent != 41.27 {
		t.Fatalf("the config does not carry the split: %+v", cfg.Routes[0])
	}
	sample := sdkSample(600)

	// The gateway's own decisions, with the Go SDK's in X-Shift-Client.
	c := &http.Client{Timeout: 5 * time.Second}
	gateway := make([]string, len(sample))
	for i, r := range sample {
		d := clientcfg.Decide(cfg, r.Request)
		u := "http://" + gw.addr + r.Path
		if r.rawQuery != "" {
			u += "?" + r.rawQuery
		}
		req, _ := http.NewRequest(r.Method, u, nil)
		req.Host = r.Host
		for k, v := range r.Headers {
			req.Header.Set(k, v)
		}
		for k, v := range r.Cookies {
			req.AddCookie(&http.Cookie{Name: k, Value: v})
		}
		req.Header.Set(proxy.ClientHeader, clientcfg.ClientHeader(cfg, d))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		gateway[i] = resp.Header.Get("X-Shift-Region")
		if resp.Header.Get(proxy.ConfigVersionHeader) != cfg.Version {
			t.Fatalf("request %d: X-Shift-Config-Version %q, want %q", i, resp.Header.Get(proxy.ConfigVersionHeader), cfg.Version)
		}
		if d.Region != gateway[i] {
			t.Fatalf("request %d %+v: Go SDK %+v, gateway %s", i, r.Request, d, gateway[i])
		}
	}
	var agree, other uint64
	for _, rs := range gw.srv.Status().Routes {
		agree += rs.Clients.Agree
		other += rs.Clients.Disagree + rs.Clients.Stale
	}
	if agree != uint64(len(sample)) || other != 0 {
		t.Fatalf("gateway counted %d agreeing and %d other apps, want %d agreeing", agree, other, len(sample))
	}
	moved := 0
	for _, g := range gateway {
		if g == "cloud" {
			moved++
		}
	}
	t.Logf("Go SDK: %d of %d requests decided as the gateway did (%d to cloud)", len(sample), len(sample), moved)

	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node is required when CI=true: %v", err)
		}
		t.Skip("node not found: the JavaScript SDK's part runs where it is (and always under CI=true)")
	}
	reqs := make([]clientcfg.Request, len(sample))
	for i, r := range sample {
		reqs[i] = r.Request
	}
	input, _ := json.Marshal(map[string]any{"config": json.RawMessage(raw), "requests": reqs})
	dir := t.TempDir()
	in := filepath.Join(dir, "input.json")
	os.WriteFile(in, input, 0o600)
	sdk, _ := filepath.Abs("../../clients/js/shiftgate.mjs")
	script := `import { readFileSync } from 'node:fs';
import { parseConfig, decide } from ` + jsString("file://"+sdk) + `;
const input = JSON.parse(readFileSync(process.argv[1], 'utf8'));
const config = parseConfig(JSON.stringify(input.config));
process.stdout.write(JSON.stringify(input.requests.map((r) => decide(config, r))));
`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--input-type=module", "-e", script, in)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var js []string
	if err := json.Unmarshal(out, &js); err != nil || len(js) != len(sample) {
		t.Fatalf("node printed %d decisions (%v): %.200s", len(js), err, out)
	}
	for i := range sample {
		if js[i] != gateway[i] {
			t.Fatalf("request %d %+v: JavaScript SDK %q, gateway %q", i, sample[i].Request, js[i], gateway[i])
		}
	}
	t.Logf("JavaScript SDK: %d of %d requests decided as the gateway did", len(sample), len(sample))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
