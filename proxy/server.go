// Package proxy is shiftgate's data plane: the fasthttp server, upstream pools,
// forwarding with breakers, failover and fallbacks, the admin API, metrics and access
// log. It compiles a conf snapshot into one immutable state and publishes it through
// one atomic pointer; a request loads it once at entry.
package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/breaker"
	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/fallback"
	"github.com/shiftgate/shiftgate/proxy/shed"
	"github.com/shiftgate/shiftgate/proxy/stats"
	"github.com/shiftgate/shiftgate/proxy/wire"
)

// Options are the parts of a Server that do not come from the config file.
type Options struct {
	// Logger receives structured logs; nil logs to slog.Default().
	Logger *slog.Logger
	// Store persists runtime overrides; nil keeps them in memory only.
	Store store.Store
	// Now is the clock; nil means time.Now. Tests inject one for ramps.
	Now func() time.Time
	// NoFallbackStore disables the on-disk fallback cache (caches stay in memory).
	NoFallbackStore bool
	// Dial, when set, replaces TCP dialing to upstreams (in-memory benchmarks).
	Dial func(addr string) (net.Conn, error)

	// The release loop's clock, threshold and watcher (memory.go), for tests.
	releaseTick    <-chan time.Time
	releaseMinPeak int
	releaseChecked func(open, peak int, released bool)
	// parkAfter replaces timeouts.park_idle, for tests.
	parkAfter time.Duration
}

// Server is one shiftgate instance. Build it with New, run it with Serve, stop it with
// Shutdown. Its methods are safe for concurrent use.
type Server struct {
	state atomic.Pointer[state]
	alog  atomic.Pointer[accessLog]

	log     *slog.Logger
	now     func() time.Time
	store   store.Store
	metrics *metricsRegistry

	// mu serialises compiles: reloads, override changes and ramp steps.
	mu        sync.Mutex
	upstreams *upstreamRegistry
	runtimes  *runtimeRegistry
	mirrors   *mirrorRegistry
	statsReg  *stats.Registry
	instance  atomic.Pointer[string] // see SetInstance
	clock     *stats.Clock
	version   uint64
	// shed keeps the caps' and budgets' buckets and counters across reloads; each
	// state binds its gate from it (levers.go).
	shed  *shed.Registry
	share fleetShare
	// clockSet is true when Options.Now was given: the levers then read it instead
	// of the request's start time (reqTime).
	clockSet bool

	http    *fasthttp.Server
	tls     *tlsState
	tunnels *tunnelSet
	// handedOff are answers written on taken-over connections (HTTP/1.0 clients'
	// close-delimited bodies); Shutdown waits for them.
	handedOff handedOff
	stats     serverStats
	events    eventLog
	closed    chan struct{}
	once      sync.Once
	// serving is set once Serve runs and until Shutdown begins (readiness).
	serving atomic.Bool
	// draining is set by BeginDrain: not ready, still serving.
	draining atomic.Bool
	// lnMu orders Serve and Shutdown: listeners handed to Serve are closed by
	// Shutdown even if fasthttp has not taken them yet, and a Serve after
	// Shutdown returns at once (fasthttp's own Shutdown misses a listener it
	// has not registered, and its Serve then accepts forever).
	lnMu      sync.Mutex
	listeners []net.Listener
	// unpersisted are overrides in force that the store did not take.
	unpersisted unpersisted
	// planDriver is the ramp plan controller, when one runs (SetPlanDriver).
	planDriver atomic.Pointer[PlanDriver]
	// release returns client connections' memory after a peak (memory.go).
	release releaser
	// parking holds idle keep-alive client connections without their fasthttp
	// goroutine and buffers (memory.go); nil when off.
	parking *wire.Parking
	// started is the config the server was built with: its listeners and HTTP
	// server keep some of its keys until a restart (conf.ReadAtStart). restartPending
	// lists those the serving config's file sets differently.
	started        *conf.Config
	restartPending atomic.Pointer[[]conf.KeyChange]
}

