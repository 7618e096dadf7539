package mirror

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// feedRegion is one region's service: /api/feed/N answers JSON with a timestamp that
// differs in every answer, and a title that is "A", except that the new region
// answers "B" for item 7.
type feedRegion struct {
	name     string
	newTitle bool
	clock    *atomic.Int64 // shared by all regions: every answer gets its own ts

	mu      sync.Mutex
	marked  int      // requests carrying X-Shift-Mirror: 1
	regions []string // X-Shift-Region of marked requests
	hop     int      // requests that still carried a hop-by-hop field
}

func (f *feedRegion) handle(ctx *fasthttp.RequestCtx) {
	if string(ctx.Request.Header.Peek(HeaderMirror)) == "1" {
		f.mu.Lock()
		f.marked++
		f.regions = append(f.regions, string(ctx.Request.Header.Peek(headerRegion)))
		if len(ctx.Request.Header.Peek("X-Hop")) > 0 || len(ctx.Request.Header.Peek("Keep-Alive")) > 0 {
			f.hop++
		}
		f.mu.Unlock()
	}
	var n int
	fmt.Sscanf(string(ctx.Path()), "/api/feed/%d", &n) //nolint:errcheck // n stays 0
	title := "A"
	if f.newTitle && n == 7 {
		title = "B"
	}
	ctx.SetContentType("application/json")
	fmt.Fprintf(ctx, `{"id":%d,"title":%q,"ts":%d,"meta":{"request_id":"r%d","region":"same"},"tags":["x","y"]}`,
		n, title, f.clock.Add(1), f.clock.Load())
}

