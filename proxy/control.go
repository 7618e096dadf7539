package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/breaker"
	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/fallback"
	"github.com/shiftgate/shiftgate/routing"
	"github.com/shiftgate/shiftgate/version"
)

// This file is the Server's control API: what the admin HTTP handlers, the CLI (through
// them) and in-process callers such as the demo and tests use to read and change a
// running gateway. Every change goes through the override store, then through the one
// swap that puts a new snapshot into service, and leaves an audit line.

// Error is a control API error that carries the HTTP status the admin API answers with.
type Error struct {
	Status int
	Err    error
	// Refused describes a split change that was refused because it moves users back.
	Refused *SplitResult
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with status and a formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Err: fmt.Errorf(format, args...)}
}

// StatusOf returns the HTTP status for err: its own for an *Error, 409 for a local
// write refused because the fleet store is up, 503 for a write the store did not
// take, 504 for a write sent to the store whose answer did not come (it may have
// taken effect), 500 otherwise.
func StatusOf(err error) int {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Status
	case errors.Is(err, store.ErrLocalWhileUp):
		return http.StatusConflict
	case errors.Is(err, store.ErrDown):
		return http.StatusServiceUnavailable
	case errors.Is(err, store.ErrOutcomeUnknown):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// Status is the answer of GET /v1/status.
type Status struct {
	// Binary, Commit and GoVersion say which shiftgate answers (see package version).
	Binary    string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`

	Version     uint64        `json:"config_version"`
	ConfigFile  string        `json:"config_file"`
	ConfigHash  string        `json:"config_hash"`
	Store       string        `json:"override_store"`
	Revision    int64         `json:"override_revision"`
	Rollback    RollbackState `json:"rollback"`
	Routes      []RouteStatus `json:"routes"`
	Tunnels     int           `json:"tunnels"`
	StaleRoutes []string      `json:"stale_overrides,omitempty"`
	// StoreUp is whether the override store answers (always true for the state_dir
	// file); StoreError says why not. AppliedRevision is the override revision this
	// instance serves, StoreRevision the newest it has seen in the store.
	StoreUp         bool   `json:"store_up"`
	StoreError      string `json:"store_error,omitempty"`
	AppliedRevision int64  `json:"applied_revision"`
	StoreRevision   int64  `json:"store_revision"`
	// PendingLocal names overrides changed with -local during a store outage and not
	// yet written to the store; LastReconciled is the last such change written.
	PendingLocal   []string          `json:"pending_local,omitempty"`
	LastReconciled *store.Reconciled `json:"last_reconciled,omitempty"`
	// Unpersisted names overrides in force in memory that the store did not take
	// (state_dir full or read-only): "rollback", "routes/NAME". A restart loses them;
	// they are written as soon as the store takes a write.
	Unpersisted      []string `json:"unpersisted,omitempty"`
	UnpersistedError string   `json:"unpersisted_error,omitempty"`
	// StartedWith says what this instance served when it started during a fleet
	// store outage: "mirror", or with an empty state_dir "rollback" or "file".
	StartedWith string `json:"started_with,omitempty"`
	// UndecodableKeys lists the fleet store's override keys whose value does not
	// decode (written by hand or by a broken tool); each keeps the value this instance
	// served before, so none of them changed what serves.
	UndecodableKeys []store.BadKey `json:"undecodable_keys,omitempty"`
	// Limits says whether caps are fleet-wide or per instance, and what is capped.
	Limits LimitsBrief `json:"limits"`
	// TLS shows the certificates in service and their expiry, handshake errors
	// by reason and unverified upstream regions; absent without any TLS.
	TLS *TLSStatus `json:"tls,omitempty"`
	// Cutoff is the client cut-off; ClientConfigVersion the version of the client
	// config this instance publishes.
	Cutoff              CutoffState `json:"cutoff"`
	ClientConfigVersion string      `json:"client_config_version"`
	// RestartPending lists the keys the config file sets differently from what the
	// running process uses, which only a restart applies (listeners, client timeouts
	// and limits; see conf.ReadAtStart).
	RestartPending []conf.KeyChange `json:"restart_pending,omitempty"`
}

// RollbackState is the rollback switch as status shows it.
type RollbackState struct {
	On        bool      `json:"on"`
	Ramping   bool      `json:"ramping"`
	RampUntil time.Time `json:"ramp_until,omitzero"`
	Who       string    `json:"who,omitempty"`
	At        time.Time `json:"at,omitzero"`
}

// RouteStatus is one route in status: the file's split, the override, and what is in
// effect now (after rollback and ramp).
type RouteStatus struct {
	Name             string         `json:"name"`
	From             string         `json:"from"`
	To               string         `json:"to"`
	Salt             string         `json:"salt"`
	Keys             []string       `json:"keys"`
	Percent          float64        `json:"percent"`
	WritePercent     float64        `json:"write_percent"`
	FilePercent      float64        `json:"file_percent"`
	FileWritePercent float64        `json:"file_write_percent"`
	Override         *SplitOverride `json:"override,omitempty"`
	// Source says which split Percent and WritePercent are: "override" while a
	// runtime override shadows the file's, "file" otherwise.
	Source         string            `json:"source"`
	Effective      float64           `json:"effective_percent"`
	EffectiveWrite float64           `json:"effective_write_percent"`
	Breakers       map[string]string `json:"breakers"`
	// Cutoff is whether clients are asked not to call this route (by name or
	// site-wide); Clients counts what apps that decide themselves said.
	Cutoff  bool          `json:"cutoff"`
	Clients *ClientCounts `json:"clients,omitempty"`
	// Plan is the route's ramp plan, when it has one.
	Plan *PlanStatus `json:"plan,omitempty"`
}

// SplitOverride is a route's override as status shows it.
type SplitOverride struct {
	Percent      float64   `json:"percent"`
	WritePercent float64   `json:"write_percent"`
	Who          string    `json:"who,omitempty"`
	At           time.Time `json:"at,omitzero"`
	// RampUntil is when a ramped override (a plan's rollback) arrives.
	RampUntil time.Time `json:"ramp_until,omitzero"`
}

func pct(bp int) float64 { return float64(bp) / 100 }

// Status reports the serving config, overrides and breaker states.
func (s *Server) Status() Status {
	st := s.state.Load()
	c := st.cfg
	bi := version.Get()
	out := Status{
		Binary: bi.Version, Commit: bi.Commit, GoVersion: bi.GoVersion,
		Version:    st.version,
		ConfigFile: c.File,
		ConfigHash: fmt.Sprintf("%016x", c.Hash),
		Store:      "memory",
		Revision:   st.ov.Revision,
		Rollback: RollbackState{On: st.ov.Rollback.On, Ramping: st.ov.Ramping(s.now()),
			Who: st.ov.Rollback.Who, At: st.ov.Rollback.At},
		Tunnels:        s.tunnels.Len(),
		StaleRoutes:    st.ov.Stale(c),
		TLS:            s.tlsStatus(c),
		RestartPending: s.RestartPending(),
	}
	if out.Rollback.Ramping {
		out.Rollback.RampUntil = st.ov.Rollback.RampFrom.Add(st.ov.Rollback.RampFor)
	}
	if s.store != nil {
		out.Store = s.store.Describe()
	}
	s.fillStoreStatus(&out)
	out.Unpersisted, out.UnpersistedError = s.unpersisted.list()
	out.Limits = s.limitsBrief(st)
	for i := range c.Routes {
		r := &c.Routes[i]
		rs := RouteStatus{
			Name: r.Name, From: r.From, To: r.To, Salt: r.SaltValue,
			Percent: pct(r.PercentBP), WritePercent: pct(r.WritePercentBP),
			FilePercent: pct(r.PercentBP), FileWritePercent: pct(r.WritePercentBP),
			Breakers: map[string]string{}, Source: "file",
		}
		for _, k := range r.KeySources {
			rs.Keys = append(rs.Keys, k.String())
		}
		if o, ok := st.ov.Routes[r.Name]; ok {
			rs.Override = &SplitOverride{Percent: pct(o.PercentBP), WritePercent: pct(o.WritePercentBP), Who: o.Who, At: o.At}
			if o.Ramping(s.now()) {
				rs.Override.RampUntil = o.Ramp.Start.Add(o.Ramp.For)
			}
			rs.Percent, rs.WritePercent = pct(o.PercentBP), pct(o.WritePercentBP)
			rs.Source = "override"
		}
		eff := st.table.RouteSplit(i)
		rs.Effective, rs.EffectiveWrite = pct(eff.Read), pct(eff.Write)
		if st.table.Rollback() {
			rs.Effective, rs.EffectiveWrite = 0, 0
		}
		for id, b := range st.routes[i].run.breakers {
			if b != nil {
				b.Counts() // brings an expired open state up to date
				rs.Breakers[string(st.regions[id])] = b.State().String()
			}
		}
		rs.Plan = planOf(st, i)
		out.Routes = append(out.Routes, rs)
	}
	s.fillClientStatus(st, &out)
	return out
}

// SplitRequest is the body of PUT /v1/routes/{name}/split. Percents are JSON numbers
// with at most two decimals; write_percent defaults to percent.
type SplitRequest struct {
	Percent      json.Number  `json:"percent"`
	WritePercent *json.Number `json:"write_percent,omitempty"`
	// DryRun reports what the change would do without making it.
	DryRun bool `json:"dry_run,omitempty"`
	// Local changes this instance only, for an outage of the fleet store (also
	// ?local=1); it is written to the store when the store returns.
	Local bool `json:"local,omitempty"`
	// Force allows a change that moves users back (a lower percent or write_percent).
	Force bool `json:"force,omitempty"`
}

// SplitResult answers a split change or dry run.
type SplitResult struct {
	Route       string  `json:"route"`
	Before      float64 `json:"before_percent"`
	BeforeWrite float64 `json:"before_write_percent"`
	After       float64 `json:"percent"`
	AfterWrite  float64 `json:"write_percent"`
	MoveForward float64 `json:"share_moving_forward"`
	MoveBack    float64 `json:"share_moving_back"`
	// MoveForwardWrites and MoveBackWrites are the same for the users' writes (the
	// write split); MoveForward and MoveBack are their reads.
	MoveForwardWrites float64  `json:"share_moving_forward_writes"`
	MoveBackWrites    float64  `json:"share_moving_back_writes"`
	SampleKeys        []string `json:"sample_moving_keys,omitempty"`
	DryRun            bool     `json:"dry_run"`
	Revision          int64    `json:"override_revision,omitempty"`
	// Unpersisted, as in RollbackResult.
	Unpersisted string `json:"unpersisted,omitempty"`
	// Local is true for a change made on this instance only (see SplitRequest).
	Local bool `json:"local,omitempty"`
	// Forced is true for a change that was allowed to move users back.
	Forced bool `json:"forced,omitempty"`
}

// planSplit checks one route's split change against the serving state at now and
// describes it. Without write_percent the write split stays where it is, capped at the
// new read split, so writes keep lagging reads. A change that moves users back (a lower
// percent or write_percent) is refused unless req.Force: rollback is the tool for going
// back. Where the route's split ramps (a plan's rollback), "before" is where the ramp
// has got to, which is what users are served and what a change applied at once moves
// them from, not the ramp's target.
func planSplit(st *state, name string, req SplitRequest, now time.Time) (res SplitResult, before, after conf.SplitBP, err error) {
	route, ok := st.cfg.Route(name)
	if !ok {
		return res, before, after, Errorf(http.StatusNotFound, "no route %q", name)
	}
	read, err := conf.ParsePercent(req.Percent.String())
	if err != nil {
		return res, before, after, Errorf(http.StatusBadRequest, "route %s: percent: want 0..100 with at most two decimals, got %q", name, req.Percent.String())
	}
	before = conf.SplitBP{Read: route.PercentBP, Write: route.WritePercentBP}
	if o, ok := st.ov.Routes[name]; ok {
		before = o.SplitAt(now)
	}
	write := 0
	if req.WritePercent != nil {
		if write, err = conf.ParsePercent(req.WritePercent.String()); err != nil {
			return res, before, after, Errorf(http.StatusBadRequest, "route %s: write_percent: want 0..100 with at most two decimals, got %q", name, req.WritePercent.String())
		}
	}
	next, err := conf.NextSplit(before, read, write, req.WritePercent != nil)
	if err != nil {
		return res, before, after, Errorf(http.StatusBadRequest, "route %s: %v", name, err)
	}
	read, write = next.Read, next.Write
	res = SplitResult{Route: name, Before: pct(before.Read), BeforeWrite: pct(before.Write),
		After: pct(read), AfterWrite: pct(write), DryRun: req.DryRun, Forced: req.Force}
	res.MoveForward, res.MoveBack, res.SampleKeys = routing.Moves(routing.Side{Salt: route.SaltValue, BP: before.Read, From: route.From, To: route.To},
		routing.Side{Salt: route.SaltValue, BP: read, From: route.From, To: route.To}, 0)
	res.MoveForwardWrites, res.MoveBackWrites, _ = routing.Moves(routing.Side{Salt: route.SaltValue, BP: before.Write, From: route.From, To: route.To},
		routing.Side{Salt: route.SaltValue, BP: write, From: route.From, To: route.To}, -1)
	if next.MovesBack(before) && !req.Force {
		return res, before, after, &Error{Status: http.StatusConflict, Err: fmt.Errorf(
			"route %s: %s%%/%s%% -> %s%%/%s%% moves %.2f%% of users' reads and %.2f%% of their writes back to %s; "+
				"use rollback (with -ramp) to go back, or force the change", name,
			conf.FormatBP(before.Read), conf.FormatBP(before.Write), conf.FormatBP(read), conf.FormatBP(write),
			100*res.MoveBack, 100*res.MoveBackWrites, route.From), Refused: &res}
	}
	return res, before, next, nil
}

// BulkSplitRequest is the body of PUT /v1/splits: many routes' splits changed in one
// store write (one etcd transaction in a fleet), so they take effect together.
type BulkSplitRequest struct {
	Routes map[string]SplitRequest `json:"routes"`
	DryRun bool                    `json:"dry_run,omitempty"`
	Local  bool                    `json:"local,omitempty"`
	Force  bool                    `json:"force,omitempty"`
}

// BulkSplitResult answers PUT /v1/splits.
type BulkSplitResult struct {
	Results  []SplitResult `json:"results"`
	DryRun   bool          `json:"dry_run"`
	Revision int64         `json:"override_revision,omitempty"`
	// Unpersisted, as in RollbackResult.
	Unpersisted string `json:"unpersisted,omitempty"`
}

// RollbackRequest is the body of POST /v1/rollback.
type RollbackRequest struct {
	On   bool   `json:"on"`
	Ramp string `json:"ramp,omitempty"`
	// Local changes this instance only, as in SplitRequest.
	Local bool `json:"local,omitempty"`
}

// changeOverrides stores a change through the OverrideStore, then applies the stored
// result. With no store it applies in memory. local changes this instance only (see
// store.Fleet). When the store cannot write it (state_dir full or read-only), the
// change is put in force in memory all the same (applyUnpersisted) and unpersisted
// says why it is not persisted: an emergency lever works when the disk does not, and
// every caller reports it as in force, not as failed.
func (s *Server) changeOverrides(ctx context.Context, local bool, change func(*conf.Overrides) error) (ov conf.Overrides, unpersisted string, err error) {
	if s.store == nil {
		s.mu.Lock()
		next := s.state.Load().ov.Clone()
		s.mu.Unlock()
		if err := change(&next); err != nil {
			return next, "", err
		}
		next.Revision++
		return next, "", s.ApplyOverrides(next)
	}
	if !local {
		if ov, unpersisted, ok, err := s.changeOverMemory(change); ok {
			return ov, unpersisted, err
		}
	}
	update := s.store.Update
	if local {
		update = s.changeLocal
	}
	ov, err = update(ctx, change)
	if isUnpersisted(err) {
		ov, err = s.applyUnpersisted(change, err)
		if isUnpersisted(err) {
			return ov, err.Error(), nil
		}
		return ov, "", err
	}
	if err != nil {
		return ov, "", fmt.Errorf("override store %s: %w", s.store.Describe(), err)
	}
	return ov, "", s.applyStored(ov)
}

// firstCookies is every cookie of h by name, as Decide at the gateway reads them:
// fasthttp's parser (spaces and tabs trimmed, one pair of enclosing quotes removed,
// a value still holding a quote, semicolon or backslash dropped) and, of one name
// sent twice, the first.
func firstCookies(h *fasthttp.RequestHeader) map[string]string {
	m := map[string]string{}
	for k, v := range h.Cookies() {
		if _, seen := m[string(k)]; !seen {
			m[string(k)] = string(v)
		}
	}
	return m
}

// DecideRequest builds the request `shiftgate route` and /v1/decide explain: headers as
// "Name: value", cookies and query parsed from their headers and the path, the peer
// from ip (default 127.0.0.1).
func DecideRequest(method, target string, headers []string, ip string) (*routing.StaticRequest, []byte, []byte, error) {
	if method == "" {
		method = "GET"
	}
	if target == "" {
		target = "/"
	}
	if !strings.HasPrefix(target, "/") {
		return nil, nil, nil, fmt.Errorf("path must start with /, got %q", target)
	}
	req := &routing.StaticRequest{MethodName: method, Cookies: map[string]string{}, QueryArgs: map[string]string{}}
	if ip == "" {
		ip = "127.0.0.1"
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ip: %v", err)
	}
	req.PeerAddr = a
	var host string
	var cookies fasthttp.RequestHeader
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return nil, nil, nil, fmt.Errorf("header %q: want 'Name: value'", h)
		}
		// As the gateway reads a request: a value without the spaces and tabs around
		// it (HTTP's optional whitespace; other characters are part of it), cookie
		// values likewise, query values decoded.
		name, value = strings.TrimSpace(name), strings.Trim(value, " \t")
		req.Headers = append(req.Headers, [2]string{name, value})
		switch strings.ToLower(name) {
		case "host":
			host = value
		case "cookie":
			cookies.Add("Cookie", value)
		}
	}
	req.Cookies = firstCookies(&cookies)
	// The path and query as the gateway reads a request line's target: fasthttp's
	// URI, path decoded and normalised (so /api/%66eed/../feed is /api/feed), query
	// values decoded, the first of a name.
	// With a host given, a target starting "//" is a path, as on a request line (with
	// none, fasthttp reads "//api/feed" as host "api").
	var u fasthttp.URI
	if err := u.Parse([]byte("gw"), []byte(target)); err != nil {
		return nil, nil, nil, fmt.Errorf("path: %v", err)
	}
	for k, v := range u.QueryArgs().All() {
		if _, seen := req.QueryArgs[string(k)]; !seen {
			req.QueryArgs[string(k)] = string(v)
		}
	}
	return req, []byte(host), append([]byte(nil), u.Path()...), nil
}

// WriteMetrics writes every metric in the Prometheus text format.
func (s *Server) WriteMetrics(w interface{ Write([]byte) (int, error) }) {
	s.metrics.WritePrometheus(w)
}

func (s *Server) registerGauges() {
	set := s.metrics.set
	set.NewGauge("shiftgate_rollback_on", func() float64 {
		if s.stats.rollbackOn.Load() {
			return 1
		}
		return 0
	})
	set.NewGauge("shiftgate_tunnels_open", func() float64 { return float64(s.tunnels.Len()) })
	// fasthttp refuses connections past limits.max_conns itself and counts them; the
	// plain listener refuses those that parked connections would put past it.
	set.NewGauge("shiftgate_connections_refused_total", func() float64 {
		if s.http == nil {
			return 0
		}
		n := float64(s.http.GetRejectedConnectionsCount())
		if s.parking != nil {
			n += float64(s.parking.Refused())
		}
		return n
	})
	set.NewGauge("shiftgate_client_connections_parked", func() float64 { return float64(s.parked()) })
	set.NewGauge("shiftgate_client_connections_detached", func() float64 {
		if s.parking == nil {
			return 0
		}
		return float64(s.parking.Detached())
	})
	set.NewGauge("shiftgate_config_version", func() float64 { return float64(s.state.Load().version) })
	set.NewGauge("shiftgate_config_restart_pending", func() float64 { return float64(len(s.RestartPending())) })
	set.NewGauge("shiftgate_override_store_up", func() float64 {
		if h, ok := s.storeHealth(); (ok && !h.Up) || (!ok && s.storeWritable() != nil) {
			return 0
		}
		return 1
	})
	set.NewGauge("shiftgate_override_keys_undecodable", func() float64 {
		h, _ := s.storeHealth()
		return float64(len(h.Undecodable))
	})
	set.RegisterMetricsWriter(s.writeMirrorMetrics)
	set.NewGauge("shiftgate_overrides_unpersisted", func() float64 {
		if keys, _ := s.unpersisted.list(); len(keys) > 0 {
			return 1
		}
		return 0
	})
	set.RegisterMetricsWriter(func(w io.Writer) {
		s.runtimes.breakers.Range(func(k breaker.Key, b *breaker.Breaker) {
			fmt.Fprintf(w, "shiftgate_breaker_state{route=%q,region=%q} %d\n", k.Route, k.Region, b.State())
		})
		s.runtimes.caches.Range(func(route string, c *fallback.Cache) {
			cs := c.Stats()
			fmt.Fprintf(w, "shiftgate_fallback_cache_entries{route=%q} %d\n", route, cs.Entries)
			fmt.Fprintf(w, "shiftgate_fallback_cache_bytes{route=%q} %d\n", route, cs.Bytes)
		})
	})
}

// ChangeSplits validates every route's change against the serving state and, unless
// dryRun, stores them in one store write (one etcd transaction in a fleet) and puts
// them into service together. Nothing changes unless every route's change is valid.
// who names the caller in the audit log.
func (s *Server) ChangeSplits(ctx context.Context, who string, req BulkSplitRequest) (BulkSplitResult, error) {
	if len(req.Routes) == 0 {
		return BulkSplitResult{}, Errorf(http.StatusBadRequest, "routes: at least one route")
	}
	st := s.state.Load()
	names := make([]string, 0, len(req.Routes))
	for name := range req.Routes {
		names = append(names, name)
	}
	sort.Strings(names)
	out := BulkSplitResult{DryRun: req.DryRun}
	splits := map[string]conf.SplitBP{}
	befores := map[string]conf.SplitBP{}
	for _, name := range names {
		one := req.Routes[name]
		one.DryRun, one.Force = req.DryRun, one.Force || req.Force
		res, before, split, err := planSplit(st, name, one, s.now())
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Refused != nil {
				s.log.Warn("audit", "who", who, "what", "split refused", "route", name,
					"before", conf.FormatBP(before.Read)+"/"+conf.FormatBP(before.Write),
					"asked", fmt.Sprintf("%g/%g", e.Refused.After, e.Refused.AfterWrite),
					"share_moving_back", e.Refused.MoveBack, "share_moving_back_writes", e.Refused.MoveBackWrites)
			}
			return out, err
		}
		out.Results = append(out.Results, res)
		splits[name], befores[name] = split, before
	}
	if req.DryRun {
		return out, nil
	}
	local := req.Local && s.fleet() != nil
	var paused []string
	var err error
	var ov conf.Overrides
	ov, out.Unpersisted, err = s.changeOverrides(ctx, local, func(o *conf.Overrides) error {
		if o.Routes == nil {
			o.Routes = map[string]conf.RouteOverride{}
		}
		at := s.now().UTC()
		for name, sp := range splits {
			o.Routes[name] = conf.RouteOverride{PercentBP: sp.Read, WritePercentBP: sp.Write, Who: who, At: at}
		}
		paused = pausePlans(o, names, at, who, "manual split by "+who)
		return nil
	})
	if err != nil {
		return out, err
	}
	s.logPaused(who, paused, "manual split", ov.Revision)
	out.Revision = ov.Revision
	for i := range out.Results {
		res := &out.Results[i]
		res.Revision, res.Local, res.Unpersisted = ov.Revision, local, out.Unpersisted
		b := befores[res.Route]
		s.log.Info("audit", "who", who, "what", "split", "route", res.Route,
			"before", conf.FormatBP(b.Read)+"/"+conf.FormatBP(b.Write), "after", fmt.Sprintf("%g/%g", res.After, res.AfterWrite),
			"revision", ov.Revision, "local", local, "forced", res.Forced, "routes", len(out.Results))
	}
	return out, nil
}

// ClearResult answers a cleared override.
type ClearResult struct {
	Routes   []string `json:"routes"`
	Revision int64    `json:"override_revision"`
	Local    bool     `json:"local,omitempty"`
	// Unpersisted, as in RollbackResult.
	Unpersisted string `json:"unpersisted,omitempty"`
}

// ClearSplits drops the runtime overrides of the named routes, so the file's values
// apply again. A route without an override is an error (nothing to clear), and so is
// an unknown route unless it has a stale override left in the store.
func (s *Server) ClearSplits(ctx context.Context, who string, names []string, local bool) (ClearResult, error) {
	st := s.state.Load()
	for _, name := range names {
		if _, ok := st.ov.Routes[name]; !ok {
			if _, known := st.cfg.Route(name); !known {
				return ClearResult{}, Errorf(http.StatusNotFound, "no route %q", name)
			}
			return ClearResult{}, Errorf(http.StatusNotFound, "route %s has no override to clear: the file's split is in force", name)
		}
	}
	local = local && s.fleet() != nil
	var paused []string
	ov, unpersisted, err := s.changeOverrides(ctx, local, func(o *conf.Overrides) error {
		for _, name := range names {
			delete(o.Routes, name)
		}
		paused = pausePlans(o, names, s.now().UTC(), who, "split override cleared by "+who)
		return nil
	})
	if err != nil {
		return ClearResult{}, err
	}
	s.logPaused(who, paused, "split override cleared", ov.Revision)
	for _, name := range names {
		was := st.ov.Routes[name]
		s.log.Info("audit", "who", who, "what", "split cleared", "route", name,
			"override", conf.FormatBP(was.PercentBP)+"/"+conf.FormatBP(was.WritePercentBP), "revision", ov.Revision, "local", local)
	}
	return ClearResult{Routes: names, Revision: ov.Revision, Local: local, Unpersisted: unpersisted}, nil
}

// RollbackResult answers a rollback change.
type RollbackResult struct {
	On       bool   `json:"on"`
	Ramp     string `json:"ramp"`
	Revision int64  `json:"override_revision"`
	Local    bool   `json:"local"`
	// Unpersisted, when set, says the change is in force but the store did not take
	// it (and why): a restart would lose it until a retry writes it.
	Unpersisted string `json:"unpersisted,omitempty"`
}

// SetRollback turns the rollback switch on (everything to each route's from at once)
// or off, optionally over a ramp during which the splits climb back gradually.
func (s *Server) SetRollback(ctx context.Context, who string, req RollbackRequest) (RollbackResult, error) {
	var ramp time.Duration
	if req.Ramp != "" {
		d, err := time.ParseDuration(req.Ramp)
		if err != nil || d < 0 || d > 24*time.Hour {
			return RollbackResult{}, Errorf(http.StatusBadRequest, "ramp: want a duration up to 24h such as 10m, got %q", req.Ramp)
		}
		if req.On {
			return RollbackResult{}, Errorf(http.StatusBadRequest, "ramp applies to turning rollback off")
		}
		ramp = d
	}
	before := s.Overrides().Rollback.On
	local := req.Local && s.fleet() != nil
	var paused []string
	ov, unpersisted, err := s.changeOverrides(ctx, local, func(o *conf.Overrides) error {
		now := s.now().UTC()
		o.Rollback = conf.Rollback{On: req.On, Who: who, At: now}
		if !req.On && ramp > 0 {
			o.Rollback.RampFrom, o.Rollback.RampFor = now, ramp
		}
		paused = nil
		if req.On {
			paused = pausePlans(o, nil, now, who, "rollback turned on by "+who)
		}
		return nil
	})
	res := RollbackResult{On: ov.Rollback.On, Ramp: ramp.String(), Revision: ov.Revision, Local: local, Unpersisted: unpersisted}
	if err != nil {
		return RollbackResult{}, err
	}
	s.logPaused(who, paused, "rollback on", ov.Revision)
	s.log.Info("audit", "who", who, "what", "rollback", "before", before, "after", req.On, "ramp", ramp.String(), "revision", ov.Revision, "local", local, "persisted", res.Unpersisted == "")
	return res, nil
}

// Explain explains the decision the serving config makes for a request described as
// `shiftgate route` and /v1/decide take it.
func (s *Server) Explain(method, target string, headers []string, ip string) (routing.Explanation, error) {
	req, host, path, err := DecideRequest(method, target, headers, ip)
	if err != nil {
		return routing.Explanation{}, &Error{Status: http.StatusBadRequest, Err: err}
	}
	_, ex := s.state.Load().table.Explain(host, path, req)
	return ex, nil
}

// InFleet reports whether the override store is a fleet's (etcd), whose instances
// register themselves.
func (s *Server) InFleet() bool { return s.fleet() != nil }

// FleetInstances lists the instances registered in the fleet store.
func (s *Server) FleetInstances(ctx context.Context) (store.FleetStatus, error) {
	fl := s.fleet()
	if fl == nil {
		return store.FleetStatus{}, Errorf(http.StatusNotFound, "override store %s has no fleet (configure fleet.etcd)", s.storeName())
	}
	list := fl.Instances
	if l, ok := fl.(leftLister); ok {
		list = l.WithLeft // with the instances that left without a clean stop
	}
	st, err := list(ctx)
	if err != nil {
		return st, &Error{Status: http.StatusServiceUnavailable, Err: err}
	}
	return st, nil
}

// AdminToken is the bearer token the admin API requires ("" for none).
func (s *Server) AdminToken() string { return s.state.Load().cfg.Admin.Token }
