package proxy

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/fallback"
	"github.com/shiftgate/shiftgate/routing"
)

// fallbackKind says what answered instead of a region.
type fallbackKind uint8

const (
	fallbackNone fallbackKind = iota
	fallbackCache
	fallbackStatic
	fallbackLua
)

func (k fallbackKind) String() string {
	return [...]string{"none", "cache", "static", "lua"}[k]
}

// cachedHeaders are the response headers a cached fallback keeps.
var cachedHeaders = [...]string{fasthttp.HeaderContentType, fasthttp.HeaderCacheControl, fasthttp.HeaderETag, fasthttp.HeaderLastModified}

// cacheKey builds the fallback cache key of a request into buf: path, query and the
// values of the route's vary sources.
func cacheKey(ctx *fasthttp.RequestCtx, rt *routeState, buf []byte) []byte {
	buf = append(buf, ctx.Path()...)
	if q := ctx.URI().QueryString(); len(q) > 0 {
		buf = append(buf, '?')
		buf = append(buf, q...)
	}
	for _, k := range rt.run.vary {
		buf = append(buf, 0)
		v := (*reqView)(ctx)
		switch k.Kind {
		case conf.KeyHeader:
			buf = append(buf, v.Header(k.Name)...)
		case conf.KeyCookie:
			buf = append(buf, v.Cookie(k.Name)...)
		case conf.KeyQuery:
			buf = append(buf, v.Query(k.Name)...)
		case conf.KeyIP:
			buf = peerAddr(ctx).AppendTo(buf)
		}
	}
	return buf
}

// maybeCache refreshes the route's fallback cache from a good GET response, at most
// once per refresh interval per key, so most responses cost one lookup and no copy.
func (s *Server) maybeCache(ctx *fasthttp.RequestCtx, rt *routeState) {
	resp := &ctx.Response
	status := resp.StatusCode()
	if !ctx.IsGet() || status < 200 || status > 299 {
		return
	}
	rh := &resp.Header
	cl := rh.ContentLength()
	// The cache counts key, headers and some overhead against max_entry_bytes too.
	if cl < 0 || int64(cl)+1024 > rt.run.maxEntry || len(rh.ContentEncoding()) > 0 {
		// Unknown or large bodies stream through untouched; encoded bodies would be
		// served to clients that may not accept the encoding.
		return
	}
	var kb [512]byte
	key := cacheKey(ctx, rt, kb[:0])
	// The request's start time (kept by fasthttp) is close enough for a refresh
	// interval of a second and costs no clock read.
	if !rt.run.cache.WantRefresh(key, ctx.Time()) {
		return
	}
	// Body reads a streamed body into memory; it is at most maxEntry bytes.
	body := resp.Body()
	e := fallback.Entry{Status: status, Body: body}
	for _, name := range cachedHeaders {
		if v := rh.Peek(name); len(v) > 0 {
			e.Header = append(e.Header, [2]string{name, string(v)})
		}
	}
	rt.run.cache.Put(key, e)
}

// fallback answers a request no region could serve: the cached last good response,
// then the static body, then the Lua script, then a clear error. A route with both a
// cache and a script hands a cache hit to the script (the ngx_lua role: it may mark
// it stale or reshape it); if the script fails, the entry itself answers.
//
// Only the methods of fallback.methods (GET and HEAD by default) get a fallback: a
// write that no region answered gets the error, so that it is never taken for saved.
//
// It reports whether the upstream's own (error) answer went out.
func (s *Server) fallback(ctx *fasthttp.RequestCtx, st *state, rt *routeState, d routing.Decision, region conf.RegionID, why failure) (upstreamAnswered bool) {
	run := rt.run
	m := rt.metrics
	if hasFallback(rt) && run.fallbackAllowed(ctx.Method()) {
		if s.tryFallback(ctx, st, rt, d, region) {
			return false
		}
		m.fallbacks[fallbackNone].Inc()
	}
	if why == failStatus {
		// The upstream's own error answer is still in ctx.Response: pass it on.
		s.finishResponse(ctx, st, rt, region)
		return true
	}
	failureResponse(ctx, st, why, region)
	return false
}

// failureResponse answers a request that no upstream of region answered, saying why
// (why is not failStatus: then the upstream's own answer goes out), and names the
// region as every answer does.
func failureResponse(ctx *fasthttp.RequestCtx, st *state, why failure, region conf.RegionID) {
	switch why {
	case failOpen:
		errorResponse(ctx, fasthttp.StatusServiceUnavailable, "region "+string(st.regions[region])+" unavailable (circuit open)")
	case failTimeout:
		errorResponse(ctx, fasthttp.StatusGatewayTimeout, "upstream in region "+string(st.regions[region])+" timed out")
	case failAbandoned:
		errorResponse(ctx, fasthttp.StatusGatewayTimeout, "upstream in region "+string(st.regions[region])+" gave no answer before its circuit opened")
	case failConnect:
		errorResponse(ctx, fasthttp.StatusBadGateway, "cannot connect to region "+string(st.regions[region]))
	case failTLS:
		errorResponse(ctx, fasthttp.StatusBadGateway, "TLS to region "+string(st.regions[region])+" failed (the gateway's log says why)")
	default:
		errorResponse(ctx, fasthttp.StatusBadGateway, "bad answer from region "+string(st.regions[region]))
	}
	ctx.Response.Header.SetBytesKV(strRegionHeader, st.regions[region])
}

