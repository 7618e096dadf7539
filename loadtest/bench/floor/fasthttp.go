package main

import (
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// fasthttpServer is fasthttp's own floor: its server handing every request to a
// HostClient for the backend, nothing else.
type fasthttpServer struct {
	ln  net.Listener
	srv *fasthttp.Server
}

func startFasthttp(listen, backend string) (*fasthttpServer, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	hc := &fasthttp.HostClient{
		Addr:                          backend,
		MaxConns:                      1 << 16,
		MaxIdleConnDuration:           time.Minute,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Error("bad gateway", fasthttp.StatusBadGateway)
			}
		},
		NoDefaultServerHeader:         true,
		NoDefaultDate:                 true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: true,
		Concurrency:                   1 << 16,
	}
	s := &fasthttpServer{ln: ln, srv: srv}
	go srv.Serve(ln)
	return s, nil
}

func (s *fasthttpServer) addr() string { return s.ln.Addr().String() }

func (s *fasthttpServer) close() { s.srv.Shutdown() }
