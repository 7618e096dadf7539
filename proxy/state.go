package proxy

import (
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/breaker"
	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/mirror"
	"github.com/shiftgate/shiftgate/proxy/shed"
	"github.com/shiftgate/shiftgate/proxy/stats"
	"github.com/shiftgate/shiftgate/proxy/wire"
	"github.com/shiftgate/shiftgate/routing"
)

// state is one compiled config: everything a request needs, reached through one atomic
// pointer load. It is immutable once published; the runtime objects it points to
// (pools, breakers, caches) are shared with other states and safe for concurrent use.
type state struct {
	cfg     *conf.Config
	ov      conf.Overrides
	splits  []routing.Split
	table   *routing.Table
	routes  []routeState
	regions [][]byte // region names, by RegionID, for headers
	pools   []*pool  // by RegionID
	version uint64
	// mirror copies sampled requests of mirrored routes; nil when none mirrors.
	mirror *mirror.Mirror
	// stats holds the routes' per-cohort statistics; nil when stats are off.
	stats *stats.Set
	// strip is internal.strip_headers compiled: removed from untrusted peers' requests.
	strip *wire.StripNames
	// limits are the caps and budgets in force (file and overrides); levers is
	// their gate, for status and metrics; gate is the same gate for the request
	// path, nil when nothing is capped, so that a config without levers pays nothing.
	limits shed.Limits
	levers *shed.Gate
	gate   *shed.Gate
	// upTLS is each region's upstream TLS (nil: plain), prepared once per config.
	upTLS []*regionTLS
	// client is the client config this snapshot publishes.
	client *clientDoc
}

// routeState is one route's runtime view.
type routeState struct {
	cfg     *conf.Route
	metrics *routeMetrics
	run     *routeRuntime
	// mirrored is set when the route has a mirror: only then does a request pay
	// for taking its start time and asking the mirror.
	mirrored bool
	// movedPastZero is set while the route's read split is above 0 % and rollback
	// is off: its stayed requests' sources are then worth tracing.
	movedPastZero bool
	// abandonReads is set when the route's breakers cut the reads waiting on a
	// region when they open (breaker.slow_call.abandon_reads).
	abandonReads bool
}

func abandonsReads(r *conf.Route) bool {
	return !r.Breaker.Disabled && r.Breaker.SlowCall != nil && r.Breaker.SlowCall.AbandonReads && r.FailoverIdempotent
}

// compile turns a config and the overrides into a state. It runs on one goroutine at a
// time (the Server's reload lock) and binds the runtime objects kept in registries.
func (s *Server) compile(c *conf.Config, ov conf.Overrides, version uint64) (*state, error) {
	splits, rollback, err := ov.Effective(c, s.now())
	if err != nil {
		return nil, err
	}
	table, err := routing.Compile(c, splits, rollback)
	if err != nil {
		return nil, err
	}
	strip, err := wire.CompileStripNames(c.Internal.StripHeaders)
	if err != nil {
		return nil, fmt.Errorf("internal.strip_headers: %w", err)
	}
	limits, err := leverLimits(c, ov)
	if err != nil {
		return nil, err
	}
	st := &state{cfg: c, ov: ov, splits: splits, table: table, version: version, strip: strip, limits: limits}
	if st.client, err = buildClientDoc(c, splits, rollback, ov.Cutoff); err != nil {
		return nil, err
	}
	for _, r := range c.RegionList {
		st.regions = append(st.regions, []byte(r.Name))
	}
	// CA bundles and client certificates are read once per config, not on every
	// override change or ramp step.
	if old := s.state.Load(); old != nil && old.cfg == c {
		st.upTLS = old.upTLS
	} else if st.upTLS, err = s.prepareUpstreamTLS(c); err != nil {
		return nil, err
	}
	used, usedPipes := map[upstreamSettings]bool{}, map[pipeSettings]bool{}
	st.pools = s.upstreams.pools(c, used, usedPipes, st.upTLS)
	for id, p := range st.pools {
		if st.upTLS[id] != nil {
			p.tlsErrors = s.metrics.counter(`shiftgate_upstream_tls_errors_total{region=%q}`, p.region)
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		run, err := s.runtimes.bind(s, c, r)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", r.Name, err)
		}
		st.routes = append(st.routes, routeState{cfg: r, metrics: s.routeMetrics(c, r), run: run, mirrored: r.Mirror != nil,
			movedPastZero: !rollback && splits[i].Read > 0, abandonReads: abandonsReads(r)})
	}
	if st.stats, err = s.bindStats(c); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	// Last, so that nothing after it can fail and orphan a new Mirror.
	if st.mirror, err = s.mirrors.bind(c); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	s.upstreams.sweep(used, usedPipes)
	return st, nil
}

