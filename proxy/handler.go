package proxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/breaker"
	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/mirror"
	"github.com/shiftgate/shiftgate/proxy/wire"
	"github.com/shiftgate/shiftgate/routing"
)

// reqView lets routing read a fasthttp request without copying it.
type reqView fasthttp.RequestCtx

func (r *reqView) ctx() *fasthttp.RequestCtx { return (*fasthttp.RequestCtx)(r) }

func (r *reqView) Method() []byte            { return r.Request.Header.Method() }
func (r *reqView) Header(name string) []byte { return r.Request.Header.Peek(name) }
func (r *reqView) Cookie(name string) []byte { return r.Request.Header.Cookie(name) }
func (r *reqView) Query(name string) []byte  { return r.ctx().QueryArgs().Peek(name) }
func (r *reqView) Peer() netip.Addr          { return peerAddr(r.ctx()) }
func (r *reqView) ForwardedFor() [][]byte {
	return r.Request.Header.PeekAll(fasthttp.HeaderXForwardedFor)
}

func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

var (
	strRegionHeader = []byte(routing.RegionHeader)
	strFallback     = []byte("X-Shift-Fallback")
	strHTTP         = []byte("http")
)

// exchange is what became of a request on its way through, for the access log.
type exchange struct {
	// answered is the region whose upstream answered (after a failover, the other
	// one); conf.NoRegion when none did and the gateway or a fallback answered.
	answered conf.RegionID
	// upstream is the address of the last upstream the request was sent to ("" for
	// none). It names a string the upstream client holds: no copy.
	upstream string
	// bytesIn counts the request body bytes read from the client.
	bytesIn int64
	// paced is how long a byte budget held the request back before it crossed: the
	// operator's lever, left out of the latency the cohort statistics record.
	paced time.Duration
}

