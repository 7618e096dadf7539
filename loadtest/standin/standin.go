// Package standin runs stand-in regions: small HTTP servers on loopback that answer
// every request with the name of their region, so that the demo, the tests and the
// bench can see where the gateway sent each request.
package standin

import (
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// RegionHeader is the response header in which a stand-in names its region.
const RegionHeader = "X-Served-By"

// Server is one stand-in region listening on one address. Its zero value is not usable;
// build it with Start. It is safe for concurrent use.
type Server struct {
	Region string
	Addr   string

	ln       net.Listener
	srv      *fasthttp.Server
	requests atomic.Int64
	body     []byte
	// failBP is the share of requests answered 503, in basis points.
	failBP atomic.Int64
	failIf func(h *fasthttp.RequestHeader) bool
}

// Options tune a stand-in. The zero value answers a short JSON body naming the region.
type Options struct {
	// BodySize, when > 0, makes every answer a fixed body of that many bytes instead of
	// the JSON label (the bench uses it for a fixed-size backend).
	BodySize int
	// FailPercent is the share of requests answered with a 503 (0..100), spread
	// evenly over the requests; SetFailPercent changes it while serving.
	FailPercent float64
	// FailIf, when set, answers a 503 to every request it returns true for (such
	// as the users of some buckets: a region broken for part of its users).
	FailIf func(h *fasthttp.RequestHeader) bool
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves until Close.
func Start(region, addr string, opt Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Region: region, Addr: ln.Addr().String(), ln: ln, failIf: opt.FailIf}
	s.SetFailPercent(opt.FailPercent)
	if opt.BodySize > 0 {
		s.body = make([]byte, opt.BodySize)
		for i := range s.body {
			s.body[i] = 'a' + byte(i%26)
		}
	}
	s.srv = &fasthttp.Server{
		Handler:                       s.handle,
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		DisableHeaderNamesNormalizing: true,
		IdleTimeout:                   time.Minute,
		MaxRequestBodySize:            256 << 20,
		ReduceMemoryUsage:             false,
	}
	go s.srv.Serve(ln) //nolint:errcheck // Serve returns when Close closes the listener.
	return s, nil
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	n := s.requests.Add(1)
	ctx.Response.Header.Set(RegionHeader, s.Region)
	// A multiplicative hash of the request number spreads the failures evenly
	// instead of in runs.
	if bp := s.failBP.Load(); (bp > 0 && int64((uint64(n)*0x9E3779B97F4A7C15)>>32%10000) < bp) ||
		(s.failIf != nil && s.failIf(&ctx.Request.Header)) {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetContentType("text/plain")
		ctx.SetBodyString("stand-in failing on purpose\n")
		return
	}
	if s.body != nil {
		ctx.SetContentType("text/plain")
		ctx.SetBody(s.body)
		return
	}
	ctx.SetContentType("application/json")
	b := ctx.Response.BodyWriter()
	// Built by hand: this handler also serves the bench, where encoding/json would cost.
	w := func(p string) { b.Write([]byte(p)) } //nolint:errcheck // bytebuffer never fails
	w(`{"region":"`)
	w(s.Region)
	w(`","method":"`)
	w(string(ctx.Method()))
	w(`","path":"`)
	w(strconv.Quote(string(ctx.RequestURI()))[1:])
	b.Write([]byte{'}'}) //nolint:errcheck
}

// SetFailPercent makes the stand-in answer that share of requests (0..100, clamped)
// with a 503 from now on: a region that fails part of its traffic.
func (s *Server) SetFailPercent(p float64) {
	s.failBP.Store(int64(min(max(p, 0), 100) * 100))
}

// Requests reports how many requests this stand-in has answered.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Close stops the stand-in and closes its open connections. It closes the listener
// itself too: fasthttp's Shutdown misses one its Serve has not registered yet (a
// stand-in closed right after Start), and the port must be free when Close returns.
func (s *Server) Close() error {
	s.ln.Close() //nolint:errcheck // fasthttp may close it too
	err := s.srv.Shutdown()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
