package loadtest

import (
	"net"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/shiftgate/shiftgate/loadtest/freeport"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/valyala/fasthttp"
)

// startStandin starts a stand-in region on a free loopback port, closed at cleanup.
func startStandin(t testing.TB, region string, opt standin.Options) *standin.Server {
	t.Helper()
	s, err := standin.Start(region, "127.0.0.1:0", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// serve runs h on a free loopback port until cleanup and returns the base URL.
func serve(t testing.TB, h fasthttp.RequestHandler) string {
	t.Helper()
	return serveWith(t, &fasthttp.Server{Handler: h, NoDefaultServerHeader: true, NoDefaultDate: true})
}

// serveWith runs srv on a free loopback port until cleanup and returns the base URL.
func serveWith(t testing.TB, srv *fasthttp.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) //nolint:errcheck // returns when Shutdown closes ln
	}()
	t.Cleanup(func() {
		srv.Shutdown() //nolint:errcheck
		<-done
	})
	return "http://" + ln.Addr().String()
}

// closedPort returns a loopback address on which nothing listens.
func closedPort(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// countAtLeast counts the histogram's recorded values that are >= d.
func countAtLeast(h *hdrhistogram.Histogram, d time.Duration) int64 {
	min := d.Microseconds()
	var n int64
	for _, bar := range h.Distribution() {
		if bar.From >= min {
			n += bar.Count
		}
	}
	return n
}

// checkInvariants asserts what every Result must satisfy.
func checkInvariants(t *testing.T, res Result) {
	t.Helper()
	if res.Requests != res.Successes+res.Errors {
		t.Errorf("requests %d != successes %d + errors %d", res.Requests, res.Successes, res.Errors)
	}
	var kinds int64
	for _, n := range res.ErrorKinds {
		kinds += n
	}
	if kinds != res.Errors {
		t.Errorf("error kinds add up to %d, errors %d (%v)", kinds, res.Errors, res.ErrorKinds)
	}
	var regions int64
	for _, n := range res.Regions {
		regions += n
	}
	if res.Histogram != nil && regions != res.Histogram.TotalCount() {
		t.Errorf("region counts add up to %d, answered requests %d", regions, res.Histogram.TotalCount())
	}
}

// warmWorker returns a worker on one connection to a fresh stand-in, after a few
// requests; done closes the client.
func warmWorker(t testing.TB, users int) (*worker, func()) {
	t.Helper()
	s := startStandin(t, "idc", standin.Options{BodySize: 512})
	o, err := Options{
		URL: "http://" + s.Addr + "/api/feed", N: 1, Conns: 1, Users: users,
		RegionHeader: standin.RegionHeader,
	}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	tg, err := parseTarget(t.Context(), o.URL, false, systemLookup)
	if err != nil {
		t.Fatal(err)
	}
	hc := newClient(&o, tg)
	w := newWorker(0, hc, &o, tg, &runState{})
	for range 200 {
		w.prepare()
		w.send(time.Now())
	}
	return w, hc.CloseIdleConnections
}
