package mirror

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/loadtest/freeport"
)

// serve runs h on a loopback listener until the test ends and returns its address.
func serve(t testing.TB, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fasthttp.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln) //nolint:errcheck // ends with the listener
	}()
	t.Cleanup(func() {
		s.Shutdown() //nolint:errcheck
		<-done
	})
	return ln.Addr().String()
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// waitCompleted waits until route has finished n copies. It waits for a condition,
// bounded, and asserts nothing about time.
func waitCompleted(t testing.TB, m *Mirror, route int, n uint64) Counters {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := m.Counters(route)
		if c.Completed >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d copies completed: %+v", c.Completed, n, c)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fetch is the stand-in for the proxy's forward: it asks addr and returns an Exchange
// over the request and answer, which stay valid until the test releases them.
func fetch(t testing.TB, hc *fasthttp.HostClient, method, uri string, body []byte) (*fasthttp.Request, *fasthttp.Response, Exchange) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("app.example")
	req.SetBody(body)
	start := time.Now()
	if err := hc.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	x := Exchange{Req: &req.Header, ReqBody: body, Status: resp.StatusCode(), Resp: &resp.Header, RespBody: resp.Body(), Latency: time.Since(start)}
	return req, resp, x
}

func release(req *fasthttp.Request, resp *fasthttp.Response) {
	fasthttp.ReleaseRequest(req)
	fasthttp.ReleaseResponse(resp)
}