// breakerTransitions are the state changes a breaker makes.
var breakerTransitions = [...][2]breaker.State{
	{breaker.Closed, breaker.Open}, {breaker.Open, breaker.HalfOpen},
	{breaker.HalfOpen, breaker.Closed}, {breaker.HalfOpen, breaker.Open},
}

// routeMetrics creates (or finds, after a reload) a route's counters.
func (s *Server) routeMetrics(c *conf.Config, r *conf.Route) *routeMetrics {
	m := &routeMetrics{}
	for _, reg := range c.RegionList {
		var byClass [statusClasses]*counter
		for cl := range byClass {
			byClass[cl] = s.metrics.routeCounter(r.Name, `shiftgate_requests_total{route=%q,region=%q,class=%q}`, r.Name, reg.Name, classNames[cl])
		}
		m.requests = append(m.requests, byClass)
		m.latency = append(m.latency, s.metrics.histogram(fmt.Sprintf("route=%q,region=%q", r.Name, reg.Name)))
	}
	for _, k := range r.KeySources {
		m.bySource = append(m.bySource, s.metrics.routeCounter(r.Name, `shiftgate_decisions_total{route=%q,key_source=%q}`, r.Name, k.String()))
	}
	m.bySource = append(m.bySource, s.metrics.routeCounter(r.Name, `shiftgate_decisions_total{route=%q,key_source="none"}`, r.Name))
	m.failovers = s.metrics.routeCounter(r.Name, `shiftgate_failovers_total{route=%q}`, r.Name)
	for k := fallbackCache; k <= fallbackLua; k++ {
		m.fallbacks[k] = s.metrics.routeCounter(r.Name, `shiftgate_fallbacks_total{route=%q,kind=%q}`, r.Name, k.String())
	}
	m.fallbacks[fallbackNone] = s.metrics.routeCounter(r.Name, `shiftgate_fallback_misses_total{route=%q}`, r.Name)
	m.noUpstream = s.metrics.routeCounter(r.Name, `shiftgate_upstream_errors_total{route=%q}`, r.Name)
	// Breaker transitions are counted from the breaker's callback; the series exist
	// from the start so that a dashboard or alert sees 0, not nothing.
	if !r.Breaker.Disabled {
		for _, id := range []conf.RegionID{r.FromID, r.ToID} {
			for _, tr := range breakerTransitions {
				s.metrics.routeCounter(r.Name, `shiftgate_breaker_transitions_total{route=%q,region=%q,from=%q,to=%q}`,
					r.Name, c.RegionList[id].Name, tr[0].String(), tr[1].String())
			}
		}
	}
	if abandonsReads(r) {
		m.abandoned = make([]*counter, len(c.RegionList))
		for _, id := range []conf.RegionID{r.FromID, r.ToID} {
			m.abandoned[id] = s.metrics.routeCounter(r.Name, `shiftgate_abandoned_reads_total{route=%q,region=%q}`, r.Name, c.RegionList[id].Name)
		}
	}
	m.luaErrors = s.metrics.routeCounter(r.Name, `shiftgate_lua_errors_total{route=%q}`, r.Name)
	m.budgetMisses = s.metrics.routeCounter(r.Name, `shiftgate_budget_fallback_misses_total{route=%q}`, r.Name)
	s.clientMetrics(c, r, m)
	return m
}

// stripFor returns the internal headers to strip from ctx's request: the config's
// internal.strip_headers unless the peer is a trusted caller (nil when none are
// configured, without looking at the peer).
func (st *state) stripFor(ctx *fasthttp.RequestCtx) *wire.StripNames {
	if st.strip == nil || st.table.TrustedCaller(peerAddr(ctx)) {
		return nil
	}
	return st.strip
}
