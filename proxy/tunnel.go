package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/breaker"
	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/wire"
	"github.com/shiftgate/shiftgate/routing"
)

// tunnel carries an upgraded connection (WebSocket) to the decided region: the request
// head goes upstream as is (with the proxy's header changes); once the upstream has
// answered 101, its answer and everything after flow both ways unparsed. Any other
// answer is relayed as an ordinary response and both connections close: a client
// must not get a raw pipe to a backend that never agreed to switch protocols, or the
// bytes it sends next would reach the backend without passing the gateway's checks.
func (s *Server) tunnel(ctx *fasthttp.RequestCtx, st *state, rt *routeState, d routing.Decision, proto, id []byte) {
	region := d.Region
	if cl := ctx.Request.Header.ContentLength(); cl > 0 || cl == -1 {
		// An upgrade is a GET without a body; a body would have to be buffered
		// whole before the switch.
		errorResponse(ctx, fasthttp.StatusBadRequest, "upgrade request with a body")
		ctx.SetConnectionClose()
		return
	}
	m := rt.metrics
	h := &ctx.Request.Header
	h.SetBytesV(routing.RegionHeader, st.regions[region])
	h.Set(fasthttp.HeaderConnection, "Upgrade")
	h.SetBytesV(fasthttp.HeaderUpgrade, proto)
	// The head must be copied now: ctx is reused once the handler returns.
	head := append([]byte(nil), h.Header()...)
	// The connection goes through the region's breaker like any request: an open
	// breaker refuses it, a failed dial counts against the region.
	start := time.Now()
	var up net.Conn
	var dialErr error
	dial := func() breaker.Outcome {
		if up, dialErr = st.pools[region].dialTunnel(st.cfg.Timeouts.Connect.D); dialErr != nil {
			if isTLSFailure(dialErr) {
				s.upstreamTLSFailed(st.pools[region], "", dialErr)
			}
			return breaker.Failure
		}
		return breaker.Success
	}
	var err error
	if br := rt.run.breakers[region]; br != nil {
		_, err = br.Do(dial)
	} else {
		dial()
	}
	m.latency[region].observe(time.Since(start))
	switch {
	case errors.Is(err, breaker.ErrOpen):
		m.requests[region][0].Inc()
		errorResponse(ctx, fasthttp.StatusServiceUnavailable, "region "+string(st.regions[region])+" unavailable (circuit open)")
		return
	case up == nil:
		m.requests[region][0].Inc()
		m.noUpstream.Inc()
		if isTLSFailure(dialErr) {
			errorResponse(ctx, fasthttp.StatusBadGateway, "TLS to region "+string(st.regions[region])+" failed (the gateway's log says why)")
			return
		}
		errorResponse(ctx, fasthttp.StatusBadGateway, "cannot connect to region "+string(st.regions[region]))
		return
	}
	key := tunnelKey{route: int(d.Route), region: region}
	ex := explainFor(st, ctx)
	host := append([]byte(nil), h.Host()...)
	path := append([]byte(nil), ctx.Path()...)
	reqID := append([]byte(nil), id...) // ctx's bytes are reused once the handler returns
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		t := &liveTunnel{client: c, upstream: up, key: key, user: ex, host: host, path: path}
		s.tunnels.add(t)
		defer s.tunnels.remove(t)
		if _, err := up.Write(head); err != nil {
			c.Write(tunnelFailed) //nolint:errcheck // closing anyway
			return
		}
		upr := bufio.NewReader(up)
		if !s.upgradeGranted(c, up, upr, st, region, reqID) {
			m.requests[region][statusClass(fasthttp.StatusBadGateway)].Inc()
			return
		}
		m.requests[region][statusClass(fasthttp.StatusSwitchingProtocols)].Inc()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); pipe(up, c) }()
		go func() { defer wg.Done(); pipe(c, upr) }()
		wg.Wait()
	})
}

var tunnelFailed = []byte("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 32\r\n\r\nshiftgate: upgrade failed (502)\n")

