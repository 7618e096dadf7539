package proxy

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/tlsconf"
	"github.com/shiftgate/shiftgate/proxy/wire"
)

// upstreamSettings are the parts of the config that shape an upstream client. Two
// configs with equal settings share the client, so a reload keeps warm connections.
type upstreamSettings struct {
	addr           string
	maxConns       int
	connect        time.Duration
	responseHeader time.Duration
	body           time.Duration
	idle           time.Duration
	resolveEvery   time.Duration
	// tls identifies the region's TLS settings ("" for plain upstreams).
	tls string
}

// pool is one region's upstreams: one fasthttp.HostClient per address, picked round
// robin. It is immutable once built; the clients inside are safe for concurrent use.
type pool struct {
	region  string
	clients []*fasthttp.HostClient
	next    atomic.Uint32
	// pipes are the pipelined clients, one per address, for routes with pipeline on.
	pipes    []*wire.PipeClient
	nextPipe atomic.Uint32
	// dialTunnel opens a raw connection to one of the region's upstreams for an
	// upgraded (WebSocket) request, through the same resolver cache as the clients,
	// so a tunnel follows a DNS change like pooled requests do; over TLS when the
	// region speaks it.
	dialTunnel func(timeout time.Duration) (net.Conn, error)
	// tlsErrors counts failed TLS handshakes to the region; tlsLog limits their
	// log lines.
	tlsErrors *counter
	tlsLog    tlsLimiter
}

func (p *pool) pickPipe() *wire.PipeClient {
	if len(p.pipes) == 1 {
		return p.pipes[0]
	}
	n := p.nextPipe.Add(1)
	return p.pipes[n%uint32(len(p.pipes))]
}

func (p *pool) pick() *fasthttp.HostClient {
	if len(p.clients) == 1 {
		return p.clients[0]
	}
	n := p.next.Add(1)
	return p.clients[n%uint32(len(p.clients))]
}

// newHostClient builds the client for one upstream address; dial opens its
// connections (TLS ones for a TLS region: the handshake is done before fasthttp
// sees the connection, so it treats it as TLS already).
func newHostClient(s upstreamSettings, dial func(addr string, timeout time.Duration) (net.Conn, error)) *fasthttp.HostClient {
	hc := &fasthttp.HostClient{
		Addr:                          s.addr,
		MaxConns:                      s.maxConns,
		MaxIdleConnDuration:           s.idle,
		ReadTimeout:                   s.body,
		WriteTimeout:                  s.body,
		MaxConnWaitTimeout:            s.connect,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		Transport:                     &wire.Transport{Header: s.responseHeader, Body: s.body, BufferLimit: 64 << 10},
		// The proxy decides about retries itself (failover), never fasthttp: a retry
		// inside the client would multiply the timeout and could replay a request
		// whose body reached a backend.
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			if timeout <= 0 || timeout > s.connect {
				timeout = s.connect
			}
			return dial(addr, timeout)
		},
	}
	if host, _, err := net.SplitHostPort(s.addr); err == nil {
		if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil && s.resolveEvery > 0 {
			// Recycle connections to named hosts so they follow a DNS change too.
			hc.MaxConnDuration = s.resolveEvery
		}
	}
	return hc
}

// upstreamRegistry keeps HostClients across reloads, keyed by their settings, so a
// reload that does not change a region keeps its pooled connections.
type upstreamRegistry struct {
	clients map[upstreamSettings]*fasthttp.HostClient
	pipes   map[pipeSettings]*wire.PipeClient
	dial    func(addr string) (net.Conn, error)
}

// pipeSettings shape a pipelined client; equal settings share it across reloads.
type pipeSettings struct {
	upstreamSettings
	conns   int
	maxBody int64
}

func newUpstreamRegistry(dial func(addr string) (net.Conn, error)) *upstreamRegistry {
	return &upstreamRegistry{
		clients: map[upstreamSettings]*fasthttp.HostClient{},
		pipes:   map[pipeSettings]*wire.PipeClient{},
		dial:    dial,
	}
}

func (u *upstreamRegistry) newPipe(ps pipeSettings, rt *regionTLS) *wire.PipeClient {
	dial := u.dialer(ps.resolveEvery, rt, wire.RawUpstream)
	return wire.NewPipeClient(ps.addr, ps.conns, func(addr string) (net.Conn, error) { return dial(addr, ps.connect) },
		ps.responseHeader, ps.body, ps.idle, int(ps.maxBody))
}

