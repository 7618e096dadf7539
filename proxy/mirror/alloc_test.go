package mirror

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// testExchange is a typical API exchange: a GET with a few headers and a 2 KiB JSON
// answer.
func testExchange() *Exchange {
	req := new(fasthttp.Request)
	req.Header.SetMethod("GET")
	req.SetRequestURI("/api/feed/7?lang=en")
	req.Header.SetHost("app.example")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-Id", "4bf92f3577b34da6a3ce929d0e0e4736")
	req.Header.Set("X-Shift-Region", "old")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	req.Header.SetCookie("uid", "u-1001")
	resp := new(fasthttp.Response)
	resp.Header.SetContentType("application/json")
	resp.Header.Set("Cache-Control", "max-age=5")
	body := []byte(`{"items":[` + strings.Repeat(`{"id":1,"title":"a title","ts":1700000000},`, 47) + `{"id":0}]}`)
	return &Exchange{Req: &req.Header, Status: 200, Resp: &resp.Header, RespBody: body, Latency: time.Millisecond}
}

// offerOnly builds a Mirror without workers; drain takes the queued copy back, as a
// worker would, so that only Offer is measured.
func offerOnly(t testing.TB, r Route) *Mirror {
	t.Helper()
	r.Name, r.Percent, r.TargetAddrs = "r", 10000, []string{"127.0.0.1:1"}
	m, err := build(Options{Routes: []Route{{}, r}, Workers: 1, Queue: 4})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *Mirror) drain() {
	select {
	case j := <-m.queue:
		m.putJob(j)
	default:
	}
}

func TestSampledAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	m := offerOnly(t, Route{})
	get := []byte("GET")
	var id uint64
	if n := testing.AllocsPerRun(1000, func() {
		id++
		m.Sampled(0, get, id) // route off
		m.Sampled(1, get, id)
		m.Sampled(7, get, id) // out of range
		(*Mirror)(nil).Sampled(1, get, id)
	}); n != 0 {
		t.Fatalf("Sampled allocates %v times", n)
	}
}

func TestOfferAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, r := range []Route{{}, {Rate: 1e9}} {
		m := offerOnly(t, r)
		x := testExchange()
		m.Offer(1, x) // the first job is made here
		m.drain()
		if n := testing.AllocsPerRun(1000, func() {
			if !m.Offer(1, x) {
				t.Fatal("not queued")
			}
			m.drain()
		}); n != 0 {
			t.Fatalf("Offer (rate %v) allocates %v times with the pool warm", r.Rate, n)
		}
	}
}

func TestCaptureAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/a")
	ctx.Response.SetBodyString(`{"a":1}`)
	if n := testing.AllocsPerRun(1000, func() {
		x := Capture(&ctx, time.Millisecond)
		if len(x.RespBody) == 0 {
			t.Fatal("no body")
		}
	}); n != 0 {
		t.Fatalf("Capture allocates %v times", n)
	}
}

func BenchmarkSampledOff(b *testing.B) {
	m := offerOnly(b, Route{})
	get := []byte("GET")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Sampled(0, get, uint64(i))
	}
}

func BenchmarkSampled(b *testing.B) {
	m := offerOnly(b, Route{})
	get := []byte("GET")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Sampled(1, get, uint64(i))
	}
}

func BenchmarkOffer(b *testing.B) {
	m := offerOnly(b, Route{})
	x := testExchange()
	b.ReportAllocs()
	for b.Loop() {
		m.Offer(1, x)
		m.drain()
	}
}

func BenchmarkOfferRateCapped(b *testing.B) {
	m := offerOnly(b, Route{Rate: 1e9})
	x := testExchange()
	b.ReportAllocs()
	for b.Loop() {
		m.Offer(1, x)
		m.drain()
	}
}

// BenchmarkOfferFullQueue has every goroutine offer into a full queue: the cost of a
// drop under contention.
func BenchmarkOfferFullQueue(b *testing.B) {
	m := offerOnly(b, Route{})
	x := testExchange()
	for range 8 {
		m.Offer(1, x)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Offer(1, x)
		}
	})
}

// BenchmarkCompareJSON is the worker's diff of two 2 KiB JSON answers that differ in
// one field; it runs off the request path.
func BenchmarkCompareJSON(b *testing.B) {
	x := testExchange()
	other := []byte(strings.Replace(string(x.RespBody), `"title":"a title"`, `"title":"b title"`, 1))
	r := compileRules(&Route{IgnorePaths: []string{"items[*].ts"}})
	a, c := &answer{status: 200, body: x.RespBody}, &answer{status: 200, body: other}
	var out []Difference
	b.ReportAllocs()
	b.SetBytes(int64(len(x.RespBody)))
	for b.Loop() {
		out = compareAnswers(a, c, r, true, out[:0])
	}
	if len(out) != 1 {
		b.Fatalf("differences %v", out)
	}
}
