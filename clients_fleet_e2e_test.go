package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/routing/clientcfg"
)

func clientFleetConfig(name, listen, admin, endpoint, idc, cloud string) string {
	return fmt.Sprintf(`listen: %s
admin: { listen: %s }
state_dir: ./state
regions:
  idc:   { upstreams: [%q], public_url: "https://idc.example.com" }
  cloud: { upstreams: [%q], public_url: "https://cloud.example.com" }
split: { from: idc, to: cloud, salt: cutover-2026, keys: ["header:X-User-Id"] }
client_config: { ttl: 30s }
fleet:
  etcd: { endpoints: [%q], prefix: /shiftgate/clients/, dial_timeout: 500ms, instance: %s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 0
  - name: default
    match: { path_prefix: / }
    percent: 0
`, listen, admin, idc, cloud, endpoint, name)
}

// clientConfigOf fetches an instance's client config, conditionally on etag.
func clientConfigOf(c *http.Client, listen, etag string) (*clientcfg.Config, string, int, error) {
	req, _ := http.NewRequest("GET", "http://"+listen+proxy.ClientConfigPath, nil)
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, resp.Header.Get("ETag"), resp.StatusCode, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", 0, err
	}
	cfg, err := clientcfg.Parse(body)
	return cfg, resp.Header.Get("ETag"), 200, err
}

// publishedWithin polls every instance's client config (with If-None-Match, as a
// client or CDN would) until each publishes a document for which ok holds, and
// returns the time from since to that document on the slowest instance. It fails
// the test after limit.
func publishedWithin(t *testing.T, insts []*fleetInstance, since time.Time, limit time.Duration, ok func(*clientcfg.Config) bool) (time.Duration, string) {
	t.Helper()
	var (
		mu       sync.Mutex
		slowest  time.Duration
		versions = map[string]bool{}
		errs     []string
		wg       sync.WaitGroup
	)
	for _, f := range insts {
		wg.Add(1)
		go func(f *fleetInstance) {
			defer wg.Done()
			c := &http.Client{Timeout: 2 * time.Second}
			etag, last := "", "nothing"
			for time.Now().Before(since.Add(limit)) {
				cfg, tag, code, err := clientConfigOf(c, f.listen, etag)
				switch {
				case err != nil:
					last = err.Error()
				case code == 200 && ok(cfg):
					d := time.Since(since)
					mu.Lock()
					slowest = max(slowest, d)
					versions[cfg.Version] = true
					mu.Unlock()
					return
				case code == 200:
					etag, last = tag, fmt.Sprintf("%+v", *cfg)
				case code != 304:
					last = fmt.Sprintf("status %d", code)
				}
				time.Sleep(2 * time.Millisecond)
			}
			mu.Lock()
			errs = append(errs, fmt.Sprintf("%s: after %s the client config is still %s", f.name, limit, last))
			mu.Unlock()
		}(f)
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	if len(versions) != 1 {
		t.Fatalf("the instances publish the same document under %d versions: %v", len(versions), versions)
	}
	var v string
	for v = range versions {
	}
	return slowest, v
}

// TestFleetClientConfig runs a real etcd and three gateways: a split, a rollback and
// a cut-off made through one instance reach the client config of every instance
// within a second, under one version; undoing them gives back the earlier version.
func TestFleetClientConfig(t *testing.T) {
	const limit = time.Second
	etcd, idc, cloud := fleetBackends(t)
	var insts []*fleetInstance
	for _, name := range []string{"cc-a", "cc-b", "cc-c"} {
		f := &fleetInstance{name: name, listen: freeAddr(t), admin: freeAddr(t)}
		f.path = filepath.Join(t.TempDir(), "shiftgate.yaml")
		if err := os.WriteFile(f.path, []byte(clientFleetConfig(name, f.listen, f.admin, etcd.Endpoint, idc.Addr, cloud.Addr)), 0o644); err != nil {
			t.Fatal(err)
		}
		f.start(t)
		defer f.stop(t)
		insts = append(insts, f)
	}
	_, start := publishedWithin(t, insts, time.Now(), 3*time.Second, func(c *clientcfg.Config) bool {
		return c.Routes[0].Percent == 0 && !c.Rollback && !c.Cutoff
	})

	steps := []struct {
		what string
		args []string
		via  *fleetInstance
		ok   func(*clientcfg.Config) bool
	}{
		{"split feed 0% -> 40%", []string{"split", "-writes", "10", "feed", "40"}, insts[0],
			func(c *clientcfg.Config) bool { return c.Routes[0].Percent == 40 && c.Routes[0].WritePercent == 10 }},
		{"rollback on", []string{"rollback", "on"}, insts[1],
			func(c *clientcfg.Config) bool { return c.Rollback && c.Routes[0].Percent == 40 }},
		{"cutoff on feed", []string{"cutoff", "on", "feed"}, insts[2],
			func(c *clientcfg.Config) bool {
				return c.Rollback && c.Routes[0].Cutoff && !c.Routes[1].Cutoff && !c.Cutoff
			}},
		{"cutoff on (site)", []string{"cutoff", "on"}, insts[0],
			func(c *clientcfg.Config) bool { return c.Cutoff && c.Routes[1].Cutoff }},
		{"cutoff off", []string{"cutoff", "off"}, insts[1],
			func(c *clientcfg.Config) bool { return !c.Cutoff && !c.Routes[0].Cutoff && c.Rollback }},
		{"rollback off", []string{"rollback", "off"}, insts[2],
			func(c *clientcfg.Config) bool { return !c.Rollback && !c.Cutoff && c.Routes[0].Percent == 40 }},
		{"split feed 40% -> 0% (forced)", []string{"split", "-force", "-writes", "0", "feed", "0"}, insts[0],
			func(c *clientcfg.Config) bool { return c.Routes[0].Percent == 0 && !c.Rollback }},
	}
	var figures []string
	for _, s := range steps {
		args := append([]string{s.args[0], "-admin", "http://" + s.via.admin}, s.args[1:]...)
		code, out, errs := runCLI(args...)
		returned := time.Now()
		if code != 0 {
			t.Fatalf("%s: exit %d %s %s", s.what, code, out, errs)
		}
		d, version := publishedWithin(t, insts, returned, 3*time.Second, s.ok)
		figures = append(figures, fmt.Sprintf("%s through %s: in all three client configs %s after the command returned (version %s)",
			s.what, s.via.name, d.Round(100*time.Microsecond), version))
		if d >= limit {
			t.Errorf("%s took %s to reach every client config, want < %s", s.what, d, limit)
		}
		if s.what == "split feed 40% -> 0% (forced)" && version != start {
			t.Errorf("back to the start: version %s, want the first one %s", version, start)
		}
	}
	for _, f := range figures {
		t.Log(f)
	}
	if code, out, _ := runCLI("status", "-admin", "http://"+insts[2].admin); code != 0 || !strings.Contains(out, "cutoff: off") ||
		!strings.Contains(out, "client config: version "+start) {
		t.Fatalf("status: %d\n%s", code, out)
	}
}