// dialer returns a dial function for a region's upstreams: TCP through a DNS cache
// refreshed every resolveEvery (or the registry's own dial), with the TLS handshake
// on top when rt is set. wrap, when set, wraps each TCP connection: wire.WatchUpstream
// for pooled clients (raw reads and writes, and a check for stray bytes),
// wire.RawUpstream for pipelined ones; tunnels keep the bare connection (splice).
// Every caller gets its own dialer, with its own cache of sessions to resume.
func (u *upstreamRegistry) dialer(resolveEvery time.Duration, rt *regionTLS, wrap func(net.Conn, error) (net.Conn, error)) func(addr string, timeout time.Duration) (net.Conn, error) {
	var raw func(addr string, timeout time.Duration) (net.Conn, error)
	if u.dial != nil {
		raw = func(addr string, _ time.Duration) (net.Conn, error) { return u.dial(addr) }
	} else {
		// Host names are resolved again after this long, so a DNS change is followed.
		d := &fasthttp.TCPDialer{DNSCacheDuration: resolveEvery}
		raw = d.DialTimeout
		if wrap != nil {
			raw = func(addr string, timeout time.Duration) (net.Conn, error) {
				return wrap(d.DialTimeout(addr, timeout))
			}
		}
	}
	if rt == nil {
		return raw
	}
	return tlsconf.NewDialer(rt.opts, raw).DialTimeout
}

// tunnelDialer returns p's dialer for tunnels: round robin over the region's addresses
// (those of its clients), resolved through a DNS cache refreshed every resolveEvery.
func (u *upstreamRegistry) tunnelDialer(p *pool, resolveEvery time.Duration, rt *regionTLS) func(time.Duration) (net.Conn, error) {
	dial := u.dialer(resolveEvery, rt, nil)
	return func(timeout time.Duration) (net.Conn, error) { return dial(p.pick().Addr, timeout) }
}

// pools builds the region pools of a config; used marks the clients it handed out so
// that sweep can close the rest; rtls is each region's TLS (nil: plain). Called
// while compiling, one goroutine at a time.
func (u *upstreamRegistry) pools(c *conf.Config, used map[upstreamSettings]bool, usedPipes map[pipeSettings]bool, rtls []*regionTLS) []*pool {
	pipelined := false
	for i := range c.Routes {
		pipelined = pipelined || c.Routes[i].Pipeline
	}
	t := c.Timeouts
	out := make([]*pool, len(c.RegionList))
	for i, r := range c.RegionList {
		rt := rtls[r.ID]
		p := &pool{region: r.Name}
		p.dialTunnel = u.tunnelDialer(p, r.ResolveEvery.D, rt)
		maxConns := r.MaxConnsPerUpstream
		for _, addr := range r.Upstreams {
			s := upstreamSettings{
				addr: addr, maxConns: maxConns,
				connect:        t.Connect.D,
				responseHeader: t.ResponseHeader.D,
				body:           t.Body.D,
				idle:           t.UpstreamIdle.D,
				resolveEvery:   r.ResolveEvery.D,
			}
			if rt != nil {
				s.tls = rt.key
			}
			hc := u.clients[s]
			if hc == nil {
				hc = newHostClient(s, u.dialer(s.resolveEvery, rt, wire.WatchUpstream))
				u.clients[s] = hc
			}
			used[s] = true
			p.clients = append(p.clients, hc)
			if pipelined {
				ps := pipeSettings{upstreamSettings: s, conns: r.PipelineConns, maxBody: c.Limits.MaxPipelinedResponseBytes.N}
				pc := u.pipes[ps]
				if pc == nil {
					pc = u.newPipe(ps, rt)
					u.pipes[ps] = pc
				}
				usedPipes[ps] = true
				p.pipes = append(p.pipes, pc)
			}
		}
		out[i] = p
	}
	return out
}

// sweep forgets clients no config uses any more; their idle connections close as
// fasthttp's idle cleaner runs.
func (u *upstreamRegistry) sweep(used map[upstreamSettings]bool, usedPipes map[pipeSettings]bool) {
	for s, pc := range u.pipes {
		if !usedPipes[s] {
			// Requests already on it finish; its connections close once idle.
			go func() { time.Sleep(s.responseHeader + time.Second); pc.Close() }()
			delete(u.pipes, s)
		}
	}
	for s, hc := range u.clients {
		if !used[s] {
			hc.CloseIdleConnections()
			delete(u.clients, s)
		}
	}
}

// closeIdle closes every pooled upstream connection not carrying a request, at
// shutdown: backends see the gateway go at once instead of at their idle timeout.
// Called once no request runs (after the server's Shutdown).
func (u *upstreamRegistry) closeIdle() {
	for _, hc := range u.clients {
		hc.CloseIdleConnections()
	}
}