// upgradeGranted waits (up to the response-head timeout) for the upstream's answer to
// an upgrade request. On 101 it reports true and leaves the answer unread in upr, to be
// piped. Otherwise it relays the answer to the client as an ordinary, closing response
// (hop-by-hop fields stripped), or a 502 if there is no valid answer, and reports false.
func (s *Server) upgradeGranted(c, up net.Conn, upr *bufio.Reader, st *state, region conf.RegionID, id []byte) bool {
	t := st.cfg.Timeouts
	up.SetReadDeadline(time.Now().Add(t.ResponseHeader.D)) //nolint:errcheck
	if line, err := upr.Peek(len("HTTP/1.1 101 ")); err == nil &&
		bytes.HasPrefix(line, []byte("HTTP/1.")) && bytes.HasSuffix(line, []byte(" 101 ")) {
		// The 101 head is relayed with the region added, as on every answer; the
		// bytes after it belong to the new protocol and are piped untouched.
		ok := relaySwitchingHead(c, upr, st.regions[region], id, t.Body.D)
		up.SetReadDeadline(time.Time{}) //nolint:errcheck
		return ok
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	up.SetReadDeadline(time.Now().Add(t.Body.D)) //nolint:errcheck
	c.SetWriteDeadline(time.Now().Add(t.Body.D)) //nolint:errcheck
	if err := resp.ReadLimitBody(upr, 1<<20); err != nil || resp.StatusCode() == fasthttp.StatusSwitchingProtocols {
		c.Write(tunnelFailed) //nolint:errcheck // closing anyway
		return false
	}
	wire.StripResponseHeaders(&resp.Header)
	resp.Header.SetBytesKV(strRegionHeader, st.regions[region])
	resp.SetConnectionClose()
	w := bufio.NewWriter(c)
	if resp.Write(w) == nil {
		w.Flush() //nolint:errcheck // closing anyway
	}
	return false
}

// maxSwitchingHead bounds the 101 answer's head.
const maxSwitchingHead = 16 << 10

// relaySwitchingHead copies the upstream's 101 head from upr to c with an
// X-Shift-Region field added before its end, and reports whether it all went through.
func relaySwitchingHead(c net.Conn, upr *bufio.Reader, region, id []byte, timeout time.Duration) bool {
	head := make([]byte, 0, 512)
	for {
		line, err := upr.ReadSlice('\n')
		if err != nil || len(head)+len(line) > maxSwitchingHead {
			c.Write(tunnelFailed) //nolint:errcheck // closing anyway
			return false
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			head = append(head, routing.RegionHeader...)
			head = append(head, ": "...)
			head = append(head, region...)
			head = append(head, "\r\n"...)
			head = append(head, strRequestID...)
			head = append(head, ": "...)
			head = append(head, id...)
			head = append(head, "\r\n\r\n"...)
			break
		}
		if len(line) > len(strRequestID) && line[len(strRequestID)] == ':' && bytes.EqualFold(line[:len(strRequestID)], strRequestID) {
			continue // the gateway's id is the one the client gets
		}
		head = append(head, line...)
	}
	c.SetWriteDeadline(time.Now().Add(timeout)) //nolint:errcheck
	_, err := c.Write(head)
	c.SetWriteDeadline(time.Time{}) //nolint:errcheck
	return err == nil
}

// pipe copies src to dst until either ends, then closes both ends' write sides.
func pipe(dst net.Conn, src io.Reader) {
	io.Copy(dst, src) //nolint:errcheck // the end of a tunnel is not an error
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite() //nolint:errcheck
	} else {
		dst.Close()
	}
}

// tunnelKey is where a tunnel went.
type tunnelKey struct {
	route  int
	region conf.RegionID
}

// liveTunnel is one open tunnel; user holds what is needed to decide its user again.
type liveTunnel struct {
	client, upstream net.Conn
	key              tunnelKey
	user             *routing.StaticRequest
	host, path       []byte
	closing          bool
}

// tunnelSet tracks open tunnels so a split change or rollback can move their users.
type tunnelSet struct {
	mu   sync.Mutex
	open map[*liveTunnel]struct{}
}

func newTunnelSet() *tunnelSet { return &tunnelSet{open: map[*liveTunnel]struct{}{}} }

func (ts *tunnelSet) add(t *liveTunnel) {
	ts.mu.Lock()
	ts.open[t] = struct{}{}
	ts.mu.Unlock()
}

func (ts *tunnelSet) remove(t *liveTunnel) {
	ts.mu.Lock()
	delete(ts.open, t)
	ts.mu.Unlock()
	t.client.Close()
	t.upstream.Close()
}

// Len reports how many tunnels are open.
func (ts *tunnelSet) Len() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.open)
}

// recheck decides every open tunnel's user again under st; a tunnel whose user now
// belongs to another region is closed after grace, so its client reconnects there.
func (ts *tunnelSet) recheck(st *state, grace time.Duration) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for t := range ts.open {
		if t.closing || t.user == nil {
			continue
		}
		d := st.table.Decide(t.host, t.path, t.user)
		if d.Route >= 0 && d.Region == t.key.region {
			continue
		}
		t.closing = true
		tt := t
		time.AfterFunc(grace, func() {
			tt.client.Close()
			tt.upstream.Close()
		})
	}
}

func (ts *tunnelSet) closeAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for t := range ts.open {
		t.client.Close()
		t.upstream.Close()
	}
}

// explainFor captures what routing needs to decide a tunnel's user again later.
func explainFor(st *state, ctx *fasthttp.RequestCtx) *routing.StaticRequest {
	r := &routing.StaticRequest{MethodName: string(ctx.Method()), PeerAddr: peerAddr(ctx)}
	for k, v := range ctx.Request.Header.All() {
		r.Headers = append(r.Headers, [2]string{string(k), string(v)})
	}
	r.Cookies = map[string]string{}
	for k, v := range ctx.Request.Header.Cookies() {
		r.Cookies[string(k)] = string(v)
	}
	r.QueryArgs = map[string]string{}
	for k, v := range ctx.QueryArgs().All() {
		if _, seen := r.QueryArgs[string(k)]; !seen {
			r.QueryArgs[string(k)] = string(v)
		}
	}
	return r
}
