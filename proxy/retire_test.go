package proxy

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/breaker"
	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/fallback"
)

// retireConfig has two routes with a breaker, a fallback cache and a Lua fallback
// each; {{GONE}} is replaced by the second route or by nothing.
const retireConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
routes:
  - name: kept
    match: { path_prefix: /kept }
    percent: 50
    fallback:
      cache: { ttl: 10m }
      lua: { source: "return function(req) return {status = 200, body = 'kept'} end" }
{{GONE}}`

const goneRoute = `  - name: gone
    match: { path_prefix: /gone }
    percent: 50
    fallback:
      cache: { ttl: 10m }
      lua: { source: "return function(req) return {status = 200, body = 'gone'} end" }
`

// TestReloadRetiresRemovedRoute removes a route with a reload and shows that its
// breakers, cache (in memory and on disk), compiled script and metric series are
// gone, while everything of the unchanged route carried over as the same objects.
func TestReloadRetiresRemovedRoute(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	vars := map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr, "GONE": goneRoute}
	gw := startGateway(t, retireConfig, vars)
	c := &fasthttp.HostClient{Addr: gw.addr}
	for _, p := range []string{"/kept/a", "/gone/a"} {
		if _, _, status, _ := doGet(t, c, "GET", p, "X-User-Id", "u-1"); status != 200 {
			t.Fatalf("GET %s: %d", p, status)
		}
	}
	s := gw.srv
	if err := s.runtimes.caches.Flush(); err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(gw.dir, "state", "fallback")
	goneFile := filepath.Join(cacheDir, "gone"+cacheFileSuffix(t, cacheDir))
	if _, err := os.Stat(goneFile); err != nil {
		t.Fatalf("the removed route's cache file was never written: %v", err)
	}
	before := s.state.Load().routes[0].run
	goneSeries := `shiftgate_requests_total{route="gone",region="cloud",class="2xx"}`
	if !s.metrics.series(goneSeries) || s.runtimes.scripts.len() != 2 {
		t.Fatalf("before the reload: series %v, scripts %d", s.metrics.series(goneSeries), s.runtimes.scripts.len())
	}

	text := strings.NewReplacer("{{STATE}}", filepath.Join(gw.dir, "state"), "{{IDC}}", idc.Addr, "{{CLOUD}}", cloud.Addr, "{{GONE}}", "").Replace(retireConfig)
	cfg, err := conf.Parse(filepath.Join(gw.dir, "shiftgate.yaml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}

	var breakers []string
	s.runtimes.breakers.Range(func(k breaker.Key, _ *breaker.Breaker) { breakers = append(breakers, k.Route+"/"+k.Region) })
	var caches []string
	s.runtimes.caches.Range(func(route string, _ *fallback.Cache) { caches = append(caches, route) })
	if strings.Join(breakers, ",") != "kept/cloud,kept/idc" {
		t.Errorf("breakers after the reload: %v", breakers)
	}
	if strings.Join(caches, ",") != "kept" {
		t.Errorf("caches after the reload: %v", caches)
	}
	if _, err := os.Stat(goneFile); !os.IsNotExist(err) {
		t.Errorf("the removed route's cache file is still on disk: %v", err)
	}
	if n := s.runtimes.scripts.len(); n != 1 {
		t.Errorf("compiled scripts after the reload: %d, want 1", n)
	}
	if s.metrics.series(goneSeries) {
		t.Errorf("the removed route's series %s is still exported", goneSeries)
	}
	if !s.metrics.series(`shiftgate_requests_total{route="kept",region="cloud",class="2xx"}`) {
		t.Error("the kept route's series went with the removed one")
	}
	var m strings.Builder
	s.WriteMetrics(&m)
	if strings.Contains(m.String(), `route="gone"`) {
		t.Errorf("/metrics still names the removed route:\n%s", grepLines(m.String(), `route="gone"`))
	}
	after := s.state.Load().routes[0].run
	if after.cache != before.cache || after.lua != before.lua {
		t.Error("the unchanged route's cache or script was rebuilt instead of carried over")
	}
	for id := range before.breakers {
		if before.breakers[id] != after.breakers[id] {
			t.Errorf("the unchanged route's breaker for region %d was rebuilt", id)
		}
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// cacheFileSuffix finds the extension the store gives cache files.
func cacheFileSuffix(t *testing.T, dir string) string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if name, ok := strings.CutPrefix(de.Name(), "kept"); ok {
			return name
		}
	}
	t.Fatalf("no cache file in %s", dir)
	return ""
}

// TestShutdownBeforeServe: a Serve that starts after Shutdown returns at once instead
// of blocking on a listener nobody will close.
func TestShutdownBeforeServe(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	gw := startGateway(t, twoRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	gw.srv.Shutdown(time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.srv.Serve(ln) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve after Shutdown blocked")
	}
}
