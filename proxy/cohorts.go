package proxy

import (
	"net/http"
	"os"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/stats"
	"github.com/shiftgate/shiftgate/routing"
)

// newStatsRegistry builds the registry that keeps each route's statistics across
// reloads, on a coarse clock (recording a request reads it, so it must be cheap).
func newStatsRegistry(c *conf.Config) (*stats.Registry, *stats.Clock) {
	clock := stats.NewClock(100 * time.Millisecond)
	host, _ := os.Hostname()
	return stats.NewRegistry(stats.Options{Now: clock.Now, Instance: host, TopSample: c.Stats.TopSample}), clock
}

// bindStats returns the statistics of c's routes, nil when stats are off. History of
// a route whose name, regions and self region did not change carries over.
func (s *Server) bindStats(c *conf.Config) (*stats.Set, error) {
	if c.Stats.Off {
		return nil, nil
	}
	sc := stats.Config{Self: c.SelfRegion, Routes: make([]stats.RouteInfo, len(c.Routes))}
	for _, r := range c.RegionList {
		sc.Regions = append(sc.Regions, r.Name)
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		sc.Routes[i] = stats.RouteInfo{Name: r.Name, From: r.From, To: r.To}
	}
	return s.statsReg.Bind(sc)
}

// recordStats files one finished request under its cohort: moved (its user's bucket
// sent it to the route's to, which answered), stayed (from answered), failover (the
// other region answered after the chosen one failed) or fallback. A request no one
// answered counts as an error of the cohort it was decided into. A moved request
// that to failed and from answered after a failover is a moved error, in to: the
// moved cohort is the move's report card, and a failover that spares the user must
// not hide the new region's failures from the comparison and a plan's gates (a plan
// once ramped to 100 % while to failed 40 % of its requests, all failed over). The
// failover cohort keeps the other rescues: stayed users whose from failed.
//
// A request the gateway refused with a lever is filed under no cohort: it says
// nothing of a region. A cap's refusal never gets here (the handler answers it before
// forwarding); a byte budget's (X-Shift-Shed: budget, also a cached fallback that
// missed, or a paced request that would wait too long) is answered inside forward and
// skipped here. Both are counted by shiftgate_shed_total and /v1/limits. A read the
// budget answered from the cached fallback is a fallback, as after a failure. Nothing
// here allocates.
func (s *Server) recordStats(ctx *fasthttp.RequestCtx, st *state, rt *routeState, sr *stats.Route, d routing.Decision, ex *exchange) {
	region, answered := ex.answered, ex.answered != conf.NoRegion
	if !answered && len(ctx.Response.Header.PeekBytes(strShed)) > 0 {
		return
	}
	if !answered {
		region = d.Region
	}
	moved := d.Region == rt.cfg.ToID && rt.cfg.ToID != rt.cfg.FromID
	cohort := stats.Stayed
	failedInTo := false
	switch {
	case !answered && len(ctx.Response.Header.PeekBytes(strFallback)) > 0:
		cohort = stats.Fallback
	case answered && region != d.Region && moved:
		cohort, region, failedInTo = stats.Moved, d.Region, true
	case answered && region != d.Region:
		cohort = stats.Failover
	case moved:
		cohort = stats.Moved
	}
	status := ctx.Response.StatusCode()
	errored := !answered && cohort != stats.Fallback || status >= 500 || failedInTo
	in := int64(len(ctx.Request.Header.RawHeaders())) + ex.bytesIn
	// A streamed answer of unknown length counts 0 bytes out: reading Body() here
	// would pull the whole stream into memory.
	out := max(int64(ctx.Response.Header.ContentLength()), 0)
	if out == 0 && !ctx.Response.IsBodyStream() {
		out = int64(len(ctx.Response.Body()))
	}
	sr.Record(cohort, int(region), errored, time.Since(ctx.Time())-ex.paced, in, out)
	// Who is still served by the old region once the route has moved past 0 %.
	if cohort == stats.Stayed && rt.movedPastZero && sr.SampleSource() {
		var buf [64]byte
		sr.AddSource(sourceKey(buf[:0], ctx, st, rt, d))
	}
}

// keySourceCodes name, in a few bytes, the key source a decision used.
var keySourceCodes = [...]string{conf.KeyHeader: "hdr", conf.KeyCookie: "cookie", conf.KeyQuery: "query", conf.KeyIP: "ip"}

// sourceKey describes where a request came from, compactly (the top-K keeps 32
// bytes): the client's address prefix (/24 or /48), the key source the decision used
// ("nokey" without one, "rpc" for a trusted internal caller) and the user agent family.
func sourceKey(dst []byte, ctx *fasthttp.RequestCtx, st *state, rt *routeState, d routing.Decision) []byte {
	dst = stats.AppendClientPrefix(dst, peerAddr(ctx))
	dst = append(dst, ' ')
	switch {
	case d.Internal:
		dst = append(dst, "rpc"...)
	case d.Source == routing.NoSource:
		dst = append(dst, "nokey"...)
	default:
		dst = append(dst, keySourceCodes[rt.cfg.KeySources[d.Source].Kind]...)
	}
	dst = append(dst, ' ')
	return append(dst, stats.UAFamily(ctx.Request.Header.UserAgent())...)
}

// SetInstance names this instance in its statistics (a fleet view merges instances
// by it); the default is the host name.
func (s *Server) SetInstance(name string) { s.instance.Store(&name) }

// Stats returns this instance's statistics, for every route or the one named. An
// unknown route is a 404, and so is a gateway whose stats are off.
func (s *Server) Stats(route string, v stats.View) (stats.Snapshot, error) {
	st := s.state.Load()
	if st.stats == nil {
		return stats.Snapshot{}, Errorf(http.StatusNotFound, "stats are off (stats.off in the config)")
	}
	snap := st.stats.Snapshot(v)
	if name := s.instance.Load(); name != nil {
		snap.Instance = *name
	}
	if route == "" {
		return snap, nil
	}
	for _, r := range snap.Routes {
		if r.Name == route {
			snap.Routes = []stats.RouteSnapshot{r}
			return snap, nil
		}
	}
	return stats.Snapshot{}, Errorf(http.StatusNotFound, "no route %q", route)
}
