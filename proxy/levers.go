package proxy

import (
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/shed"
)

// The emergency levers on the request path: request caps with priority shedding
// (Admit, before anything is forwarded) and cross-region byte budgets (AdmitCross
// before a request crosses to another region than self_region, Bytes after its
// answer). The caps and budgets are the proxy/shed package's; this file maps the
// config and overrides onto it and answers its verdicts. A state without caps or
// budgets has a nil gate, and the request path tests one pointer.

// leverLimits maps the file's caps and budgets, with the overrides applied, onto
// shed.Limits: routes by index, regions by RegionID. Overrides for routes or regions
// the config does not have are left out (status lists them as stale).
func leverLimits(c *conf.Config, ov conf.Overrides) (shed.Limits, error) {
	site := ov.SiteLimitOf(c)
	l := shed.Limits{SiteRPS: site.RPS, SiteRamp: site.Ramp, SiteResume: capResume(site.Override)}
	l.Routes = make([]shed.Route, len(c.Routes))
	for i := range c.Routes {
		r := &c.Routes[i]
		lim := ov.RouteLimitOf(c, r)
		prio, err := shed.ParsePriority(r.Priority)
		if err != nil {
			return l, fmt.Errorf("route %s: priority: %w", r.Name, err)
		}
		mode, err := shed.ParseBudgetMode(r.BudgetMode)
		if err != nil {
			return l, fmt.Errorf("route %s: budget_mode: %w", r.Name, err)
		}
		l.Routes[i] = shed.Route{Name: r.Name, RPS: lim.RPS, Ramp: lim.Ramp, Resume: capResume(lim.Override), Priority: prio, BudgetMode: mode}
	}
	l.Regions = make([]string, len(c.RegionList))
	for i, r := range c.RegionList {
		l.Regions[i] = r.Name
	}
	for _, b := range ov.BudgetsOf(c) {
		bg := shed.Budget{From: b.From, To: b.To, BytesPerSec: b.BytesPerSec, Ramp: b.Ramp}
		if ov := b.Override; ov != nil {
			bg.Resume = shed.Resume{From: ov.From, Start: ov.At}
		}
		l.Budgets = append(l.Budgets, bg)
	}
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("limits: %w", err)
	}
	return l, nil
}

// capResume is the ramp that a cap override began, for an instance that did not see
// it begin (see shed.Resume).
func capResume(ov *conf.LimitOverride) shed.Resume {
	if ov == nil {
		return shed.Resume{}
	}
	return shed.Resume{From: ov.From, Start: ov.At}
}

// rampFrom is what a change records as its From: the rate in force (cur, when
// inForce) when the change ramps up from it (a higher rate, or a lift, with a ramp),
// else 0.
func rampFrom(target float64, ramp time.Duration, cur float64, inForce bool) float64 {
	if ramp <= 0 || !inForce || (target != 0 && target <= cur) {
		return 0
	}
	return cur
}

// bindGate binds the registry's buckets to the caps and budgets of st, which is going
// into service: the one place the registry changes with a snapshot. The request path
// gets the gate only when it caps something, so a config without levers costs it one
// nil test. Callers hold s.mu.
func (s *Server) bindGate(st *state) {
	st.levers = s.shed.Gate(st.limits)
	if st.levers.Active() {
		st.gate = st.levers
	}
}

// reqTime is the time the levers see for a request: its start, which fasthttp has
// already read, so that a capped request costs no clock read of its own; or the
// injected clock of tests.
func (s *Server) reqTime(ctx *fasthttp.RequestCtx) time.Time {
	if s.clockSet {
		return s.now()
	}
	return ctx.Time()
}

var (
	strShed       = []byte("X-Shift-Shed")
	strRetryAfter = []byte("Retry-After")
	// shedValues and shedBodies are indexed by shed.Reason.
	shedValues = [...][]byte{shed.BySite: []byte("site"), shed.ByRoute: []byte("route"), shed.ByBudget: []byte("budget")}
	shedBodies = [...][]byte{
		shed.BySite:   []byte("shiftgate: over the site-wide request cap; retry later\n"),
		shed.ByRoute:  []byte("shiftgate: over this route's request cap; retry later\n"),
		shed.ByBudget: []byte("shiftgate: over the cross-region byte budget; retry later\n"),
	}
)