// handle serves one client request: decide, forward, fail over, fall back.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	st := s.state.Load()
	h := &ctx.Request.Header
	var idbuf [maxRequestID]byte
	id := appendRequestID(idbuf[:0], h.PeekBytes(strRequestID))
	ex := exchange{answered: conf.NoRegion}
	if reason := refuseRequest(ctx); reason != "" {
		s.stats.badRequests.Inc()
		errorResponse(ctx, fasthttp.StatusBadRequest, reason)
		ctx.SetConnectionClose()
		s.done(ctx, st, routing.Decision{Route: -1}, id, &ex)
		return
	}
	if limit := st.cfg.Limits.MaxBodyBytes.N; limit > 0 && int64(h.ContentLength()) > limit {
		// Refused before a byte of it is read (a chunked body is cut at the limit
		// as it streams: clientBody). The connection goes: the body is not read.
		s.stats.badRequests.Inc()
		errorResponse(ctx, fasthttp.StatusRequestEntityTooLarge, "request body too large (limits.max_body_bytes)")
		ctx.SetConnectionClose()
		s.done(ctx, st, routing.Decision{Route: -1}, id, &ex)
		return
	}
	path := ctx.Path()
	if isClientConfigPath(path) {
		s.serveClientConfig(ctx, st)
		s.done(ctx, st, routing.Decision{Route: -1}, id, &ex)
		return
	}
	d := st.table.Decide(h.Host(), path, (*reqView)(ctx))
	if d.Route < 0 {
		errorResponse(ctx, fasthttp.StatusNotFound, "no route for this host and path")
		if noteClient(st, nil, d, h) {
			answerVersion(ctx, st)
		}
		s.done(ctx, st, d, id, &ex)
		return
	}
	rt := &st.routes[d.Route]
	src := int(d.Source)
	if src < 0 {
		src = len(rt.metrics.bySource) - 1
	}
	rt.metrics.bySource[src].Inc()
	if g := st.gate; g != nil {
		// Caps come first: a refused request costs no upstream work at all.
		if v := g.Admit(int(d.Route), s.reqTime(ctx)); !v.OK() {
			shedResponse(ctx, v.Reason, v.RetryAfter, st.regions[d.Region])
			s.done(ctx, st, d, id, &ex)
			return
		}
	}
	// Read before the request's headers are rewritten for the upstream.
	clientSaid := noteClient(st, rt, d, h)

	clientClose := h.ConnectionClose()
	client10 := !h.IsHTTP11()
	upgrade := h.ConnectionUpgrade() && len(h.Peek(fasthttp.HeaderUpgrade)) > 0
	var upgradeProto []byte
	if upgrade {
		upgradeProto = append(upgradeProto, h.Peek(fasthttp.HeaderUpgrade)...)
	}
	wire.StripRequestHeadersNamed(h, st.stripFor(ctx))
	// fasthttp would add Content-Type: application/octet-stream to a body sent
	// without one; a proxy makes up no media type.
	h.SetNoDefaultContentType(true)
	h.ResetConnectionClose()
	if ctx.IsTLS() {
		// fasthttp reads the request of a TLS client as https; upstream clients
		// refuse a scheme other than theirs, and do TLS (if any) in their dialer.
		ctx.Request.URI().SetSchemeBytes(strHTTP)
	}
	if !h.IsHTTP11() {
		// A proxy speaks its own version upstream (RFC 9110 section 6.2).
		h.SetProtocolBytes(wire.StrHTTP11)
	}
	peer := peerAddr(ctx)
	var ipbuf [64]byte
	wire.AppendForwardedFor(h, peer.AppendTo(ipbuf[:0]))
	// What the client's connection was, unless a trusted proxy in front says what
	// its own client's was.
	wire.SetForwardedProto(h, ctx.IsTLS(), st.table.TrustedProxy(peer))
	// One id upstream, whatever the client sent (duplicates, an invalid one).
	h.DelBytes(strRequestID)
	h.SetBytesKV(strRequestID, id)

	if upgrade {
		s.tunnel(ctx, st, rt, d, upgradeProto, id)
		ctx.Response.Header.SetBytesKV(strRequestID, id) // on a refusal; a 101 has its own
		return
	}
	body := wire.WatchClientBody(ctx, st.cfg.Timeouts.Body.D, st.cfg.Limits.MaxBodyBytes.N)
	if rt.mirrored {
		s.forwardMirrored(ctx, st, rt, d, &ex, body)
	} else {
		s.forward(ctx, st, rt, d, &ex)
	}
	ex.bytesIn = body.Release()
	if body == nil && !ctx.Request.IsBodyStream() {
		ex.bytesIn = int64(len(ctx.Request.Body()))
	}
	if sr := st.stats.Route(int(d.Route)); sr != nil {
		s.recordStats(ctx, st, rt, sr, d, &ex)
	}
	if clientSaid {
		answerVersion(ctx, st)
	}
	if clientClose {
		ctx.SetConnectionClose()
	}
	if client10 && ctx.Response.IsBodyStream() && ctx.Response.Header.ContentLength() < 0 {
		// No chunked framing for an HTTP/1.0 client: the close ends the body.
		s.sendUntilClose(ctx, st.cfg.Timeouts.Body.D)
	}
	s.done(ctx, st, d, id, &ex)
}

// done finishes a request: its id goes back to the client, its line to the access log.
func (s *Server) done(ctx *fasthttp.RequestCtx, st *state, d routing.Decision, id []byte, ex *exchange) {
	ctx.Response.Header.SetBytesKV(strRequestID, id)
	if l := s.alog.Load(); l != nil {
		l.record(ctx, st, d, id, ex)
	}
}

// forwardMirrored is forward for a route with a mirror: when the route's from region
// answered a sampled request itself, a copy goes to the mirror, which compares the two
// answers later. The copy is queued, never waited for. A sampled request's body
// (Content-Length up to the mirror's max_body) is kept as it streams upstream, so the
// copy carries the same bytes; a body that cannot be kept whole (chunked, larger, cut
// short) is not mirrored, and is counted as skipped.
func (s *Server) forwardMirrored(ctx *fasthttp.RequestCtx, st *state, rt *routeState, d routing.Decision, ex *exchange, body *wire.ClientBody) {
	sampled := st.mirror.Sampled(int(d.Route), ctx.Method(), ctx.ID())
	var keep *[]byte
	if sampled && body != nil {
		if cl := ctx.Request.Header.ContentLength(); cl > 0 && cl <= st.mirror.MaxBody(int(d.Route)) {
			keep = mirrorBodies.Get().(*[]byte)
			if cap(*keep) < cl {
				*keep = make([]byte, 0, cl)
			}
			body.Keep(*keep)
		}
	}
	start := time.Now()
	s.forward(ctx, st, rt, d, ex)
	if sampled && ex.answered == rt.cfg.FromID && ctx.Response.StatusCode() < 500 {
		x := mirror.Capture(ctx, time.Since(start))
		x.Upstream = ex.upstream
		if cl := ctx.Request.Header.ContentLength(); body != nil && cl != 0 && cl != -2 { // -2: fasthttp's "no body"
			// The body streamed upstream: only what was kept of it can be copied.
			b, whole := body.Kept()
			x.ReqBody, x.ReqBodyCut = b, !whole
		}
		st.mirror.Offer(int(d.Route), &x)
	}
	if keep != nil {
		mirrorBodies.Put(keep)
	}
}

