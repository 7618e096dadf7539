package loadtest

import (
	"bufio"
	"context"
	"errors"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/valyala/fasthttp"
)

func TestRunStopsAtExactlyN(t *testing.T) {
	for _, tc := range []struct {
		name  string
		conns int
		rate  float64
		n     int64
	}{
		{"closed, one conn", 1, 0, 37},
		{"closed, more conns than requests", 64, 0, 10},
		{"closed, many requests", 16, 0, 1500},
		{"open loop", 8, 5000, 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startStandin(t, "idc", standin.Options{})
			res, err := Run(t.Context(), Options{
				URL: "http://" + s.Addr + "/api/feed", Conns: tc.conns, Rate: tc.rate, N: tc.n,
				RegionHeader: standin.RegionHeader, Users: 10,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, res)
			if res.Requests != tc.n || res.Successes != tc.n {
				t.Errorf("requests %d, successes %d; want %d each", res.Requests, res.Successes, tc.n)
			}
			if got := s.Requests(); got != tc.n {
				t.Errorf("server answered %d requests, want %d", got, tc.n)
			}
			if got := res.Regions["idc"]; got != tc.n {
				t.Errorf("regions %v, want idc: %d", res.Regions, tc.n)
			}
			if got := res.Histogram.TotalCount(); got != tc.n {
				t.Errorf("histogram holds %d values, want %d", got, tc.n)
			}
		})
	}
}