type serverStats struct {
	logDropped            *counter
	reloads, reloadErrors *counter
	badRequests           *counter
	rollbackOn            atomic.Bool
	// The client config's answers: 200 with the body, 304 to a matching ETag.
	clientConfigServed, clientConfigNotModified *counter
}

// New compiles cfg with the overrides in opt.Store (if any) and returns a Server ready
// to Serve. A config or override that does not compile is an error: nothing starts.
func New(cfg *conf.Config, opt Options) (*Server, error) {
	s := &Server{
		log:       opt.Logger,
		now:       opt.Now,
		store:     opt.Store,
		metrics:   newMetricsRegistry(),
		upstreams: newUpstreamRegistry(opt.Dial),
		mirrors:   newMirrorRegistry(),
		tunnels:   newTunnelSet(),
		closed:    make(chan struct{}),
		started:   cfg,
	}
	s.release.tick, s.release.minPeak, s.release.checked = opt.releaseTick, opt.releaseMinPeak, opt.releaseChecked
	if s.log == nil {
		s.log = slog.Default()
	}
	s.statsReg, s.clock = newStatsRegistry(cfg)
	s.clockSet = s.now != nil
	if s.now == nil {
		s.now = time.Now
	}
	s.shed = shed.NewRegistry(s.now)
	s.share.left.Store(-1) // not counted yet
	s.runtimes = &runtimeRegistry{
		breakers: breaker.NewSet(s.onBreakerChange),
		scripts:  newScriptRegistry(),
	}
	if !opt.NoFallbackStore {
		fs, err := fallback.Open(cfg.StateDir+"/fallback", fallback.StoreOptions{
			Logf: func(format string, args ...any) { s.log.Warn(fmt.Sprintf(format, args...)) },
		})
		if err != nil {
			return nil, fmt.Errorf("fallback cache: %w", err)
		}
		s.runtimes.caches = fs
	} else {
		fs, err := fallback.Open("", fallback.StoreOptions{})
		if err != nil {
			return nil, err
		}
		s.runtimes.caches = fs
	}
	s.stats.reloads = s.metrics.counter("shiftgate_config_reloads_total")
	s.stats.reloadErrors = s.metrics.counter("shiftgate_config_reload_errors_total")
	s.stats.badRequests = s.metrics.counter("shiftgate_bad_requests_total")
	s.stats.clientConfigServed = s.metrics.counter(`shiftgate_client_config_requests_total{status="200"}`)
	s.stats.clientConfigNotModified = s.metrics.counter(`shiftgate_client_config_requests_total{status="304"}`)
	s.registerGauges()
	s.registerLeverMetrics()
	s.initTLS()

	var ov conf.Overrides
	if s.store != nil {
		var err error
		if ov, err = s.store.Load(); err != nil {
			return nil, fmt.Errorf("overrides: %w", err)
		}
	}
	s.stats.logDropped = s.metrics.counter("shiftgate_access_log_dropped_total")
	if err := s.putInService(cfg, ov, true); err != nil {
		return nil, err
	}
	// Caches loaded from disk for routes this config does not have are dropped.
	s.retire(s.state.Load())
	s.http = s.newHTTPServer(cfg, opt.parkAfter)
	go s.rampLoop()
	go s.releaseLoop()
	go s.slowPollLoop()
	go s.shareLoop()
	return s, nil
}