// mirrorBodies holds the buffers that keep sampled request bodies for the mirror
// (*[]byte), so that mirroring bodies allocates nothing once warm.
var mirrorBodies = sync.Pool{New: func() any { return new([]byte) }}

// refuseRequest returns why a request must not be proxied, or "". fasthttp has
// already refused what it cannot parse (see handleParseError).
func refuseRequest(ctx *fasthttp.RequestCtx) string {
	h := &ctx.Request.Header
	uri := h.RequestURI()
	if len(uri) == 0 || uri[0] != '/' {
		// Absolute-form targets and CONNECT would make an edge proxy an open proxy.
		return "request target must be a path (origin-form)"
	}
	if h.IsConnect() {
		return "CONNECT is not supported"
	}
	if len(h.Host()) == 0 && h.IsHTTP11() {
		return "missing Host header"
	}
	return wire.CheckHead(h)
}

// forward sends the request to the decided region, fails over once where the route
// allows it, and falls back when no region answered. ex says which region's
// upstream answered (conf.NoRegion when a fallback or the gateway did).
func (s *Server) forward(ctx *fasthttp.RequestCtx, st *state, rt *routeState, d routing.Decision, ex *exchange) {
	region := d.Region
	failReason := failNone
	for attempt := 0; ; attempt++ {
		cross := st.gate != nil && st.crosses(region)
		if cross && !s.admitCross(ctx, st, rt, int(d.Route), region, attempt == 0, ex) {
			if attempt == 0 {
				return // answered: a budget refusal or the cached fallback
			}
			// The budget keeps a failover from crossing: fall back as for the
			// first region's failure.
			region = d.Region
			break
		}
		h := &ctx.Request.Header
		h.SetBytesV(routing.RegionHeader, st.regions[region])
		// A read that may fail over may also be abandoned when the region's
		// breaker opens while it waits (breaker.slow_call.abandon_reads).
		abandonable := attempt == 0 && rt.abandonReads && canFailover(ctx, rt, d, failAbandoned)
		reason := s.roundTrip(ctx, st, rt, region, ex, abandonable)
		if cross && reason != failOpen && reason != failConnect && !reason.clients() {
			st.gate.Bytes(int(st.cfg.SelfRegionID), int(region), crossBytes(ctx, reason == failNone || reason == failStatus), s.reqTime(ctx))
		}
		if reason == failNone {
			ex.answered = region
			s.finishResponse(ctx, st, rt, region)
			return
		}
		failReason = reason
		if attempt > 0 || !canFailover(ctx, rt, d, reason) {
			break
		}
		rt.metrics.failovers.Inc()
		region = d.Other
	}
	if failReason.clients() {
		// The client's body broke or went past the limit: nothing to fall back
		// for, and its connection is at an unknown offset.
		if failReason == failBodyTooLarge {
			errorResponse(ctx, fasthttp.StatusRequestEntityTooLarge, "request body too large (limits.max_body_bytes)")
		} else {
			errorResponse(ctx, fasthttp.StatusBadRequest, "malformed or incomplete request body")
		}
		ctx.SetConnectionClose()
		return
	}
	if s.fallback(ctx, st, rt, d, region, failReason) {
		ex.answered = region // the upstream's own error answer went out
	}
}

// failure says why a round trip did not produce a response to pass on.
type failure uint8