func TestRunDurationBound(t *testing.T) {
	for _, rate := range []float64{0, 1000} {
		t.Run("rate="+strconv.FormatFloat(rate, 'f', -1, 64), func(t *testing.T) {
			s := startStandin(t, "idc", standin.Options{})
			const d = 200 * time.Millisecond
			res, err := Run(t.Context(), Options{
				URL: "http://" + s.Addr + "/", Conns: 4, Rate: rate, Duration: d, Timeout: time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, res)
			if res.Requests == 0 || res.Errors != 0 {
				t.Errorf("requests %d errors %d; want some requests and no errors", res.Requests, res.Errors)
			}
			// The run ends at d plus at most the requests in flight (each bounded by the
			// 1 s timeout); the upper bound only proves that the run stopped by itself.
			if res.Elapsed < d || res.Elapsed > d+5*time.Second {
				t.Errorf("elapsed %v, want in [%v, %v]", res.Elapsed, d, d+5*time.Second)
			}
			if rate > 0 {
				// The open loop never schedules a request at or after the end.
				if max := int64(rate * d.Seconds()); res.Requests > max {
					t.Errorf("open loop sent %d requests in a %v schedule at %g/s; at most %d fit", res.Requests, d, rate, max)
				}
			}
			if got := s.Requests(); got != res.Requests {
				t.Errorf("server answered %d, result counts %d", got, res.Requests)
			}
		})
	}
}

func TestRunContextCancelReturnsPartialResult(t *testing.T) {
	s := startStandin(t, "idc", standin.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	var once sync.Once
	// Cancel from inside the run, once the progress line shows requests flowing.
	progress := writerFunc(func(p []byte) (int, error) {
		once.Do(cancel)
		return len(p), nil
	})
	res, err := Run(ctx, Options{
		URL: "http://" + s.Addr + "/", Conns: 2, Duration: time.Minute,
		Progress: progress, ProgressEvery: 20 * time.Millisecond,
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	checkInvariants(t, res)
	if res.Requests == 0 || res.Elapsed >= time.Minute {
		t.Errorf("requests %d elapsed %v: want a partial run", res.Requests, res.Elapsed)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestRunRegionsAndUsers uses a handler that plays gateway: it routes by user id and
// names the region in X-Shift-Region, and it records every user id it sees.
func TestRunRegionsAndUsers(t *testing.T) {
	const users = 50
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		want = map[string]int64{}
	)
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		id := string(ctx.Request.Header.Peek("X-User-Id"))
		n, err := strconv.Atoi(strings.TrimPrefix(id, "u-"))
		region := "idc"
		if err == nil && n%4 == 0 {
			region = "cloud"
		}
		mu.Lock()
		seen[id]++
		want[region]++
		mu.Unlock()
		ctx.Response.Header.Set("X-Shift-Region", region)
	})
	const n = 2000
	res, err := Run(t.Context(), Options{URL: url + "/api/feed", Conns: 8, N: n, Users: users, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, res)
	mu.Lock()
	defer mu.Unlock()
	for id := range seen {
		num, err := strconv.Atoi(strings.TrimPrefix(id, "u-"))
		if !strings.HasPrefix(id, "u-") || err != nil || num < 0 || num >= users {
			t.Errorf("user id %q: want u-0 .. u-%d", id, users-1)
		}
	}
	// 2000 uniform draws from 50 ids miss one with probability ~ 50·(49/50)^2000 ≈ 1e-16.
	if len(seen) != users {
		t.Errorf("server saw %d distinct user ids, want all %d", len(seen), users)
	}
	if res.Regions["idc"] != want["idc"] || res.Regions["cloud"] != want["cloud"] || len(res.Regions) != 2 {
		t.Errorf("regions %v, server sent %v", res.Regions, want)
	}
}

func TestRunNoUserHeaderWhenUsersZero(t *testing.T) {
	var with atomic.Int64
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		if len(ctx.Request.Header.Peek("X-User-Id")) > 0 {
			with.Add(1)
		}
	})
	res, err := Run(t.Context(), Options{URL: url, Conns: 2, N: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Successes != 20 || with.Load() != 0 {
		t.Errorf("successes %d, requests with a user id %d; want 20 and 0", res.Successes, with.Load())
	}
	if res.Regions[RegionNone] != 20 {
		t.Errorf("regions %v, want %s: 20", res.Regions, RegionNone)
	}
}

func TestRunErrorKinds(t *testing.T) {
	var nth atomic.Int64
	statusURL := serve(t, func(ctx *fasthttp.RequestCtx) {
		switch nth.Add(1) % 3 {
		case 0:
			ctx.SetStatusCode(503)
		case 1:
			ctx.SetStatusCode(404)
		}
	})
	slowURL := serve(t, func(ctx *fasthttp.RequestCtx) { time.Sleep(300 * time.Millisecond) })
	resetURL := "http://" + acceptAndClose(t)

	const n = 12
	for _, tc := range []struct {
		name string
		url  string
		want map[string]int64 // the exact error counts by kind
	}{
		{"status classes", statusURL, map[string]int64{"status_4xx": n / 3, "status_5xx": n / 3}},
		{"refused", "http://" + closedPort(t), map[string]int64{"connect_refused": n}},
		{"timeout", slowURL, map[string]int64{"timeout": n}},
		{"reset", resetURL, map[string]int64{"reset": n}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(t.Context(), Options{
				URL: tc.url, Conns: 3, N: n, Users: 1000, Timeout: 50 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, res)
			if res.Requests != n {
				t.Errorf("requests %d, want %d", res.Requests, n)
			}
			if !maps.Equal(res.ErrorKinds, tc.want) {
				t.Errorf("error kinds %v, want %v", res.ErrorKinds, tc.want)
			}
		})
	}
}

// acceptAndClose listens on loopback and closes every connection after reading the
// request head, without answering: to a client, a reset.
func acceptAndClose(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestOpenLoopChargesStall: a backend that stalls once. In the open loop every request
// whose intended send time fell in the stall is charged the wait, so the histogram holds
// many values of the order of the stall; the closed loop, which sends nothing while it
// waits, records about one.
func TestOpenLoopChargesStall(t *testing.T) {
	const (
		stall   = 400 * time.Millisecond
		rate    = 200.0 // one intended send every 5 ms
		stallAt = 20    // the 20th request stalls, 100 ms into the schedule
		n       = 160   // 800 ms of schedule
	)
	for _, tc := range []struct {
		name     string
		rate     float64
		min, max int64 // bounds on the count of latencies >= stall/2
	}{
		// Tickets intended in the first half of the stall wait more than stall/2:
		// rate × stall/2 = 40 of them; allow for scheduling slack.
		{"open", rate, 25, n},
		{"closed", 0, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var count atomic.Int64
			url := serve(t, func(ctx *fasthttp.RequestCtx) {
				if count.Add(1) == stallAt {
					time.Sleep(stall)
				}
			})
			res, err := Run(t.Context(), Options{
				URL: url, Conns: 1, Rate: tc.rate, N: n, Timeout: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, res)
			if res.Successes != n {
				t.Fatalf("successes %d, want %d (errors %v)", res.Successes, n, res.ErrorKinds)
			}
			if res.Latency.Max < stall {
				t.Errorf("max latency %v, want >= the stall %v", res.Latency.Max, stall)
			}
			got := countAtLeast(res.Histogram, stall/2)
			if got < tc.min || got > tc.max {
				t.Errorf("%d latencies >= %v, want %d..%d", got, stall/2, tc.min, tc.max)
			}
		})
	}
}

func TestRunRefusesRemoteTarget(t *testing.T) {
	for _, url := range []string{
		"http://192.0.2.1/",        // TEST-NET-1: never contacted, refused before any dial
		"http://[2001:db8::1]:80/", // documentation range
		"http://10.0.0.1:8080/x",
	} {
		_, err := Run(t.Context(), Options{URL: url, N: 1})
		if !errors.Is(err, ErrRemoteTarget) {
			t.Errorf("Run(%s) err = %v, want ErrRemoteTarget", url, err)
		}
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	f := func(o Options, wantErr string) {
		t.Helper()
		_, err := Run(t.Context(), o)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Run(%+v) err = %v, want it to mention %q", o, err, wantErr)
		}
	}
	f(Options{N: 1}, "no target URL")
	f(Options{URL: "http://127.0.0.1:1/"}, "unbounded")
	f(Options{URL: "http://127.0.0.1:1/", N: 1, Conns: -1}, "conns")
	f(Options{URL: "http://127.0.0.1:1/", N: 1, Rate: -1}, "rate")
	f(Options{URL: "http://127.0.0.1:1/", N: -1}, "n: want")
	f(Options{URL: "http://127.0.0.1:1/", N: 1, Users: -3}, "users")
	f(Options{URL: "http://127.0.0.1:1/", N: 1, Timeout: -time.Second}, "timeout")
	f(Options{URL: "ftp://127.0.0.1:1/", N: 1}, "want an http:// or https:// URL")
	f(Options{URL: "http://127.0.0.1:1/", Duration: -time.Second}, "duration")
}

func TestRunSendsMethodHeadersBody(t *testing.T) {
	type seenReq struct{ method, path, hdr, body string }
	got := make(chan seenReq, 1)
	url := serve(t, func(ctx *fasthttp.RequestCtx) {
		select {
		case got <- seenReq{string(ctx.Method()), string(ctx.RequestURI()), string(ctx.Request.Header.Peek("X-Test")), string(ctx.PostBody())}:
		default:
		}
	})
	res, err := Run(t.Context(), Options{
		URL: url + "/api/feed?page=2", Method: "POST", N: 3, Conns: 1,
		Headers: []Header{{"X-Test", "yes"}}, Body: []byte(`{"a":1}`),
	})
	if err != nil || res.Successes != 3 {
		t.Fatalf("res %+v err %v", res, err)
	}
	want := seenReq{"POST", "/api/feed?page=2", "yes", `{"a":1}`}
	if s := <-got; s != want {
		t.Errorf("server saw %+v, want %+v", s, want)
	}
}
