package proxy

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/routing"
)

// exampleGateway serves the copied reference config on a free port.
func exampleGateway(t *testing.T, path string) (*Server, *fasthttp.HostClient) {
	t.Helper()
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
	return srv, &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: 16}
}

func fullGet(t *testing.T, c *fasthttp.HostClient, path, user string) (status int, region, served, fb, body string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://gw" + path)
	req.Header.Set("X-User-Id", user)
	if err := c.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode(), string(resp.Header.Peek("X-Shift-Region")), string(resp.Header.Peek(standin.RegionHeader)),
		string(resp.Header.Peek("X-Shift-Fallback")), string(resp.Body())
}

// TestRegionFailure walks the failure story of the reference config: the cloud dies,
// its breaker opens and reads fail over to the datacenter; the datacenter dies too and
// the cached feed (or the static list) answers; a restarted gateway still has the
// cache; the regions come back and the breakers close through half-open.
func TestRegionFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("walks real breaker timeouts (about 6 s)")
	}
	path, moved := copyExampleFreePorts(t)
	start := func(name, addr string) *standin.Server {
		s, err := standin.Start(name, moved(addr), standin.Options{})
		if err != nil {
			t.Fatalf("stand-in %s on %s: %v", name, addr, err)
		}
		return s
	}
	idc1, idc2, cloud := start("idc", "127.0.0.1:9001"), start("idc", "127.0.0.1:9011"), start("cloud", "127.0.0.1:9002")
	srv, c := exampleGateway(t, path)

	var cloudUsers, idcUsers []string
	for u := 1; len(cloudUsers) < 60 || len(idcUsers) < 10; u++ {
		k := fmt.Sprintf("u-%d", u)
		if routing.Bucket("cutover-2026", k) < 2500 {
			cloudUsers = append(cloudUsers, k)
		} else {
			idcUsers = append(idcUsers, k)
		}
	}
	// Warm the fallback cache: page=1..5 answered by both regions.
	for p := 1; p <= 5; p++ {
		if st, _, _, _, _ := fullGet(t, c, fmt.Sprintf("/api/feed?page=%d", p), cloudUsers[0]); st != 200 {
			t.Fatalf("warm-up status %d", st)
		}
	}

	// 1. The cloud dies. Reads of cloud users fail over to the datacenter; within about
	// 20 requests the cloud breaker opens.
	cloud.Close()
	opened := -1
	for i, u := range cloudUsers {
		st, region, served, fb, _ := fullGet(t, c, "/api/feed?page=9", u)
		if st != 200 || served != "idc" || fb != "" {
			t.Fatalf("cloud user %s after the cloud died: status %d region %q served by %q fallback %q; want a failover to idc", u, st, region, served, fb)
		}
		if breakerState(srv, "feed", "cloud") == "open" {
			opened = i + 1
			break
		}
	}
	if opened < 0 || opened > 25 {
		t.Fatalf("cloud breaker opened after %d failing requests, want about 20", opened)
	}
	t.Logf("cloud breaker opened after %d requests", opened)
	// With the breaker open, the cloud is not even tried, and reads still answer.
	failovers := counterValue(srv, `shiftgate_failovers_total{route="feed"}`)
	for _, u := range cloudUsers[:10] {
		if st, _, served, _, _ := fullGet(t, c, "/api/feed?page=9", u); st != 200 || served != "idc" {
			t.Fatalf("open breaker: status %d served %q", st, served)
		}
	}
	if got := counterValue(srv, `shiftgate_failovers_total{route="feed"}`); got != failovers+10 {
		t.Errorf("failovers went from %d to %d, want +10", failovers, got)
	}

	// 2. The datacenter dies too: every GET on /api/feed is answered 200 from the cache,
	// or from the static list for paths never seen.
	idc1.Close()
	idc2.Close()
	for _, u := range append(append([]string(nil), cloudUsers[:5]...), idcUsers[:5]...) {
		st, _, _, fb, body := fullGet(t, c, "/api/feed?page=3", u)
		if st != 200 || fb != "cache" || !strings.Contains(body, `"region":"`) {
			t.Fatalf("both regions down, cached page: status %d fallback %q body %q", st, fb, body)
		}
		st, _, _, fb, body = fullGet(t, c, "/api/feed?page=never-seen", u)
		if st != 200 || fb != "static" || !strings.Contains(body, "editors-pick-1") {
			t.Fatalf("both regions down, unseen page: status %d fallback %q body %q", st, fb, body)
		}
	}
	// Other routes have no fallback: a clear 5xx with a reason.
	if st, _, _, _, body := fullGet(t, c, "/other", "u-1"); st < 500 || !strings.Contains(body, "shiftgate:") {
		t.Errorf("route without fallback: status %d body %q", st, body)
	}

	// 3. Restart the gateway with both regions still down: the cache comes back from disk.
	if err := srv.Shutdown(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	srv2, c2 := exampleGateway(t, path)
	defer srv2.Shutdown(5 * time.Second)
	if st, _, _, fb, _ := fullGet(t, c2, "/api/feed?page=2", cloudUsers[1]); st != 200 || fb != "cache" {
		t.Fatalf("after restart with regions down: status %d fallback %q, want 200 from cache", st, fb)
	}

	// 4. Trip the restarted gateway's cloud breaker (regions still down), then bring the
	// regions back. While open, the cloud gets nothing; after open_for (5 s in the
	// example) a few probes go through half-open and the breaker closes.
	for i := 0; i < 40 && breakerState(srv2, "feed", "cloud") != "open"; i++ {
		if st, _, _, fb, _ := fullGet(t, c2, "/api/feed?page=2", cloudUsers[i%len(cloudUsers)]); st != 200 || fb == "" {
			t.Fatalf("regions down: status %d fallback %q", st, fb)
		}
	}
	if s := breakerState(srv2, "feed", "cloud"); s != "open" {
		t.Fatalf("cloud breaker %s after 40 failures, want open", s)
	}
	openedAt := time.Now()
	idc1, idc2 = start("idc", "127.0.0.1:9001"), start("idc", "127.0.0.1:9011")
	cloud = start("cloud", "127.0.0.1:9002")
	for i := 0; i < 5; i++ {
		// The idc breaker tripped too while both were down, so the cache may answer.
		if st, _, served, fb, _ := fullGet(t, c2, "/api/feed?page=1", cloudUsers[i]); st != 200 || (served != "idc" && fb == "") {
			t.Fatalf("open breaker with regions back: status %d served %q fallback %q", st, served, fb)
		}
	}
	if n := cloud.Requests(); n != 0 {
		t.Fatalf("the cloud got %d requests while its breaker was open", n)
	}
	time.Sleep(5*time.Second - time.Since(openedAt) + 100*time.Millisecond)
	for _, u := range cloudUsers[:10] {
		if st, region, served, fb, _ := fullGet(t, c2, "/api/feed?page=1", u); st != 200 || region != "cloud" || served != "cloud" || fb != "" {
			t.Fatalf("after open_for: status %d region %q served %q fallback %q", st, region, served, fb)
		}
	}
	if s := breakerState(srv2, "feed", "cloud"); s != "closed" {
		t.Errorf("cloud breaker %s, want closed", s)
	}
	for _, tr := range []struct {
		from, to string
		want     int
	}{{"closed", "open", 1}, {"open", "half-open", 1}, {"half-open", "closed", 1}, {"half-open", "open", 0}} {
		name := fmt.Sprintf(`shiftgate_breaker_transitions_total{route="feed",region="cloud",from=%q,to=%q}`, tr.from, tr.to)
		if got := counterValue(srv2, name); got != tr.want && !(tr.want == 0 && got == -1) {
			t.Errorf("%s = %d, want %d", name, got, tr.want)
		}
	}
	if n := cloud.Requests(); n != 10 {
		t.Errorf("the cloud got %d requests for 10 sent after open_for", n)
	}
	idc1.Close()
	idc2.Close()
	cloud.Close()
}

func breakerState(s *Server, route, region string) string {
	for _, r := range s.Status().Routes {
		if r.Name == route {
			return r.Breakers[region]
		}
	}
	return ""
}

// counterValue reads one metric line's value from the Prometheus output.
func counterValue(s *Server, name string) int {
	var b strings.Builder
	s.WriteMetrics(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	return -1
}

func metricsText(s *Server) string {
	var b strings.Builder
	s.WriteMetrics(&b)
	return b.String()
}