// Two real regions: `from` with two upstreams, `to` with one. After mirroring every
// request, the title of item 7 is reported as differing and the timestamp as noise.
func TestMirrorTellsDifferencesFromNoise(t *testing.T) {
	t.Parallel()
	clock := new(atomic.Int64)
	from1 := &feedRegion{name: "old", clock: clock}
	from2 := &feedRegion{name: "old", clock: clock}
	to := &feedRegion{name: "new", newTitle: true, clock: clock}
	from1Addr, from2Addr, toAddr := serve(t, from1.handle), serve(t, from2.handle), serve(t, to.handle)

	m, err := New(Options{Routes: []Route{
		{}, // an unmirrored route at index 0
		{
			Name: "feed", Percent: 10000,
			Region: "new", TargetAddrs: []string{toAddr},
			NoiseRegion: "old", NoiseAddrs: []string{from2Addr}, NoiseShare: 10000,
			IgnorePaths: []string{"$.meta.request_id"},
		},
	}, Workers: 4, Queue: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	primary := &fasthttp.HostClient{Addr: from1Addr}
	const n = 100
	for i := range n {
		if m.Sampled(0, []byte("GET"), uint64(i)) {
			t.Fatal("an unmirrored route was sampled")
		}
		if !m.Sampled(1, []byte("GET"), uint64(i)) {
			t.Fatal("a route at 100 % was not sampled")
		}
		req, resp, x := fetch(t, primary, "GET", fmt.Sprintf("/api/feed/%d", i%10), nil)
		// Hop-by-hop fields a proxy would have removed; the copy must not carry them.
		req.Header.Set("Connection", "X-Hop")
		req.Header.Set("X-Hop", "1")
		req.Header.Set("Keep-Alive", "timeout=5")
		if !m.Offer(1, &x) {
			t.Fatalf("offer %d not queued: %+v", i, m.Counters(1))
		}
		release(req, resp)
	}
	c := waitCompleted(t, m, 1, n)
	if c.Offered != n || c.Compared != n || c.NoiseCompared != n || c.Dropped != 0 || c.Errors != 0 || c.NoiseErrors != 0 {
		t.Fatalf("counters %+v", c)
	}

	snap := m.Snapshot()
	if len(snap.Routes) != 1 || snap.Routes[0].Name != "feed" {
		t.Fatalf("routes %+v", snap.Routes)
	}
	fields := map[string]FieldResult{}
	for _, f := range snap.Routes[0].Fields {
		fields[f.Field] = f
	}
	title, ok := fields["title"]
	if !ok || title.Verdict != VerdictDiffering || title.RawRate != 0.1 || title.NoiseRate != 0 {
		t.Errorf("title: %+v", title)
	}
	if len(title.Samples) == 0 {
		t.Fatal("no sample of the title difference")
	}
	if s := title.Samples[0]; s.Path != "/api/feed/7" || s.Field != "title" || s.Primary != `"A"` || s.Mirror != `"B"` {
		t.Errorf("title sample %+v", s)
	}
	ts, ok := fields["ts"]
	if !ok || ts.Verdict != VerdictNoise || ts.RawRate != 1 || ts.NoiseRate != 1 {
		t.Errorf("ts: %+v", ts)
	}
	for _, f := range []string{"meta.request_id", "id", "meta.region", "tags[*]", ":status", ":header:content-type"} {
		if _, ok := fields[f]; ok {
			t.Errorf("field %s reported: %+v", f, fields[f])
		}
	}
	if len(fields) != 2 {
		t.Errorf("fields %+v, want title and ts only", snap.Routes[0].Fields)
	}
	if l := snap.Routes[0].Latency; l.Samples != n || l.MirrorP99Ms <= 0 || l.PrimaryP99Ms <= 0 {
		t.Errorf("latency %+v", l)
	}

	for _, reg := range []*feedRegion{to, from2} {
		reg.mu.Lock()
		if reg.marked != n || reg.hop != 0 {
			t.Errorf("%s upstream: %d marked copies (want %d), %d with hop-by-hop fields", reg.name, reg.marked, n, reg.hop)
		}
		for _, r := range reg.regions {
			if r != reg.name {
				t.Errorf("%s upstream got X-Shift-Region %q", reg.name, r)
				break
			}
		}
		reg.mu.Unlock()
	}
	from1.mu.Lock()
	if from1.marked != 0 {
		t.Errorf("the primary upstream got %d copies", from1.marked)
	}
	from1.mu.Unlock()
}

// A mirror that is down costs the caller nothing: every copy is queued, none is
// compared, all are counted as errors.
func TestMirrorTargetDown(t *testing.T) {
	t.Parallel()
	from := serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(`{"a":1}`) })
	m, err := New(Options{Routes: []Route{{Name: "r", Percent: 10000, TargetAddrs: []string{deadAddr(t)}}},
		Workers: 2, Queue: 64, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	hc := &fasthttp.HostClient{Addr: from}
	for range 20 {
		req, resp, x := fetch(t, hc, "GET", "/", nil)
		if !m.Offer(0, &x) {
			t.Fatalf("not queued: %+v", m.Counters(0))
		}
		release(req, resp)
	}
	c := waitCompleted(t, m, 0, 20)
	if c.Errors != 20 || c.Compared != 0 {
		t.Fatalf("counters %+v", c)
	}
}

// A mirror that accepts and never answers holds the workers; Offer still returns at
// once, the queue fills, and the rest is dropped and counted. Close returns once the
// copies in flight time out.
func TestMirrorStalledTargetDrops(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	stop, accepting := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { // read nothing, answer nothing
				defer conns.Done()
				<-stop
				c.Close()
			}()
		}
	}()
	m, err := New(Options{Routes: []Route{{Name: "r", Percent: 10000, TargetAddrs: []string{ln.Addr().String()}}},
		Workers: 1, Queue: 2, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var req fasthttp.Request
	req.SetRequestURI("/")
	req.Header.SetHost("app.example")
	x := Exchange{Req: &req.Header, Status: 200}
	queued := 0
	for range 10 {
		if m.Offer(0, &x) {
			queued++
		}
	}
	c := m.Counters(0)
	// At most Queue copies wait and Workers are in flight.
	if queued > 3 || c.Dropped != uint64(10-queued) || c.Offered != 10 {
		t.Fatalf("queued %d, counters %+v", queued, c)
	}
	m.Close()
	close(stop)
	ln.Close()
	<-accepting
	conns.Wait()
	if m.Offer(0, &x) {
		t.Fatal("Offer after Close queued a copy")
	}
}

// Bodies that are not JSON are compared by hash; answers over the cap are compared
// up to it and marked truncated; HEAD compares status and headers.
func TestMirrorBodiesByHashAndCap(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 5000)
	answer := func(region string) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain")
			switch string(ctx.Path()) {
			case "/text":
				ctx.SetBodyString("plain from " + region)
			case "/same":
				ctx.SetBodyString("plain")
			case "/big":
				ctx.SetBodyString(big)
			case "/big-differs":
				if region == "new" {
					ctx.SetBodyString("y" + big[1:])
				} else {
					ctx.SetBodyString(big)
				}
			}
		}
	}
	from, to := serve(t, answer("old")), serve(t, answer("new"))
	m, err := New(Options{Routes: []Route{{Name: "r", Percent: 10000, TargetAddrs: []string{to}}}, MaxAnswer: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	hc := &fasthttp.HostClient{Addr: from}
	offer := func(method, uri string) {
		req, resp, x := fetch(t, hc, method, uri, nil)
		if !m.Offer(0, &x) {
			t.Fatalf("not queued: %+v", m.Counters(0))
		}
		release(req, resp)
	}
	offer("GET", "/text")
	offer("GET", "/same")
	offer("GET", "/big")
	offer("GET", "/big-differs")
	offer("HEAD", "/text")
	c := waitCompleted(t, m, 0, 5)
	if c.Compared != 5 || c.Same != 3 || c.Differing != 2 || c.Truncated != 2 {
		t.Fatalf("counters %+v", c)
	}
	f := m.Snapshot().Routes[0].Fields
	if len(f) != 1 || f[0].Field != fieldBody || f[0].Differing != 2 || len(f[0].Samples) != 2 {
		t.Fatalf("fields %+v", f)
	}
	// Workers finish in any order: samples are found by path.
	samples := map[string]Sample{}
	for _, s := range f[0].Samples {
		samples[s.Path] = s
	}
	if s := samples["/text"]; s.Truncated || !strings.Contains(s.Primary, "plain from old") || !strings.Contains(s.Mirror, "plain from new") {
		t.Errorf("text sample %+v", s)
	}
	if s := samples["/big-differs"]; !s.Truncated || !strings.HasPrefix(s.Mirror, "1024 bytes") {
		t.Errorf("big sample %+v", s)
	}
}

// Writes are mirrored only when the route lists them, with their body, and only
// bodies the caller holds whole and under the cap.
func TestMirrorWritesOptIn(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	to := serve(t, func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		bodies = append(bodies, string(ctx.Method())+" "+string(ctx.PostBody()))
		mu.Unlock()
	})
	from := serve(t, func(*fasthttp.RequestCtx) {})
	m, err := New(Options{Routes: []Route{
		{Name: "reads", Percent: 10000, TargetAddrs: []string{to}},
		{Name: "writes", Percent: 10000, TargetAddrs: []string{to}, Methods: []string{"POST"}, MaxBody: 16},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Sampled(0, []byte("POST"), 1) || !m.Sampled(0, []byte("HEAD"), 1) || !m.Sampled(1, []byte("POST"), 1) || m.Sampled(1, []byte("GET"), 1) {
		t.Fatal("method filter wrong")
	}
	hc := &fasthttp.HostClient{Addr: from}
	req, resp, x := fetch(t, hc, "POST", "/orders", []byte(`{"qty":1}`))
	if !m.Offer(1, &x) {
		t.Fatal("a small write was not queued")
	}
	x.ReqBody = bytes.Repeat([]byte("z"), 17)
	if m.Offer(1, &x) {
		t.Fatal("a body over the cap was queued")
	}
	x.ReqBody, x.ReqBodyCut = nil, true
	if m.Offer(1, &x) {
		t.Fatal("a body the caller does not hold was queued")
	}
	if m.Offer(1, &Exchange{}) {
		t.Fatal("an exchange without a request head was queued")
	}
	release(req, resp)
	c := waitCompleted(t, m, 1, 1)
	if c.Skipped != 3 || c.Compared != 1 {
		t.Fatalf("counters %+v", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || bodies[0] != `POST {"qty":1}` {
		t.Fatalf("mirror received %q", bodies)
	}
}

func TestQueueFullDrops(t *testing.T) {
	t.Parallel()
	m, err := build(Options{Routes: []Route{{Name: "r", Percent: 10000, TargetAddrs: []string{"127.0.0.1:1"}}}, Workers: 1, Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	x := testExchange()
	queued := 0
	for range 5 {
		if m.Offer(0, x) {
			queued++
		}
	}
	if c := m.Counters(0); queued != 2 || c.Dropped != 3 || c.Offered != 5 || m.QueueLen() != 2 {
		t.Fatalf("queued %d, queue %d, counters %+v", queued, m.QueueLen(), c)
	}
}

func TestRateCap(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	m, err := build(Options{Routes: []Route{{Name: "r", Percent: 10000, TargetAddrs: []string{"127.0.0.1:1"}, Rate: 2}},
		Queue: 100, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	x := testExchange()
	count := func() (n int) {
		for range 5 {
			if m.Offer(0, x) {
				n++
			}
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("%d queued with a full bucket of 2", n)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d queued with an empty bucket and a stopped clock", n)
	}
	now = now.Add(time.Second)
	if n := count(); n != 2 {
		t.Fatalf("%d queued a second later at 2/s", n)
	}
	if c := m.Counters(0); c.Limited != 11 {
		t.Fatalf("counters %+v", c)
	}
}

func TestSampledShare(t *testing.T) {
	t.Parallel()
	f := func(percent, wantMin, wantMax int) {
		t.Helper()
		m, err := build(Options{Routes: []Route{{Name: "r", Percent: percent, TargetAddrs: []string{"127.0.0.1:1"}}}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for id := range uint64(100000) {
			if m.Sampled(0, []byte("GET"), id) {
				n++
			}
		}
		if n < wantMin || n > wantMax {
			t.Errorf("percent %d bp: %d of 100000 sampled, want %d..%d", percent, n, wantMin, wantMax)
		}
	}
	f(10000, 100000, 100000)
	f(1000, 9700, 10300)
	f(1, 1, 30)
	var nilMirror *Mirror
	if nilMirror.Sampled(0, []byte("GET"), 1) || nilMirror.Offer(0, testExchange()) {
		t.Fatal("a nil Mirror mirrors")
	}
	nilMirror.Close()
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	f := func(name string, routes []Route, want string) {
		t.Helper()
		_, err := New(Options{Routes: routes})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, want)
		}
	}
	f("nothing mirrored", []Route{{Name: "a"}}, "no route mirrors")
	f("percent", []Route{{Name: "a", Percent: 10001, TargetAddrs: []string{"x:1"}}}, "percent")
	f("no target", []Route{{Name: "a", Percent: 1}}, "no mirror upstreams")
	f("bad ignore path", []Route{{Name: "a", Percent: 1, TargetAddrs: []string{"x:1"}, IgnorePaths: []string{"a[b]"}}}, "ignore path")
	f("noise share", []Route{{Name: "a", Percent: 1, TargetAddrs: []string{"x:1"}, NoiseShare: -1}}, "noise share")
	f("method", []Route{{Name: "a", Percent: 1, TargetAddrs: []string{"x:1"}, Methods: []string{"GE T"}}}, "method")
}

func TestCapture(t *testing.T) {
	t.Parallel()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/a")
	ctx.Response.SetStatusCode(201)
	ctx.Response.SetBodyString("hello")
	x := Capture(&ctx, time.Millisecond)
	if x.Status != 201 || string(x.RespBody) != "hello" || x.RespBodyCut || x.ReqBodyCut || len(x.ReqBody) != 0 {
		t.Fatalf("captured %+v", x)
	}
	// A streamed answer is not read: the client is still being sent it.
	ctx.Response.SetBodyStream(strings.NewReader("streamed"), -1)
	ctx.Request.SetBodyStream(strings.NewReader("upload"), 6)
	x = Capture(&ctx, 0)
	if !x.RespBodyCut || len(x.RespBody) != 0 || !x.ReqBodyCut {
		t.Fatalf("captured %+v", x)
	}
	if b, _ := ctx.Response.BodyStream().(*strings.Reader); b == nil || b.Len() != len("streamed") {
		t.Fatal("Capture read the answer's stream")
	}
}

// TestNoiseGoesToAnotherUpstream: with the answering upstream among NoiseAddrs, the
// noise copy goes to another one, every time: noise measures how two upstreams of
// one region differ, and the same upstream asked twice measures less. Before, the
// noise target was taken in turn and was the answering upstream for half the copies.
func TestNoiseGoesToAnotherUpstream(t *testing.T) {
	t.Parallel()
	var toA, toB atomic.Int64
	ok := func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("{}") }
	aAddr := serve(t, func(ctx *fasthttp.RequestCtx) { toA.Add(1); ok(ctx) })
	bAddr := serve(t, func(ctx *fasthttp.RequestCtx) { toB.Add(1); ok(ctx) })
	toAddr := serve(t, ok)
	m, err := New(Options{Routes: []Route{{
		Name: "feed", Percent: 10000, Region: "new", TargetAddrs: []string{toAddr},
		NoiseRegion: "old", NoiseAddrs: []string{aAddr, bAddr}, NoiseShare: 10000,
	}}, Workers: 2, Queue: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	primary := &fasthttp.HostClient{Addr: aAddr}
	const n = 20
	for i := range n {
		req, resp, x := fetch(t, primary, "GET", "/api/feed/1", nil)
		x.Upstream = aAddr
		if !m.Offer(0, &x) {
			t.Fatalf("offer %d not queued", i)
		}
		release(req, resp)
	}
	c := waitCompleted(t, m, 0, n)
	if c.NoiseCompared != n {
		t.Fatalf("counters %+v", c)
	}
	// a answered the client n times itself (fetch); every noise copy went to b.
	if a, b := toA.Load(), toB.Load(); a != n || b != n {
		t.Errorf("requests at the answering upstream %d (want %d: the primaries only), at the other %d (want %d)", a, n, b, n)
	}
}

// TestNoWriteToTheNoiseRegion: the noise copy goes to the from region, which serves
// production: a mirrored write is copied to the mirror region only, never a second
// time to from; a read still gets its noise copy. Before, a mirrored POST was also
// resent to from's other upstream.
func TestNoWriteToTheNoiseRegion(t *testing.T) {
	t.Parallel()
	var noise, target atomic.Int64
	noiseAddr := serve(t, func(ctx *fasthttp.RequestCtx) { noise.Add(1); ctx.SetBodyString("{}") })
	toAddr := serve(t, func(ctx *fasthttp.RequestCtx) { target.Add(1); ctx.SetBodyString("{}") })
	fromAddr := serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("{}") })
	m, err := New(Options{Routes: []Route{{
		Name: "feed", Percent: 10000, Region: "new", TargetAddrs: []string{toAddr}, Methods: []string{"GET", "POST"}, MaxBody: 64,
		NoiseRegion: "old", NoiseAddrs: []string{noiseAddr}, NoiseShare: 10000,
	}}, Workers: 1, Queue: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	hc := &fasthttp.HostClient{Addr: fromAddr}
	req, resp, x := fetch(t, hc, "POST", "/api/feed/like", []byte(`{"like":1}`))
	if !m.Offer(0, &x) {
		t.Fatal("the write was not queued")
	}
	release(req, resp)
	waitCompleted(t, m, 0, 1)
	if n := noise.Load(); n != 0 {
		t.Fatalf("the write reached the from region's noise upstream %d times", n)
	}
	req, resp, x = fetch(t, hc, "GET", "/api/feed/1", nil)
	if !m.Offer(0, &x) {
		t.Fatal("the read was not queued")
	}
	release(req, resp)
	if c := waitCompleted(t, m, 0, 2); c.NoiseCompared != 1 || noise.Load() != 1 || target.Load() != 2 {
		t.Fatalf("counters %+v, noise upstream %d, target %d: want the read's noise copy only", c, noise.Load(), target.Load())
	}
}

// TestStreamedAnswerIsTruncated: an answer the gateway streamed to its client (not
// held in memory: chunked, or large) has no body to compare; the comparison counts
// as truncated, never as a same body checked. Before, it was "same" and not
// truncated, whatever the bodies held.
func TestStreamedAnswerIsTruncated(t *testing.T) {
	t.Parallel()
	from := serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(`{"title":"A"}`) })
	to := serve(t, func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(`{"title":"B"}`) })
	m, err := New(Options{Routes: []Route{{Name: "r", Percent: 10000, TargetAddrs: []string{to}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	req, resp, x := fetch(t, &fasthttp.HostClient{Addr: from}, "GET", "/api/feed/1", nil)
	x.RespBody, x.RespBodyCut = nil, true // as Capture leaves a streamed answer
	if !m.Offer(0, &x) {
		t.Fatal("not queued")
	}
	release(req, resp)
	if c := waitCompleted(t, m, 0, 1); c.Compared != 1 || c.Truncated != 1 {
		t.Fatalf("counters %+v: want the comparison counted as truncated", c)
	}
}
