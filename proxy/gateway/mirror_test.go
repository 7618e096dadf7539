package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/proxy/admin"
	"github.com/shiftgate/shiftgate/proxy/mirror"
)

// feedService answers /api/feed/N with JSON that carries a timestamp of its own in
// every answer; with newTitle, item 7's title is "B" instead of "A".
func feedService(t *testing.T, newTitle bool, clock *atomic.Int64, mirrored *atomic.Int64) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Request.Header.Peek("X-Shift-Mirror")) == "1" {
			mirrored.Add(1)
		}
		var n int
		fmt.Sscanf(string(ctx.Path()), "/api/feed/%d", &n) //nolint:errcheck // n stays 0
		title := "A"
		if newTitle && n == 7 {
			title = "B"
		}
		ctx.SetContentType("application/json")
		fmt.Fprintf(ctx, `{"id":%d,"title":%q,"ts":%d,"items":[{"id":1},{"id":2}]}`, n, title, clock.Add(1))
	}}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

const mirrorConfig = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC1}}", "{{IDC2}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 0
    mirror: { percent: 100, noise_share: 100 }
  - name: default
    match: { path_prefix: / }
    percent: 0
`

// TestMirrorDiffTwoRegions runs two real regions behind a gateway that mirrors every
// read of the old one to the new one. The new region answers one JSON field
// differently on one path, and both put a timestamp in every answer: `shiftgate diff`
// reports the field on that path and classifies the timestamp as noise.
func TestMirrorDiffTwoRegions(t *testing.T) {
	clock := new(atomic.Int64)
	var idcMirrored, cloudMirrored atomic.Int64
	vars := map[string]string{
		"IDC1":  feedService(t, false, clock, &idcMirrored),
		"IDC2":  feedService(t, false, clock, &idcMirrored),
		"CLOUD": feedService(t, true, clock, &cloudMirrored),
	}
	g := startLive(t, mirrorConfig, vars)
	const requests = 400
	for i := 0; i < requests; i++ {
		resp, err := http.Get(fmt.Sprintf("http://%s/api/feed/%d", g.addr, i%10))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Shift-Region") != "idc" {
			t.Fatalf("request %d went to %s, want idc (0 %% moved)", i, resp.Header.Get("X-Shift-Region"))
		}
	}
	// The copies are fire and forget: wait until the mirror has compared them all.
	var r mirror.RouteResult
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := g.call(t, "GET", "/v1/diff?route=feed", "")
		var snap mirror.Snapshot
		if code != 200 || json.Unmarshal([]byte(body), &snap) != nil || len(snap.Routes) != 1 {
			t.Fatalf("/v1/diff: %d %s", code, body)
		}
		r = snap.Routes[0]
		if r.Compared+r.Dropped+r.Errors+r.Limited+r.Skipped >= requests || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.Compared < requests*9/10 {
		t.Fatalf("compared %d of %d mirrored requests (dropped %d, errors %d)", r.Compared, requests, r.Dropped, r.Errors)
	}
	if got := cloudMirrored.Load(); got < int64(r.Compared) {
		t.Errorf("the new region saw %d marked copies, fewer than %d compared", got, r.Compared)
	}
	verdict := map[string]mirror.FieldResult{}
	for _, f := range r.Fields {
		verdict[f.Field] = f
	}
	title, ok := verdict["title"]
	if !ok || title.Verdict != "differing" || len(title.Samples) == 0 || title.Samples[0].Path != "/api/feed/7" {
		t.Errorf("title: %+v; want differing with a sample on /api/feed/7", title)
	}
	if ts, ok := verdict["ts"]; !ok || ts.Verdict != "noise" {
		t.Errorf("ts: %+v; want noise", ts)
	}
	for _, f := range r.Fields {
		if f.Field != "title" && f.Field != "ts" {
			t.Errorf("unexpected field %s: %+v", f.Field, f)
		}
	}
	// The operator's view of the same run, kept for the record.
	out, err := runDiffCLI(g.admin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "DIFFERING") || !strings.Contains(out, "NOISE") {
		t.Errorf("shiftgate diff output:\n%s", out)
	}
	os.WriteFile(filepath.Join(t.TempDir(), "diff.txt"), []byte(out), 0o644)
	t.Logf("shiftgate diff:\n%s", out)
}

// runDiffCLI renders /v1/diff as `shiftgate diff` does.
func runDiffCLI(adminURL string) (string, error) {
	c, err := admin.NewClient(adminURL, "")
	if err != nil {
		return "", err
	}
	var snap mirror.Snapshot
	if err := c.Do("GET", "/v1/diff", nil, &snap); err != nil {
		return "", err
	}
	var b strings.Builder
	admin.WriteDiff(&b, snap)
	return b.String(), nil
}

// bodyService records what each request carried: "MIRROR POST /p body" for a marked
// copy, "POST /p body" otherwise.
func bodyService(t *testing.T, seen chan<- string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		mark := ""
		if m := ctx.Request.Header.Peek("X-Shift-Mirror"); m != nil {
			mark = "MIRROR(" + string(m) + ") "
		}
		seen <- fmt.Sprintf("%s%s %s %s", mark, ctx.Method(), ctx.Path(), ctx.Request.Body())
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"ok":true}`)
	}}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// TestMirrorCopiesRequestBodies: a mirrored write carries the client's body to the
