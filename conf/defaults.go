package conf

import "time"

// Defaults for keys a file may leave out. Parse applies every one of them, once, so
// the rest of the gateway reads plain values and never carries a default of its own.
const (
	DefaultConnectTimeout        = 2 * time.Second
	DefaultResponseHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout           = 60 * time.Second
	DefaultRequestHeadTimeout    = 10 * time.Second
	DefaultUpstreamIdleTimeout   = 30 * time.Second
	DefaultBodyTimeout           = 60 * time.Second
	DefaultShutdownTimeout       = 15 * time.Second
	// MaxShutdownDelay bounds timeouts.shutdown_delay: a load balancer's probes see a
	// drain within seconds; a longer delay only holds a rollout up.
	MaxShutdownDelay       = 5 * time.Minute
	DefaultTunnelGrace     = 30 * time.Second
	DefaultParkIdle        = time.Second
	DefaultResolveEvery    = 30 * time.Second
	DefaultEtcdDialTimeout = 2 * time.Second
	DefaultLuaTimeout      = 50 * time.Millisecond

	DefaultMaxHeaderBytes            = 64 << 10
	DefaultMaxConns                  = 10000
	DefaultMaxPipelinedResponseBytes = 4 << 20
	DefaultMaxConnsPerUpstream       = 1024
	// DefaultPipelineConns is the number of pipelined connections per upstream of a
	// route with pipeline on.
	DefaultPipelineConns = 2

	// DefaultSlowCallAbandonReads: reads waiting on a region whose breaker opens
	// wait for their own timeout unless breaker.slow_call.abandon_reads is set.
	DefaultSlowCallAbandonReads = false

	// DefaultPriority is the priority of a route that names none.
	DefaultPriority = PriorityNormal
	// DefaultBudgetMode is the budget mode of a route that names none.
	DefaultBudgetMode = BudgetRefuse
)

// DefaultFallbackMethods are the methods a fallback answers unless a route lists
// others: reads only, so a failed write is never answered as if it had been saved.
func DefaultFallbackMethods() []string { return []string{"GET", "HEAD"} }

// applyDefaults fills every zero value that has a default. It runs after the file is
// decoded and before validation reads the values.
func applyDefaults(c *Config) {
	t := &c.Timeouts
	for _, d := range []struct {
		v   *Duration
		def time.Duration
	}{
		{&t.Connect, DefaultConnectTimeout}, {&t.ResponseHeader, DefaultResponseHeaderTimeout},
		{&t.Idle, DefaultIdleTimeout}, {&t.RequestHead, DefaultRequestHeadTimeout},
		{&t.UpstreamIdle, DefaultUpstreamIdleTimeout}, {&t.Body, DefaultBodyTimeout},
		{&t.Shutdown, DefaultShutdownTimeout}, {&t.TunnelGrace, DefaultTunnelGrace},
		{&t.ParkIdle.Duration, DefaultParkIdle},
	} {
		if d.v.D == 0 {
			d.v.D = d.def
		}
	}
	l := &c.Limits
	if l.MaxHeaderBytes.N == 0 {
		l.MaxHeaderBytes.N = DefaultMaxHeaderBytes
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxPipelinedResponseBytes.N == 0 {
		l.MaxPipelinedResponseBytes.N = DefaultMaxPipelinedResponseBytes
	}
	for name, r := range c.Regions {
		if r.ResolveEvery.D == 0 {
			r.ResolveEvery.D = DefaultResolveEvery
		}
		if r.MaxConnsPerUpstream == 0 {
			r.MaxConnsPerUpstream = DefaultMaxConnsPerUpstream
		}
		if r.PipelineConns == 0 {
			r.PipelineConns = DefaultPipelineConns
		}
		c.Regions[name] = r
	}
	// The client config (client_config.ttl).
	if c.ClientConfig.TTL.D == 0 {
		c.ClientConfig.TTL.D = DefaultClientConfigTTL
	}
	if e := c.Fleet.Etcd; e != nil && e.DialTimeout.D == 0 {
		e.DialTimeout.D = DefaultEtcdDialTimeout
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Priority == "" {
			r.Priority = DefaultPriority
		}
		if r.BudgetMode == "" {
			r.BudgetMode = DefaultBudgetMode
		}
		f := &r.Fallback
		if fc := f.Cache; fc != nil {
			if fc.TTL.D == 0 {
				fc.TTL.D = DefaultCacheTTL * time.Second
			}
			if fc.MaxBytes.N == 0 {
				fc.MaxBytes.N = DefaultCacheMaxBytes
			}
			if fc.MaxEntryBytes.N == 0 {
				fc.MaxEntryBytes.N = min(DefaultEntryMaxBytes, fc.MaxBytes.N)
			}
		}
		if fl := f.Lua; fl != nil && fl.Timeout.D == 0 {
			fl.Timeout.D = DefaultLuaTimeout
		}
		if len(f.Methods) == 0 {
			f.Methods = DefaultFallbackMethods()
		}
	}
}