// newHTTPServer sets fasthttp up for the edge: bounded timeouts and sizes, no headers
// of its own, bodies streamed.
func (s *Server) newHTTPServer(c *conf.Config, park time.Duration) *fasthttp.Server {
	maxHeader := int(c.Limits.MaxHeaderBytes.N)
	maxConns := c.Limits.MaxConns
	head := c.Timeouts.RequestHead.D
	body := c.Timeouts.Body.D
	s.parking = s.newParking(c, park, maxConns)
	// The body timeout follows reloads: fasthttp takes it from HeaderReceived for
	// each request. The fields below are read at start; limits.max_body_bytes is
	// enforced by the handler (bodies are streamed, and fasthttp checks no size then).
	return &fasthttp.Server{
		// Connections under parking learn from it when they wait for a next request.
		ConnState:    wire.ConnState,
		Handler:      s.handle,
		ErrorHandler: s.handleParseError,
		Name:         "shiftgate",
		// The request head must arrive within RequestHead; the body then gets Body.
		// HeaderReceived moves the deadline once the head is in.
		ReadTimeout:                  head,
		WriteTimeout:                 body,
		IdleTimeout:                  c.Timeouts.Idle.D,
		HeaderReceived:               s.requestConfig,
		Concurrency:                  maxConns,
		ReadBufferSize:               maxHeader,
		MaxRequestBodySize:           maxBodySize(c),
		StreamRequestBody:            true,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		NoDefaultDate:                true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		SecureErrorLogMessage:        true,
		Logger:                       slogPrinter{s.log},
		// Idle keep-alive connections give their reader, writer and request context
		// back to the pools while they wait: one sized for the largest head (64 KiB)
		// would otherwise stay with every idle client.
		ReduceMemoryUsage:                  true,
		TCPKeepalive:                       true,
		KeepHijackedConns:                  true,
		SleepWhenConcurrencyLimitsExceeded: 0,
		MaxIdleWorkerDuration:              workerIdle,
	}
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "from", "fasthttp")
}

// requestConfig is fasthttp's HeaderReceived: the serving config's body timeout, for
// the body's reads and the answer's writes.
func (s *Server) requestConfig(*fasthttp.RequestHeader) fasthttp.RequestConfig {
	d := s.state.Load().cfg.Timeouts.Body.D
	return fasthttp.RequestConfig{ReadTimeout: d, WriteTimeout: d}
}

// maxBodySize is limits.max_body_bytes as fasthttp takes it: 0 (unlimited) is a size
// no body reaches.
func maxBodySize(c *conf.Config) int {
	if n := int(c.Limits.MaxBodyBytes.N); n > 0 {
		return n
	}
	return 1 << 62
}

