// Package gateway assembles one running shiftgate: the config file and its watcher,
// the override store, the server, its traffic and admin listeners, the store's watch,
// fleet registration, signals and the drain on the way out. `serve`, `demo` and the
// cutover drill all run this one assembly, so what they rehearse is what ships.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/admin"
)

// Options are what a caller may set beyond the config file.
type Options struct {
	// ConfigPath is the YAML file; it is watched for changes.
	ConfigPath string
	// Logger receives structured logs; nil logs to slog.Default().
	Logger *slog.Logger
	// Listen, AdminListen and TLSListen, when set, replace the file's addresses
	// (the demo and tests use "127.0.0.1:0"); TLSListen only with a tls block.
	Listen, AdminListen, TLSListen string
	// Debounce replaces the watcher's default debounce (tests and the drill).
	Debounce time.Duration
	// Signals makes SIGINT/SIGTERM stop the gateway and SIGHUP reload the file.
	Signals bool
	// Store, when set, replaces the store the config names (tests); the gateway
	// closes it on the way out like its own.
	Store store.Store
}

// Gateway is one running instance. Start returns it listening; Wait blocks until it
// has stopped and drained. Its fields are set by Start and not changed after.
type Gateway struct {
	// Server is the data plane and its control API.
	Server *proxy.Server
	// Addr and AdminAddr are the listeners' bound addresses; TLSAddr the TLS
	// listener's, "" without a tls block.
	Addr, AdminAddr, TLSAddr string
	// Store is the override store; the gateway closes it on the way out.
	Store store.Store

	log    *slog.Logger
	cancel context.CancelFunc
	// stopAdmin ends the admin listener, last: /readyz and /healthz answer through
	// the whole drain. stopBG ends the background work, after the shutdown delay.
	stopAdmin, stopBG context.CancelFunc
	// hup receives SIGHUP (with Signals), until Wait returns.
	hup chan os.Signal
	// signals: Wait takes a second SIGINT or SIGTERM to end the shutdown delay.
	signals bool
	// endDelay, closed, ends the shutdown delay (tests; nil: never).
	endDelay chan struct{}
	// watcher follows the config file; SIGHUP triggers it.
	watcher *conf.Watcher
	errc    chan error
	bg      sync.WaitGroup
	// listeners counts the traffic and admin serve loops; Wait returns only once
	// both have let go of their ports.
	listeners sync.WaitGroup
	ctx       context.Context
}