// tryFallback answers from the cache, the static body or the script, in that order;
// false when none of them could.
func (s *Server) tryFallback(ctx *fasthttp.RequestCtx, st *state, rt *routeState, d routing.Decision, region conf.RegionID) bool {
	run := rt.run
	m := rt.metrics
	if run.cache != nil && (ctx.IsGet() || ctx.IsHead()) {
		var kb [512]byte
		if e, ok := run.cache.Get(cacheKey(ctx, rt, kb[:0])); ok {
			if run.lua != nil && s.serveLua(ctx, st, rt, d, region, e) {
				return true
			}
			s.serveEntry(ctx, st, region, e, fallbackCache)
			m.fallbacks[fallbackCache].Inc()
			return true
		}
	}
	if run.static != nil {
		ctx.Response.Reset()
		ctx.Response.SetStatusCode(run.static.Status)
		if run.static.ContentType != "" {
			ctx.Response.Header.SetContentType(run.static.ContentType)
		}
		ctx.Response.SetBody(run.static.Body)
		s.markFallback(ctx, st, region, fallbackStatic)
		m.fallbacks[fallbackStatic].Inc()
		return true
	}
	return run.lua != nil && s.serveLua(ctx, st, rt, d, region, nil)
}

func (s *Server) serveEntry(ctx *fasthttp.RequestCtx, st *state, region conf.RegionID, e *fallback.Entry, kind fallbackKind) {
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(e.Status)
	for _, h := range e.Header {
		ctx.Response.Header.Set(h[0], h[1])
	}
	// The entry is immutable and shared: SetBodyRaw would alias it, so copy.
	ctx.Response.SetBody(e.Body)
	s.markFallback(ctx, st, region, kind)
}

func (s *Server) markFallback(ctx *fasthttp.RequestCtx, st *state, region conf.RegionID, kind fallbackKind) {
	ctx.Response.Header.SetBytesKV(strFallback, []byte(kind.String()))
	ctx.Response.Header.SetBytesKV(strRegionHeader, st.regions[region])
}

// serveLua runs the route's script and answers with its response; false when the
// script failed (the failure is logged and the next fallback answers).
func (s *Server) serveLua(ctx *fasthttp.RequestCtx, st *state, rt *routeState, d routing.Decision, region conf.RegionID, cached *fallback.Entry) bool {
	resp, err := rt.run.lua.run(ctx, st, d, region, cached)
	if err != nil {
		rt.metrics.luaErrors.Inc()
		s.log.Warn("lua fallback failed", "route", rt.cfg.Name, "err", err)
		return false
	}
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(resp.Status)
	for _, h := range resp.Headers {
		ctx.Response.Header.Set(h[0], h[1])
	}
	ctx.Response.SetBody(resp.Body)
	s.markFallback(ctx, st, region, fallbackLua)
	rt.metrics.fallbacks[fallbackLua].Inc()
	return true
}

// luaFallback runs a route's compiled script.
type luaFallback struct {
	script  *fallback.Script
	timeout time.Duration
	headers []string
}

// luaRequestHeaders are the request headers a script sees.
var luaRequestHeaders = []string{"Accept", "Accept-Language", "User-Agent", "X-User-Id", "X-Device-Id"}

func (l *luaFallback) run(ctx *fasthttp.RequestCtx, st *state, d routing.Decision, region conf.RegionID, cached *fallback.Entry) (fallback.Response, error) {
	req := fallback.Request{
		Method: string(ctx.Method()),
		Path:   string(ctx.Path()),
		Query:  string(ctx.URI().QueryString()),
		Region: string(st.regions[region]),
		Cached: cached,
	}
	for _, name := range l.headers {
		if v := ctx.Request.Header.Peek(name); len(v) > 0 {
			req.Headers = append(req.Headers, [2]string{name, string(v)})
		}
	}
	var kb [64]byte
	req.Key = string(st.table.Key(d, (*reqView)(ctx), &kb))
	c, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	return l.script.Run(c, req)
}

// scriptRegistry keeps compiled scripts across reloads, keyed by route and source.
type scriptRegistry struct {
	scripts map[string]*luaFallback
}

func newScriptRegistry() *scriptRegistry {
	return &scriptRegistry{scripts: map[string]*luaFallback{}}
}

// retain drops the compiled scripts that no route of the serving config uses.
func (r *scriptRegistry) retain(used map[*luaFallback]bool) {
	for k, l := range r.scripts {
		if !used[l] {
			delete(r.scripts, k)
		}
	}
}

// len is the number of compiled scripts held.
func (r *scriptRegistry) len() int { return len(r.scripts) }

func (r *scriptRegistry) get(route string, cfg *conf.FallbackLua) (*luaFallback, error) {
	key := route + "\x00" + cfg.Name + "\x00" + cfg.Code
	if l, ok := r.scripts[key]; ok {
		return l, nil
	}
	timeout := cfg.Timeout.D
	script, err := fallback.Compile(cfg.Name, cfg.Code, fallback.ScriptOptions{Timeout: timeout})
	if err != nil {
		return nil, err
	}
	l := &luaFallback{script: script, timeout: timeout, headers: luaRequestHeaders}
	r.scripts[key] = l
	return l, nil
}