// Serve accepts connections on ln until Shutdown; after Shutdown it closes ln and
// returns at once.
func (s *Server) Serve(ln net.Listener) error {
	s.lnMu.Lock()
	select {
	case <-s.closed:
		s.lnMu.Unlock()
		ln.Close()
		return nil
	default:
	}
	s.listeners = append(s.listeners, ln)
	s.serving.Store(true)
	s.share.listen.Store(ln.Addr().String())
	s.lnMu.Unlock()
	err := s.http.Serve(&wire.LineListener{Listener: peakListener{ln, s}, Park: s.parking})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets in-flight requests finish for up to timeout, closes
// tunnels, flushes the fallback cache and returns.
func (s *Server) Shutdown(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	s.lnMu.Lock()
	s.serving.Store(false)
	s.once.Do(func() { close(s.closed) })
	for _, ln := range s.listeners {
		ln.Close() //nolint:errcheck // fasthttp may have closed it already
	}
	s.lnMu.Unlock()
	if s.parking != nil {
		s.parking.Close()
	}
	done := make(chan error, 1)
	go func() { done <- s.http.Shutdown() }()
	var err error
	select {
	case err = <-done:
		if errors.Is(err, net.ErrClosed) {
			err = nil // the listeners closed above
		}
	case <-time.After(timeout):
		err = fmt.Errorf("shutdown: in-flight requests still running after %s", timeout)
	}
	if n := s.handedOff.drain(deadline); n > 0 && err == nil {
		err = fmt.Errorf("shutdown: %d answer(s) to HTTP/1.0 clients still streaming after %s: cut", n, timeout)
	}
	s.tunnels.closeAll()
	s.clock.Stop()
	s.mu.Lock()
	s.mirrors.closeAll()
	s.upstreams.closeIdle()
	s.mu.Unlock()
	if l := s.alog.Swap(nil); l != nil {
		l.close()
	}
	if s.runtimes.caches != nil {
		if cerr := s.runtimes.caches.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// setAccessLog opens the access log at path ("" turns it off) and retires the old
// one once requests have stopped reaching it.
func (s *Server) setAccessLog(path string) error {
	var l *accessLog
	if path != "" {
		var err error
		if l, err = openAccessLog(path, s.stats.logDropped, s.log); err != nil {
			return err
		}
	}
	if old := s.alog.Swap(l); old != nil {
		// In-flight requests may still hold it: close after they are done.
		time.AfterFunc(time.Minute, old.close)
	}
	return nil
}

func (s *Server) publish(st *state) {
	s.state.Store(st)
	s.stats.rollbackOn.Store(st.table.Rollback())
}

// BeginDrain makes Ready say "draining" while the server still serves: the time a
// load balancer needs to see it before Shutdown stops accepting.
func (s *Server) BeginDrain() { s.draining.Store(true) }

// Ready reports whether the server takes traffic: its config is in force and it
// serves a listener, and it is not draining. why says what is missing.
func (s *Server) Ready() (ok bool, why string) {
	select {
	case <-s.closed:
		return false, "draining"
	default:
	}
	if s.draining.Load() {
		return false, "draining"
	}
	if !s.serving.Load() {
		return false, "not listening yet"
	}
	return true, ""
}

// ReloadRefused records a config that was refused, whether its file did not load
// (parse or validation, reported by the watcher) or Reload refused it: it is
// counted with the reloads refused downstream, and the serving config stays.
func (s *Server) ReloadRefused(err error) {
	s.stats.reloadErrors.Inc()
	s.addEvent(Event{Kind: EventReloadRefused, Detail: err.Error()})
}

// Config returns the config currently serving.
func (s *Server) Config() *conf.Config { return s.state.Load().cfg }

// Overrides returns the overrides currently applied.
func (s *Server) Overrides() conf.Overrides { return s.state.Load().ov }

// Reload compiles cfg with the current overrides and puts it into service. On error
// the serving config is untouched and the error is counted.
func (s *Server) Reload(cfg *conf.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.state.Load()
	if cfg.Hash == old.cfg.Hash && cfg.File == old.cfg.File {
		return nil
	}
	err := conf.CheckReshuffle(old.cfg, cfg, old.ov, s.now())
	if err == nil {
		err = s.putInService(cfg, old.ov, true)
	}
	if err != nil {
		s.ReloadRefused(err)
		return err
	}
	s.stats.reloads.Inc()
	s.noteReadAtStart(cfg)
	for _, name := range old.ov.Shadowed(cfg) {
		s.log.Warn("config reloaded, but a runtime override shadows the file's split of this route: clear it with `shiftgate split -clear` for the file to apply",
			"route", name)
	}
	return nil
}

// noteReadAtStart records, after cfg went into service, the keys it sets differently
// from the config the server started with that only a restart applies, and logs them:
// an operator who edits one of them must not believe it took effect.
func (s *Server) noteReadAtStart(cfg *conf.Config) {
	changes := conf.ReadAtStart(s.started, cfg)
	s.restartPending.Store(&changes)
	for _, k := range changes {
		s.log.Warn("config key is read at start: the running value stays until a restart",
			"key", k.Key, "running", k.Running, "file", k.File)
	}
}

// RestartPending lists the keys a restart would change (see noteReadAtStart).
func (s *Server) RestartPending() []conf.KeyChange {
	if p := s.restartPending.Load(); p != nil {
		return *p
	}
	return nil
}

// ApplyOverrides compiles the serving config with ov and puts it into service. It does
// not persist ov; callers that change overrides go through the control API, which
// does.
func (s *Server) ApplyOverrides(ov conf.Overrides) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putInService(s.state.Load().cfg, ov, false)
}

// putInService is the one place a new snapshot goes into service: it compiles cfg
// with ov, publishes the result with one atomic store, then retires what the old
// snapshot held and the new one does not (breakers, fallback caches in memory and on
// disk, compiled scripts, per-route metric series) and gives tunnels whose user now
// belongs elsewhere their grace period. newConfig marks a config change, which alone
// moves the config version. Callers hold s.mu.
func (s *Server) putInService(cfg *conf.Config, ov conf.Overrides, newConfig bool) error {
	old := s.state.Load()
	version := s.version
	if newConfig || old == nil {
		version++
	}
	st, err := s.compile(cfg, ov, version)
	if err != nil {
		return err
	}
	if cfg.AccessLog.Path != "" && (old == nil || cfg.AccessLog.Path != old.cfg.AccessLog.Path) {
		// Opened before the swap so that a path that cannot be opened refuses the
		// config instead of half-applying it.
		if err := s.setAccessLog(cfg.AccessLog.Path); err != nil {
			return fmt.Errorf("access_log.path: %w", err)
		}
	}
	if old == nil || cfg != old.cfg {
		if err := s.applyServerTLS(cfg); err != nil {
			return err
		}
		s.warnInsecure(cfg)
	}
	s.version = version
	s.bindGate(st)
	s.publish(st)
	s.noteSwap(old, st, newConfig)
	if old == nil || cfg != old.cfg {
		s.retainClientCerts(st)
	}
	if old == nil {
		return nil
	}
	if cfg.AccessLog.Path == "" && old.cfg.AccessLog.Path != "" {
		s.setAccessLog("") //nolint:errcheck // turning off cannot fail
	}
	s.retire(st)
	s.tunnels.recheck(st, st.cfg.Timeouts.TunnelGrace.D)
	return nil
}

// retire releases the runtime state of routes that cur no longer has: their breakers,
// fallback caches (the on-disk copy too), compiled scripts and metric series. What an
// unchanged route holds is bound into cur by compile and carries over.
func (s *Server) retire(cur *state) {
	var breakers []breaker.Key
	var caches, routes []string
	scripts := map[*luaFallback]bool{}
	for _, rs := range cur.routes {
		routes = append(routes, rs.cfg.Name)
		for id, b := range rs.run.breakers {
			if b != nil {
				breakers = append(breakers, breaker.Key{Route: rs.cfg.Name, Region: string(cur.regions[id])})
			}
		}
		if rs.run.cache != nil {
			caches = append(caches, rs.cfg.Name)
		}
		if rs.run.lua != nil {
			scripts[rs.run.lua] = true
		}
	}
	s.runtimes.breakers.Retain(breakers)
	s.runtimes.caches.Retain(caches)
	s.runtimes.scripts.retain(scripts)
	s.mirrors.retain(cur.mirror)
	if cur.stats != nil {
		s.statsReg.Retain(cur.stats)
	}
	s.metrics.retainRoutes(routes)
}

// rampLoop recompiles while a rollback ramp (or a route's ramped override, such as a
// ramp plan's rollback) is in progress so the split moves in small steps; a ramp step
// is an ordinary swap that leaves the config version alone.
func (s *Server) rampLoop() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	ticks := 0
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		if ticks++; ticks%120 == 0 {
			if st := s.state.Load(); st.stats != nil {
				st.stats.Tick() // rolls 10 s blocks into the 24 h history
			}
		}
		s.rampStep()
	}
}

// rampStep recompiles the serving config and overrides while a rollback ramp is in
// progress (and for a second after it ends, so the last step lands).
func (s *Server) rampStep() {
	st := s.state.Load()
	if !st.ov.RampingAny(s.now()) && !st.ov.RampingAny(s.now().Add(-time.Second)) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.state.Load()
	if err := s.putInService(cur.cfg, cur.ov, false); err != nil {
		s.log.Error("rollback ramp step refused", "err", err)
	}
}

func (s *Server) onBreakerChange(k breaker.Key, from, to breaker.State) {
	// Called under the breaker's lock: only non-blocking work here.
	s.metrics.counter(`shiftgate_breaker_transitions_total{route=%q,region=%q,from=%q,to=%q}`, k.Route, k.Region, from.String(), to.String()).Inc()
	s.noteBreaker(k, from, to)
}