// shedResponse answers a refused request: 503 with Retry-After, X-Shift-Shed and
// X-Shift-Region (the region the request was decided for, as on every answer), on a
// connection that stays open. It does not allocate.
func shedResponse(ctx *fasthttp.RequestCtx, why shed.Reason, retryAfter int, region []byte) {
	r := &ctx.Response
	r.Reset()
	r.SetStatusCode(fasthttp.StatusServiceUnavailable)
	r.Header.SetBytesKV(strRegionHeader, region)
	r.Header.SetContentType("text/plain; charset=utf-8")
	var buf [8]byte
	r.Header.SetBytesKV(strRetryAfter, strconv.AppendInt(buf[:0], int64(retryAfter), 10))
	if int(why) < len(shedValues) {
		r.Header.SetBytesKV(strShed, shedValues[why])
		// The bodies are immutable package data: the response may alias them.
		r.SetBodyRaw(shedBodies[why])
	}
}

// crosses reports whether a request to region leaves this instance's region: there
// is a self_region and region is another one.
func (st *state) crosses(region conf.RegionID) bool {
	self := st.cfg.SelfRegionID
	return self != conf.NoRegion && region != self
}

// isRead reports whether a request is a read for the budgets: GET, HEAD or OPTIONS.
func isRead(h *fasthttp.RequestHeader) bool {
	return h.IsGet() || h.IsHead() || h.IsOptions()
}

// admitCross asks the byte budget of the pair (self_region → region) whether the
// request may cross. It returns true to forward it (after holding it back when the
// budget paces the route). Otherwise, when answer is set, the request has been
// answered: from the cached fallback, or with a 503 budget refusal; when answer is not
// set (a failover), nothing is written and the caller falls back as for a failure.
// A hold is added to ex.paced.
func (s *Server) admitCross(ctx *fasthttp.RequestCtx, st *state, rt *routeState, route int, region conf.RegionID, answer bool, ex *exchange) bool {
	g := st.gate
	h := &ctx.Request.Header
	read := isRead(h)
	cached := rt.run.cache != nil && (h.IsGet() || h.IsHead())
	v := g.AdmitCross(route, int(st.cfg.SelfRegionID), int(region), read, cached, s.reqTime(ctx))
	switch v.Action {
	case shed.Forward:
		return true
	case shed.Pace:
		time.Sleep(v.Delay)
		ex.paced += v.Delay
		return true
	case shed.UseFallback:
		if !answer {
			return false
		}
		var kb [512]byte
		if e, ok := rt.run.cache.Get(cacheKey(ctx, rt, kb[:0])); ok {
			s.serveEntry(ctx, st, region, e, fallbackCache)
			rt.metrics.fallbacks[fallbackCache].Inc()
			return false
		}
		// The gate counted a fallback; it is a refusal (see routeShedStats).
		rt.metrics.budgetMisses.Inc()
	}
	if answer {
		shedResponse(ctx, shed.ByBudget, v.RetryAfter, st.regions[region])
	}
	return false
}

// crossBytes counts what a request to region exchanged over the link, for the pair's
// budget and stats: the request's head and body as forwarded, and the response's
// head and body when one came back. A streamed response body of unknown length (no
// Content-Length) counts its head only. It does not allocate.
func crossBytes(ctx *fasthttp.RequestCtx, answered bool) int64 {
	req := &ctx.Request
	n := int64(len(req.Header.Method()) + len(req.Header.RequestURI()) + len(" HTTP/1.1\r\n\r\n"))
	for k, v := range req.Header.All() {
		n += int64(len(k) + len(v) + 4) // "Name: value\r\n"
	}
	if cl := req.Header.ContentLength(); cl > 0 {
		n += int64(cl)
	}
	if !answered {
		return n
	}
	resp := &ctx.Response
	n += int64(len("HTTP/1.1 200 OK\r\n\r\n"))
	for k, v := range resp.Header.All() {
		n += int64(len(k) + len(v) + 4)
	}
	switch {
	case !resp.IsBodyStream():
		n += int64(len(resp.Body()))
	case resp.Header.ContentLength() > 0:
		n += int64(resp.Header.ContentLength())
	}
	return n
}

// routeShedStats corrects the gate's reading of a route for what only the proxy
// knows: a read the budget sent to the cached fallback that missed was refused.
func routeShedStats(r shed.RouteStats, rt *routeState) shed.RouteStats {
	if rt == nil {
		return r
	}
	miss := min(rt.metrics.budgetMisses.Get(), r.Fallback)
	r.Fallback -= miss
	r.Refused.Budget += miss
	return r
}
