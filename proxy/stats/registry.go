package stats

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unsafe"
)

// Options are the settings of a Registry that hold for the life of the process.
// Zero fields take the defaults noted.
type Options struct {
	// Now is the clock requests are recorded by. Record calls it once per request, so
	// it should be cheap: Clock.Now is. Default time.Now.
	Now func() time.Time
	// Instance names this gateway in snapshots and in the fleet view.
	Instance string
	// Seconds is how many complete seconds the 1 s history ring keeps, besides the
	// current one. Default 600 (10 min).
	Seconds int
	// TenSeconds is the length of the 10 s history ring. Default 8640 (24 h).
	TenSeconds int
	// TopK is how many sources each route's top-K table holds. Default 256.
	TopK int
	// TopSample records one source in TopSample (each counting TopSample), so the
	// top-K lock is taken by a fraction of requests. Default 16; 1 records all.
	TopSample int
}

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Seconds <= 0 {
		o.Seconds = 600
	}
	if o.TenSeconds <= 0 {
		o.TenSeconds = 8640
	}
	if o.TopK <= 0 {
		o.TopK = 256
	}
	if o.TopSample <= 0 {
		o.TopSample = 16
	}
	return o
}

// RouteInfo names a route and its two regions: From, the one it moves away from, and
// To, the one it moves to.
type RouteInfo struct {
	Name, From, To string
}

// Config is what a compiled gateway config tells the stats: its own region (Self,
// empty if unknown), the region names in the order Record's region index uses, and the
// routes in the order Set.Route's index uses.
type Config struct {
	Self    string
	Regions []string
	Routes  []RouteInfo
}

// Registry keeps each route's recorder across config reloads, keyed by route name:
// history and counts survive a reload that leaves a route's name, From, To, the region
// list and Self unchanged. A route whose identity changed starts afresh. Bind and
// Retain are safe for concurrent use; they are for the control plane, not requests.
type Registry struct {
	opt Options

	mu     sync.Mutex
	routes map[string]*Route
}

// NewRegistry returns an empty registry.
func NewRegistry(o Options) *Registry {
	return &Registry{opt: o.withDefaults(), routes: make(map[string]*Route)}
}

// ErrConfig reports a Config that Bind refuses.
var ErrConfig = errors.New("stats: bad config")

// Bind returns the Set for one compiled config, reusing the recorders of routes whose
// identity is unchanged. It keeps the recorders of routes cfg no longer names until
// Retain is called, so a config that is refused after Bind costs no history.
func (g *Registry) Bind(cfg Config) (*Set, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Set{opt: g.opt, cfg: cfg, routes: make([]*Route, len(cfg.Routes))}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, ri := range cfg.Routes {
		id := identity{info: ri, self: cfg.Self, regions: fmt.Sprintf("%q", cfg.Regions)}
		if r := g.routes[ri.Name]; r != nil && r.id == id {
			s.routes[i] = r
			continue
		}
		r := newRoute(g.opt, id, cfg.Regions)
		g.routes[ri.Name] = r
		s.routes[i] = r
	}
	return s, nil
}

// Retain drops the recorders of every route s does not use and returns how many it
// dropped. Call it once s's config is in service. A dropped recorder keeps working for
// whoever still holds it; it is only forgotten.
func (g *Registry) Retain(s *Set) (dropped int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, r := range g.routes {
		if !slices.Contains(s.routes, r) {
			delete(g.routes, name)
			dropped++
		}
	}
	return dropped
}

func (c Config) validate() error {
	region := make(map[string]bool, len(c.Regions))
	for i, r := range c.Regions {
		if r == "" || region[r] {
			return fmt.Errorf("%w: regions[%d] %q empty or repeated", ErrConfig, i, r)
		}
		region[r] = true
	}
	if c.Self != "" && !region[c.Self] {
		return fmt.Errorf("%w: self region %q not in regions", ErrConfig, c.Self)
	}
	names := make(map[string]bool, len(c.Routes))
	for i, r := range c.Routes {
		if r.Name == "" || names[r.Name] {
			return fmt.Errorf("%w: routes[%d] name %q empty or repeated", ErrConfig, i, r.Name)
		}
		names[r.Name] = true
		if !region[r.From] || !region[r.To] {
			return fmt.Errorf("%w: routes[%d] regions %q → %q not in regions", ErrConfig, i, r.From, r.To)
		}
	}
	return nil
}

// identity is what must be unchanged for a route's recorder to survive a reload: the
// cells are indexed by region number, so the region list is part of it.
type identity struct {
	info    RouteInfo
	self    string
	regions string
}

// Set is the stats of one compiled config. Requests reach a route's recorder by index
// (Route); the control plane reads through Window, Totals, History and Snapshot.
// All methods are safe for concurrent use.
type Set struct {
	opt    Options
	cfg    Config
	routes []*Route
}

// Route returns the recorder of the i-th route of the Set's config, or nil if i is
// out of range or s is nil (stats off); recording on a nil *Route does nothing.
func (s *Set) Route(i int) *Route {
	if s == nil || uint(i) >= uint(len(s.routes)) {
		return nil
	}
	return s.routes[i]
}

// Len returns the number of routes.
func (s *Set) Len() int { return len(s.routes) }

// Config returns the Config the Set was bound with. The caller must not modify it.
func (s *Set) Config() Config { return s.cfg }

// Tick rolls completed 10-second blocks of every route into the 24 h ring. The readers
// (Window, History, Snapshot) call it too; call it about once a minute from the control
// plane so a route idle for longer than the 1 s ring still keeps its last minutes.
func (s *Set) Tick() {
	sec := s.opt.Now().Unix()
	for _, r := range s.routes {
		r.rollUp(sec)
	}
}

// MemoryPerRoute returns the bytes a route's recorder holds with options o and the
// given number of regions, once it has had traffic (the 10 s ring is allocated then).
func MemoryPerRoute(o Options, regions int) int {
	o = o.withDefaults()
	table := 1
	for table < 2*o.TopK {
		table <<= 1
	}
	return int(numCohorts)*regions*int(unsafe.Sizeof(cell{})) +
		(o.Seconds+2)*int(unsafe.Sizeof(slot1{})) +
		o.TenSeconds*int(unsafe.Sizeof(slot10{})) +
		o.TopK*int(unsafe.Sizeof(topEntry{})+4) + table*4
}
