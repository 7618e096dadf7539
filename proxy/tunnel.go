package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
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
//
// The dial, the request head and the upstream's answer go through the region's
// breaker as one exchange, as a plain request's do: a refused dial, no answer within
// timeouts.response_header (504), a broken answer (502) or a failure status count
// against the region; a 101 is a success.
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
	// What decides the user again later, before the gateway names the region in the
	// head: the recheck must not read the gateway's own X-Shift-Region as affinity.
	ex := explainFor(st, ctx, d)
	h := &ctx.Request.Header
	h.SetBytesV(routing.RegionHeader, st.regions[region])
	h.Set(fasthttp.HeaderConnection, "Upgrade")
	h.SetBytesV(fasthttp.HeaderUpgrade, proto)
	head := h.Header()
	t := st.cfg.Timeouts
	br := rt.run.breakers[region]
	start := time.Now()
	var (
		up      net.Conn
		upr     *bufio.Reader
		why     failure
		dialErr error
		granted bool
	)
	call := func() breaker.Outcome {
		if up, dialErr = st.pools[region].dialTunnel(t.Connect.D); dialErr != nil {
			why = failConnect
			if isTLSFailure(dialErr) {
				why = failTLS
				s.upstreamTLSFailed(st.pools[region], "", dialErr)
			}
			return breaker.Failure
		}
		up.SetWriteDeadline(time.Now().Add(t.Body.D)) //nolint:errcheck // a dead conn fails the write
		if _, err := up.Write(head); err != nil {
			why = failUpstream
			return breaker.Failure
		}
		upr = bufio.NewReader(up)
		var o breaker.Outcome
		granted, why, o = readUpgradeAnswer(ctx, up, upr, t, br)
		return o
	}
	var err error
	if br != nil {
		_, err = br.Do(call)
	} else {
		call()
	}
	m.latency[region].observe(time.Since(start))
	if errors.Is(err, breaker.ErrOpen) {
		m.requests[region][0].Inc()
		failureResponse(ctx, st, failOpen, region)
		return
	}
	if !granted {
		if up != nil {
			up.Close()
		}
		if why == failNone || why == failStatus {
			// The upstream's own answer, relayed: the client stays off a raw pipe.
			m.requests[region][statusClass(ctx.Response.StatusCode())].Inc()
			ctx.Response.Header.SetProtocol(nil) // the gateway's own version, as in finishResponse
			wire.StripResponseHeaders(&ctx.Response.Header)
			ctx.Response.Header.SetBytesKV(strRegionHeader, st.regions[region])
		} else {
			m.requests[region][0].Inc()
			m.noUpstream.Inc()
			failureResponse(ctx, st, why, region)
		}
		// Last: removing the answer's Connection field, or a reset of the
		// response, would clear it.
		ctx.SetConnectionClose()
		return
	}
	m.requests[region][statusClass(fasthttp.StatusSwitchingProtocols)].Inc()
	key := tunnelKey{route: int(d.Route), region: region}
	host := append([]byte(nil), h.Host()...)
	path := append([]byte(nil), ctx.Path()...)
	reqID := append([]byte(nil), id...) // ctx's bytes are reused once the handler returns
	regionName := st.regions[region]
	// fasthttp skips the hijack handler when the client's connection fails first
	// (its deadline cannot be set): the upstream, which has switched already, would
	// stay open until the backend closed it. Whichever comes first owns it: the
	// handler, or this timer, which closes it.
	//
	// The tunnel is in the set from here, before the handler returns, so a split
	// change or a shutdown between now and the hijack reaches it too (the client's
	// end is attached when the hijack runs).
	lt := &liveTunnel{upstream: up, key: key, user: ex, host: host, path: path}
	s.tunnels.add(lt)
	var owned atomic.Bool
	orphan := time.AfterFunc(t.Body.D, func() {
		if owned.CompareAndSwap(false, true) {
			s.tunnels.remove(lt)
		}
	})
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if !owned.CompareAndSwap(false, true) {
			c.Write(tunnelFailed) //nolint:errcheck // too late: the upstream is closed
			return
		}
		orphan.Stop()
		defer s.tunnels.remove(lt)
		if !s.tunnels.attach(lt, c) {
			c.Write(tunnelFailed) //nolint:errcheck // closed by a shutdown first
			return
		}
		// The 101 head is relayed with the region added, as on every answer; the
		// bytes after it belong to the new protocol and are piped untouched.
		ok := relaySwitchingHead(c, upr, regionName, reqID, t.Body.D)
		up.SetReadDeadline(time.Time{})  //nolint:errcheck
		up.SetWriteDeadline(time.Time{}) //nolint:errcheck
		if !ok {
			return
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); pipe(up, c) }()
		go func() { defer wg.Done(); pipe(c, upr) }()
		wg.Wait()
	})
}

var tunnelFailed = []byte("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 32\r\n\r\nshiftgate: upgrade failed (502)\n")