// mirror region, as it streamed to the old one; a body the gateway cannot hold whole
// for the copy (over max_body, or chunked) is not mirrored at all, never sent empty.
// And a client cannot mark a real request as a copy: X-Shift-Mirror from it is
// dropped in every spelling. Before, copies of requests with a body went out with an
// empty body, and a client's X-Shift-Mirror: 1 reached the backend.
func TestMirrorCopiesRequestBodies(t *testing.T) {
	idcSeen, cloudSeen := make(chan string, 16), make(chan string, 16)
	vars := map[string]string{"IDC": bodyService(t, idcSeen), "CLOUD": bodyService(t, cloudSeen)}
	g := startLive(t, `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: cutover-2026 }
routes:
  - name: orders
    match: { path_prefix: /orders }
    percent: 0
    mirror: { percent: 100, methods: [POST], max_body: 16 }
  - name: default
    match: { path_prefix: / }
    percent: 0
`, vars)
	send := func(raw string) {
		t.Helper()
		c, err := net.Dial("tcp", g.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		var resp fasthttp.Response
		if err := resp.Read(bufio.NewReader(c)); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("%q: %d %v", raw, resp.StatusCode(), err)
		}
	}
	next := func(ch chan string, who string) string {
		t.Helper()
		select {
		case s := <-ch:
			return s
		case <-time.After(10 * time.Second):
			t.Fatalf("%s saw nothing in 10s", who)
			return ""
		}
	}

	send("POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{\"qty\":1}")
	if got := next(idcSeen, "idc"); got != `POST /orders {"qty":1}` {
		t.Errorf("idc got %q", got)
	}
	if got := next(cloudSeen, "the mirror"); got != `MIRROR(1) POST /orders {"qty":1}` {
		t.Errorf("the mirror got %q, want the copy with the client's body", got)
	}

	// Over max_body, and chunked: served, not mirrored.
	send("POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n{\"qty\":100000000}")
	send("POST /orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if got := next(idcSeen, "idc"); got != `POST /orders {"qty":100000000}` {
		t.Errorf("idc got %q", got)
	}
	if got := next(idcSeen, "idc"); got != `POST /orders hello` {
		t.Errorf("idc got %q", got)
	}
	var r mirror.RouteResult
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := g.call(t, "GET", "/v1/diff?route=orders", "")
		var snap mirror.Snapshot
		if code != 200 || json.Unmarshal([]byte(body), &snap) != nil || len(snap.Routes) != 1 {
			t.Fatalf("/v1/diff: %d %s", code, body)
		}
		if r = snap.Routes[0]; r.Compared+r.Skipped+r.Errors >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.Compared != 1 || r.Skipped != 2 || r.Errors != 0 {
		t.Errorf("mirror counts: compared %d, skipped %d, errors %d; want 1, 2, 0", r.Compared, r.Skipped, r.Errors)
	}
	select {
	case s := <-cloudSeen:
		t.Errorf("the mirror got %q: a body it could not hold whole was copied", s)
	default:
	}

	// A client's own mark never reaches a backend, in any spelling.
	send("POST /other HTTP/1.1\r\nHost: x\r\nX-Shift-Mirror: 1\r\nx_shift_mirror: 1\r\nContent-Length: 2\r\n\r\nok")
	if got := next(idcSeen, "idc"); got != `POST /other ok` {
		t.Errorf("idc got %q: a client's X-Shift-Mirror went through", got)
	}
}