const (
	failNone         failure = iota
	failOpen                 // breaker open: nothing was sent
	failConnect              // could not connect: nothing was sent
	failTimeout              // no answer in time
	failUpstream             // broken or refused answer
	failStatus               // the upstream answered with a failure status (a fallback may replace it)
	failClient               // the client went away
	failPipelined            // a pipelined connection failed: the request may have been processed
	failTLS                  // the TLS handshake with the upstream failed (verification, or refused)
	failAbandoned            // the region's breaker gave up on the answer (abandon_reads): as a timeout
	failBodyTooLarge         // the client's chunked body went past limits.max_body_bytes
)

// clients reports whether the failure was the client's (its body), not the region's.
func (f failure) clients() bool { return f == failClient || f == failBodyTooLarge }

// canFailover reports whether a failed request may be sent to the other region: the
// route opts in, the method is safe, no body could have reached a backend, and there
// is another region.
func canFailover(ctx *fasthttp.RequestCtx, rt *routeState, d routing.Decision, why failure) bool {
	if !rt.cfg.FailoverIdempotent || d.Other == conf.NoRegion || why.clients() || why == failPipelined {
		return false
	}
	if d.Reason == routing.ReasonRollback {
		return false
	}
	return isIdempotentWithoutBody(ctx)
}

// isIdempotentWithoutBody reports whether a request is a GET or HEAD with no body:
// the only requests that may share a pipelined upstream connection.
func isIdempotentWithoutBody(ctx *fasthttp.RequestCtx) bool {
	h := &ctx.Request.Header
	// -2 is fasthttp's "no Content-Length, not chunked": a request without a body.
	cl := h.ContentLength()
	return (h.IsGet() || h.IsHead()) && (cl == 0 || cl == -2) && !ctx.Request.IsBodyStream() && len(ctx.Request.Body()) == 0
}

// roundTrip forwards the request to one region under its breaker. On success the
// upstream's response is in ctx.Response (its body possibly still streaming).
// abandonable says the request may be cut while it waits for the answer's head, if
// the region's breaker abandons reads (never for a pipelined request: its
// connection carries others' requests too).
func (s *Server) roundTrip(ctx *fasthttp.RequestCtx, st *state, rt *routeState, region conf.RegionID, ex *exchange, abandonable bool) failure {
	p := st.pools[region]
	m := rt.metrics
	br := rt.run.breakers[region]
	start := time.Now()
	var why failure
	var status int
	pipelined := rt.cfg.Pipeline && len(p.pipes) > 0 && isIdempotentWithoutBody(ctx)
	call := func() breaker.Outcome {
		var err error
		if pipelined {
			pc := p.pickPipe()
			ex.upstream = pc.Addr()
			err = pc.Do(&ctx.Request, &ctx.Response)
		} else {
			hc := p.pick()
			ex.upstream = hc.Addr
			if w := waiterFor(br, abandonable); w != nil {
				// The transport finds w by the request; with no slot free, the
				// request is not abandonable after all.
				slot := wire.Watch(&ctx.Request, w)
				if slot < 0 {
					br.Done(w)
				}
				err = hc.Do(&ctx.Request, &ctx.Response)
				if slot >= 0 {
					wire.Unwatch(slot)
					br.Done(w)
				}
			} else {
				err = hc.Do(&ctx.Request, &ctx.Response)
			}
		}
		if err != nil {
			why = classifyError(err)
			if why == failTLS {
				s.upstreamTLSFailed(p, ex.upstream, err)
			}
			if pipelined {
				switch {
				case errors.Is(err, wire.ErrPipeNotSent), errors.Is(err, wire.ErrPipeClosed):
					// Never written: as if the connection had been refused.
					if why != failTLS {
						why = failConnect
					}
				default:
					// Written on a connection that then failed: it may have been
					// processed, so it is never replayed elsewhere.
					why = failPipelined
				}
			}
			if why.clients() {
				return breaker.Excluded
			}
			return breaker.Failure
		}
		status = ctx.Response.StatusCode()
		if status == fasthttp.StatusSwitchingProtocols {
			// A switch to a protocol the client did not ask for (upgrades go through
			// tunnel, not here): a broken answer, never relayed (RFC 9110 15.2.2).
			// The transport has closed the connection.
			ctx.Response.Reset()
			why = failUpstream
			return breaker.Failure
		}
		if br != nil {
			o := br.ClassifyStatus(status)
			if o == breaker.Failure {
				why = failStatus
			}
			return o
		}
		return breaker.Success
	}
	if br == nil {
		call()
	} else if _, err := br.Do(call); errors.Is(err, breaker.ErrOpen) {
		m.requests[region][0].Inc()
		return failOpen
	}
	if why == failAbandoned {
		m.abandoned[region].Inc()
	}
	m.latency[region].observe(time.Since(start))
	if why == failNone || why == failStatus {
		m.requests[region][statusClass(status)].Inc()
	} else {
		m.requests[region][0].Inc()
		m.noUpstream.Inc()
	}
	if why == failStatus && !hasFallback(rt) && !rt.cfg.FailoverIdempotent {
		// Nothing could replace the upstream's own error page: pass it on.
		return failNone
	}
	return why
}