// readUpgradeAnswer waits (up to timeouts.response_header) for the upstream's answer
// to an upgrade request. On 101 it reports granted and leaves the answer unread in
// upr, to be relayed and piped. Otherwise it reads the answer (bounded, within
// timeouts.body; a HEAD's without a body) into ctx.Response, to be relayed as an
// ordinary, closing response, and judges it as the breaker judges any answer:
// failStatus for a failure status. No answer in time is failTimeout, a broken or
// second 101 failUpstream.
func readUpgradeAnswer(ctx *fasthttp.RequestCtx, up net.Conn, upr *bufio.Reader, t conf.Timeouts, br *breaker.Breaker) (granted bool, why failure, o breaker.Outcome) {
	up.SetReadDeadline(time.Now().Add(t.ResponseHeader.D)) //nolint:errcheck
	line, err := upr.Peek(len("HTTP/1.1 101 "))
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return false, failTimeout, breaker.Failure
		}
		if len(line) == 0 {
			return false, failUpstream, breaker.Failure // closed without an answer
		}
	}
	if err == nil && bytes.HasPrefix(line, []byte("HTTP/1.")) && bytes.HasSuffix(line, []byte(" 101 ")) {
		return true, failNone, breaker.Success
	}
	up.SetReadDeadline(time.Now().Add(t.Body.D)) //nolint:errcheck
	// No Reset: it would clear the server's settings on the response (no default
	// Content-Type or Date), and the read replaces the head anyway.
	resp := &ctx.Response
	// The answer to a HEAD has no body, whatever its Content-Length says: read as
	// if it had one, it would wait out timeouts.body and count as the region's
	// failure, which any client could then bring about at will.
	resp.SkipBody = ctx.IsHead()
	if err := resp.ReadLimitBody(upr, 1<<20); err != nil || resp.StatusCode() == fasthttp.StatusSwitchingProtocols {
		resp.Reset()
		return false, failUpstream, breaker.Failure
	}
	if br != nil && br.ClassifyStatus(resp.StatusCode()) == breaker.Failure {
		return false, failStatus, breaker.Failure
	}
	return false, failNone, breaker.Success
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
		if i := bytes.IndexByte(line, ':'); i > 0 && wire.IsGatewayAnswerField(bytes.TrimRight(line[:i], " \t")) {
			continue // the gateway says what it did, as on every answer
		}
		if len(head) == 0 {
			// The status line ("HTTP/1.x 101 ", checked) in the gateway's own version.
			head = append(head, wire.StrHTTP11...)
			line = line[len(wire.StrHTTP11):]
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
// client is nil until the hijack runs; client, closing and ended belong to the set's
// lock.
type liveTunnel struct {
	client, upstream net.Conn
	key              tunnelKey
	user             *routing.StaticRequest
	host, path       []byte
	closing          bool // a split change moved its user: it ends after the grace
	ended            bool // closed: a hijack that runs now must not attach
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

// attach gives t its client's connection when the hijack runs; false when t was
// closed before (a shutdown), and the caller keeps c.
func (ts *tunnelSet) attach(t *liveTunnel, c net.Conn) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t.ended {
		return false
	}
	t.client = c
	return true
}

func (ts *tunnelSet) remove(t *liveTunnel) {
	ts.mu.Lock()
	delete(ts.open, t)
	ts.mu.Unlock()
	ts.end(t)
}

// end closes both of t's connections (the client's once attached).
func (ts *tunnelSet) end(t *liveTunnel) {
	ts.mu.Lock()
	t.ended = true
	c := t.client
	ts.mu.Unlock()
	if c != nil {
		c.Close()
	}
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
		time.AfterFunc(grace, func() { ts.end(tt) })
	}
}

func (ts *tunnelSet) closeAll() {
	ts.mu.Lock()
	open := make([]*liveTunnel, 0, len(ts.open))
	for t := range ts.open {
		open = append(open, t)
	}
	ts.mu.Unlock()
	for _, t := range open {
		ts.end(t)
	}
}

// explainFor captures what routing needs to decide a tunnel's user again later. The
// X-Shift-Region of the head is the gateway's, not the caller's: it is left out, and
// a tunnel that a trusted caller pinned (affinity) keeps that region by name.
func explainFor(st *state, ctx *fasthttp.RequestCtx, d routing.Decision) *routing.StaticRequest {
	r := &routing.StaticRequest{MethodName: string(ctx.Method()), PeerAddr: peerAddr(ctx)}
	for k, v := range ctx.Request.Header.All() {
		if wire.FoldEqual(k, "x-shift-region") {
			continue
		}
		r.Headers = append(r.Headers, [2]string{string(k), string(v)})
	}
	if d.Reason == routing.ReasonAffinity {
		r.Headers = append(r.Headers, [2]string{routing.RegionHeader, string(st.regions[d.Region])})
	}
	r.Cookies = firstCookies(&ctx.Request.Header)
	r.QueryArgs = map[string]string{}
	for k, v := range ctx.QueryArgs().All() {
		if _, seen := r.QueryArgs[string(k)]; !seen {
			r.QueryArgs[string(k)] = string(v)
		}
	}
	return r
}
