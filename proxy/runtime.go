package proxy

import (
	"github.com/shiftgate/shiftgate/breaker"
	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/fallback"
)

// routeRuntime is what a route needs beyond its config: breakers and fallbacks. Its
// parts live in registries outside any one state, so a reload that leaves a route's
// breaker or cache settings alone keeps their counts and entries.
type routeRuntime struct {
	breakers []*breaker.Breaker // by RegionID; nil entries when the breaker is disabled
	cache    *fallback.Cache    // nil without fallback.cache
	static   *fallback.Static   // nil without fallback.static
	lua      *luaFallback       // nil without fallback.lua
	vary     []conf.KeySource
	maxEntry int64
	// methods are the request methods the static body and the script may answer
	// (fallback.methods); the cache answers GET and HEAD only.
	methods [][]byte
}

// fallbackAllowed reports whether a fallback may answer a request of this method.
func (r *routeRuntime) fallbackAllowed(method []byte) bool {
	for _, m := range r.methods {
		if string(m) == string(method) {
			return true
		}
	}
	return false
}

// runtimeRegistry binds routes to their runtime objects.
type runtimeRegistry struct {
	breakers *breaker.Set
	caches   *fallback.Store
	scripts  *scriptRegistry
}

func breakerSettings(b conf.Breaker) (breaker.Settings, error) {
	statuses, err := breaker.NewStatusSet(b.FailureRanges)
	if err != nil {
		return breaker.Settings{}, err
	}
	bs := breaker.Settings{
		MinRequests:         uint32(b.MinRequests),
		FailureRatio:        b.FailureRatio,
		Window:              b.Window.D,
		OpenFor:             b.OpenFor.D,
		HalfOpenProbes:      uint32(b.HalfOpenProbes),
		FailureStatuses:     statuses,
		ConsecutiveFailures: uint32(b.ConsecutiveFailures),
	}
	if sc := b.SlowCall; sc != nil {
		bs.SlowCallThreshold, bs.SlowCallRatio, bs.SlowCallMin = sc.Threshold.D, sc.Ratio, uint32(sc.MinCalls)
		bs.AbandonReads = sc.AbandonReads
	}
	return bs.WithDefaults(), nil
}

func (rr *runtimeRegistry) bind(s *Server, c *conf.Config, r *conf.Route) (*routeRuntime, error) {
	run := &routeRuntime{breakers: make([]*breaker.Breaker, len(c.RegionList))}
	if !r.Breaker.Disabled {
		bs, err := breakerSettings(r.Breaker)
		if err != nil {
			return nil, err
		}
		for _, reg := range c.RegionList {
			if reg.ID == r.FromID || reg.ID == r.ToID {
				run.breakers[reg.ID] = rr.breakers.Get(r.Name, reg.Name, bs)
			}
		}
	}
	fb := r.Fallback
	if fb.Cache != nil && rr.caches != nil {
		cc := fallback.CacheConfig{
			TTL:           fb.Cache.TTL.D,
			MaxBytes:      fb.Cache.MaxBytes.N,
			MaxEntryBytes: fb.Cache.MaxEntryBytes.N,
		}
		run.cache = rr.caches.Cache(r.Name, cc)
		run.maxEntry = run.cache.Config().MaxEntryBytes
		run.vary = fb.Cache.VarySources
	}
	for _, m := range fb.Methods {
		run.methods = append(run.methods, []byte(m))
	}
	if fb.Static != nil {
		run.static = &fallback.Static{Status: fb.Static.Status, ContentType: fb.Static.ContentType, Body: fb.Static.Bytes}
	}
	if fb.Lua != nil {
		l, err := rr.scripts.get(r.Name, fb.Lua)
		if err != nil {
			return nil, err
		}
		run.lua = l
	}
	return run, nil
}