// Start loads the config, opens the store, builds the server and starts serving. A
// file that does not load is refused even with a valid persisted state: an operator
// must see the mistake before anything serves. Stop it by ending ctx (or a signal
// with Options.Signals), then call Wait.
func Start(ctx context.Context, opt Options) (*Gateway, error) {
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg, err := conf.LoadFile(opt.ConfigPath)
	if err != nil {
		return nil, err
	}
	st := opt.Store
	if st == nil {
		if st, err = OpenStore(cfg, log); err != nil {
			return nil, err
		}
	}
	for _, w := range cfg.Warnings {
		log.Warn("config", "warning", w.Error())
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: log, Store: st})
	if err != nil {
		st.Close()
		return nil, err
	}
	listen, adminListen := cfg.Listen, cfg.Admin.Listen
	if opt.Listen != "" {
		listen = opt.Listen
	}
	if opt.AdminListen != "" {
		adminListen = opt.AdminListen
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		srv.Shutdown(time.Second) //nolint:errcheck // nothing served yet
		st.Close()
		return nil, err
	}
	aln, err := net.Listen("tcp", adminListen)
	if err != nil {
		ln.Close()
		srv.Shutdown(time.Second) //nolint:errcheck // nothing served yet
		st.Close()
		return nil, err
	}
	var tln net.Listener
	if cfg.TLS != nil {
		addr := cfg.TLS.Listen
		if opt.TLSListen != "" {
			addr = opt.TLSListen
		}
		if tln, err = net.Listen("tcp", addr); err != nil {
			aln.Close()
			ln.Close()
			srv.Shutdown(time.Second) //nolint:errcheck // nothing served yet
			st.Close()
			return nil, err
		}
	}
	if opt.Signals {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		_ = stop // released by the cancel below, which ends the same context tree
	}
	ctx, cancel := context.WithCancel(ctx)
	// The admin listener and the background work (watchers, the store's watch, the
	// fleet registration, plans) outlive the stop signal: through the shutdown delay
	// the gateway still serves, so it must still follow the fleet, reload, answer
	// probes and stay listed. Wait ends them, the admin listener last.
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	g := &Gateway{Server: srv, Addr: ln.Addr().String(), AdminAddr: aln.Addr().String(), Store: st,
		log: log, cancel: cancel, stopAdmin: stopAdmin, stopBG: stopBG, signals: opt.Signals, errc: make(chan error, 3), ctx: ctx}
	ctx = bgCtx
	srv.SetInstance(instanceName(st, g.Addr))
	if tln != nil {
		g.TLSAddr = tln.Addr().String()
	}

	w := conf.NewWatcher(opt.ConfigPath, cfg.FileHash)
	w.Follow(cfg)
	if opt.Debounce > 0 {
		w.Debounce = opt.Debounce
	}
	w.OnConfig = func(c *conf.Config) error {
		if cur := srv.Config(); c.Hash == cur.Hash && c.File == cur.File {
			// SIGHUP with nothing changed, in the file or in what it names.
			log.Info("config unchanged (nor the files it names): nothing to reload", "file", opt.ConfigPath)
			return nil
		}
		if err := srv.Reload(c); err != nil {
			log.Error("config refused; the last good config keeps serving", "file", opt.ConfigPath, "err", err.Error())
			return err
		}
		log.Info("config reloaded", "file", opt.ConfigPath, "hash", fmt.Sprintf("%016x", c.Hash))
		for _, w := range c.Warnings {
			log.Warn("config", "warning", w.Error())
		}
		return nil
	}
	w.OnError = func(err error) {
		// Only files that did not read or parse come here: Reload counts and the
		// OnConfig above logs what the server refused.
		srv.ReloadRefused(err)
		log.Error("config refused; the last good config keeps serving", "file", opt.ConfigPath, "err", err.Error())
	}
	w.Ready = make(chan struct{})
	g.watcher = w
	g.goBG(func() {
		if err := w.Run(ctx); err != nil {
			log.Error("config watcher stopped", "err", err)
		}
	})
	// Return once edits are seen, so that a change made right after Start is not lost.
	select {
	case <-w.Ready:
	case <-time.After(5 * time.Second):
		log.Error("config watcher not ready after 5s; edits may not be seen", "file", opt.ConfigPath)
	}
	if opt.Signals {
		// SIGHUP stays caught until Wait returns (g.hup): its default action would
		// end the process in the middle of a drain.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		g.hup = hup
		g.goBG(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					w.Trigger()
					srv.ReloadCertificates()
				}
			}
		})
	}
	// Overrides changed elsewhere (other instances of a fleet) apply here with the
	// same atomic swap as a local change.
	g.goBG(func() {
		err := st.Watch(ctx, func(ov conf.Overrides) {
			if err := srv.ApplyOverrides(ov); err != nil {
				log.Error("override from the store refused", "store", st.Describe(), "revision", ov.Revision, "err", err)
			}
		})
		if err != nil {
			log.Error("override store watch stopped", "store", st.Describe(), "err", err)
		}
	})
	// A fleet instance registers itself (under a lease) so that status -fleet lists
	// it with the revision it serves; it leaves the list on the way out.
	if fl := st.Fleet(); fl != nil {
		g.goBG(func() { fl.Register(ctx, g.Addr, g.AdminAddr) })
	}
	// Certificate files (the listener's, upstream client certificates) are
	// watched like the config: a renewal is served without a restart.
	g.goBG(func() {
		if err := srv.WatchCertificates(ctx); err != nil {
			log.Error("certificate watcher stopped", "err", err)
		}
	})
	g.startPlans(ctx, st)
	g.listeners.Add(2)
	go func() { defer g.listeners.Done(); g.errc <- srv.Serve(ln) }()
	go func() { defer g.listeners.Done(); g.errc <- admin.Serve(adminCtx, aln, srv) }()
	if tln != nil {
		g.listeners.Add(1)
		go func() { defer g.listeners.Done(); g.errc <- srv.ServeTLS(tln) }()
	}
	log.Info("shiftgate serving", "listen", g.Addr, "tls", g.TLSAddr, "admin", g.AdminAddr,
		"config", opt.ConfigPath, "routes", len(cfg.Routes), "overrides", st.Describe())
	return g, nil
}