// waiterFor registers an abandonable request with the region's breaker (nil when it
// is not abandonable or the breaker does not abandon reads).
func waiterFor(br *breaker.Breaker, abandonable bool) *breaker.Waiter {
	if !abandonable || br == nil {
		return nil
	}
	return br.Wait()
}

func hasFallback(rt *routeState) bool {
	r := rt.run
	return r.cache != nil || r.static != nil || r.lua != nil
}

// classifyError maps a client error to a failure kind.
func classifyError(err error) failure {
	var ne net.Error
	var cb *wire.ClientBodyError
	switch {
	case errors.Is(err, wire.ErrAbandoned):
		return failAbandoned
	case errors.As(err, &cb) && cb.TooLarge():
		return failBodyTooLarge
	case errors.As(err, &cb):
		return failClient
	case isTLSFailure(err):
		return failTLS
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		if errors.Is(err, fasthttp.ErrDialTimeout) {
			return failConnect
		}
		return failTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, fasthttp.ErrNoFreeConns):
		return failConnect
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return failConnect
	}
	return failUpstream
}

// finishResponse prepares a successful upstream response for the client.
func (s *Server) finishResponse(ctx *fasthttp.RequestCtx, st *state, rt *routeState, region conf.RegionID) {
	rh := &ctx.Response.Header
	// The gateway answers in its own version, whatever the upstream's was (RFC 9110
	// section 6.2): no protocol is HTTP/1.1.
	rh.SetProtocol(nil)
	wire.StripResponseHeaders(rh)
	// The upstream's wish to close its connection is the pool's business, not the
	// client's: the client keeps its keep-alive connection.
	rh.ResetConnectionClose()
	rh.SetBytesKV(strRegionHeader, st.regions[region])
	if ctx.Response.IsBodyStream() {
		// A streamed body may stall before it fills the write buffer: the head goes
		// out now, so a client whose upstream hangs sees the answer begin and then a
		// cut, never a silent connection that ends with nothing.
		ctx.Response.ImmediateHeaderFlush = true
	}
	if rt.run.cache != nil {
		s.maybeCache(ctx, rt)
	}
}

// errorResponse writes a short plain-text error.
func errorResponse(ctx *fasthttp.RequestCtx, status int, reason string) {
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.SetBodyString("shiftgate: " + reason + "\n")
}

// handleParseError answers requests fasthttp could not parse: 431 for heads over the
// limit, 400 for everything else, and closes the connection (its framing is unknown).
func (s *Server) handleParseError(ctx *fasthttp.RequestCtx, err error) {
	s.stats.badRequests.Inc()
	status, reason := fasthttp.StatusBadRequest, "malformed request"
	var tooBig *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &tooBig) && wire.RequestLineTooLong(ctx, s.http.ReadBufferSize):
		status, reason = fasthttp.StatusRequestURITooLong, "request line too long"
	case errors.As(err, &tooBig):
		status, reason = fasthttp.StatusRequestHeaderFieldsTooLarge, "request head too large"
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, reason = fasthttp.StatusRequestEntityTooLarge, "request body too large"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		status, reason = fasthttp.StatusRequestTimeout, "request head not received in time"
	}
	errorResponse(ctx, status, reason)
	ctx.SetConnectionClose()
}