func (g *Gateway) goBG(f func()) {
	g.bg.Add(1)
	go func() { defer g.bg.Done(); f() }()
}

// Stop asks the gateway to stop; Wait returns once it has drained.
func (g *Gateway) Stop() { g.cancel() }

// Wait blocks until the gateway's context ends or a listener fails, then drains:
// /readyz answers 503 at once, new requests are still served (and the fleet still
// followed) for timeouts.shutdown_delay, so a load balancer that probes /readyz
// stops sending first; then the background work stops, the gateway stops accepting
// and lets in-flight requests finish (timeouts.shutdown), closes the admin listener
// last and closes the store.
func (g *Gateway) Wait() error {
	var err error
	select {
	case <-g.ctx.Done():
	case err = <-g.errc:
	}
	var again chan os.Signal
	if g.signals {
		// A second SIGINT or SIGTERM ends the shutdown delay.
		again = make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(again)
	}
	if g.hup != nil {
		defer signal.Stop(g.hup)
	}
	g.Server.BeginDrain()
	g.cancel()
	// The serving config's times: a reload may have changed them.
	t := g.Server.Config().Timeouts
	if d := t.ShutdownDelay.D; d > 0 && err == nil {
		g.log.Info("draining: /readyz answers 503; still serving until the shutdown delay ends (a second SIGTERM ends it)", "shutdown_delay", d.String())
		g.delay(d, again)
	}
	// Nothing may change the server while it shuts down: watchers, the store's
	// watch and plans end first (the fleet registration leaves the list).
	g.stopBG()
	g.bg.Wait()
	g.log.Info("shutting down: draining in-flight requests")
	if serr := g.Server.Shutdown(t.Shutdown.D); serr != nil && err == nil {
		err = serr
	}
	g.stopAdmin()
	g.listeners.Wait()
	close(g.errc)
	for e := range g.errc {
		if e != nil && !errors.Is(e, net.ErrClosed) && err == nil {
			err = e
		}
	}
	if cerr := g.Store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// delay waits d, or less when a signal comes on again (nil: none).
func (g *Gateway) delay(d time.Duration, again <-chan os.Signal) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-again:
		g.log.Warn("second signal: the shutdown delay ends now")
	case <-g.endDelay:
	}
}

// Run is Start then Wait; ready, when not nil, is called once the gateway listens.
func Run(ctx context.Context, opt Options, ready func(*Gateway)) error {
	g, err := Start(ctx, opt)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(g)
	}
	return g.Wait()
}

// OpenStore returns the override store the config asks for: the state_dir file for a
// single instance, etcd for a fleet (mirrored to state_dir, so a restart during an
// etcd outage serves the last values).
func OpenStore(cfg *conf.Config, log *slog.Logger) (store.Store, error) {
	if e := cfg.Fleet.Etcd; e != nil {
		return store.NewEtcd(e, store.EtcdOptions{StateDir: cfg.StateDir, Logger: log, Region: cfg.SelfRegion})
	}
	return store.NewFile(cfg.StateDir)
}

// instanceName names this instance: as the fleet registers it, else host:port.
func instanceName(st store.Store, listen string) string {
	if fl := st.Fleet(); fl != nil {
		return fl.InstanceName(listen)
	}
	host, _ := os.Hostname()
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return host
	}
	return host + ":" + port
}
