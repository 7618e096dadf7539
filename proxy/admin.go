package proxy

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"

	"fmt"
	"github.com/shiftgate/shiftgate/fallback"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/shiftgate/shiftgate/breaker"
	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
)

// AdminHandler returns the admin API: status, split and rollback overrides, decision
// explanations and Prometheus metrics. Requests need the config's bearer token when it
// has one. Changes are persisted through the Server's OverrideStore before they take
// effect and are logged as audit lines.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.adminStatus)
	mux.HandleFunc("PUT /v1/routes/{name}/split", s.adminSplit)
	mux.HandleFunc("PUT /v1/splits", s.adminBulkSplit)
	mux.HandleFunc("POST /v1/rollback", s.adminRollback)
	mux.HandleFunc("GET /v1/decide", s.adminDecide)
	mux.HandleFunc("GET /v1/fleet", s.adminFleet)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.WriteMetrics(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	// Profiles for operators chasing CPU or memory; behind the same token as the rest.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return s.requireToken(mux)
}

func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := s.Config().Admin.Token
		if token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="shiftgate"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// ServeAdmin serves the admin API on ln until ctx ends.
func (s *Server) ServeAdmin(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(c) //nolint:errcheck // best effort on exit
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client may be gone
}

// Status is the answer of GET /v1/status.
type Status struct {
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
	PendingLocal   []string         `json:"pending_local,omitempty"`
	LastReconciled *conf.Reconciled `json:"last_reconciled,omitempty"`
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
	Name             string            `json:"name"`
	From             string            `json:"from"`
	To               string            `json:"to"`
	Salt             string            `json:"salt"`
	Keys             []string          `json:"keys"`
	Percent          float64           `json:"percent"`
	WritePercent     float64           `json:"write_percent"`
	FilePercent      float64           `json:"file_percent"`
	FileWritePercent float64           `json:"file_write_percent"`
	Override         *SplitOverride    `json:"override,omitempty"`
	Effective        float64           `json:"effective_percent"`
	EffectiveWrite   float64           `json:"effective_write_percent"`
	Breakers         map[string]string `json:"breakers"`
}

// SplitOverride is a route's override as status shows it.
type SplitOverride struct {
	Percent      float64   `json:"percent"`
	WritePercent float64   `json:"write_percent"`
	Who          string    `json:"who,omitempty"`
	At           time.Time `json:"at,omitzero"`
}

func pct(bp int) float64 { return float64(bp) / 100 }

// Status reports the serving config, overrides and breaker states.
func (s *Server) Status() Status {
	st := s.state.Load()
	c := st.cfg
	out := Status{
		Version:    st.version,
		ConfigFile: c.File,
		ConfigHash: fmt.Sprintf("%016x", c.Hash),
		Store:      "memory",
		Revision:   st.ov.Revision,
		Rollback: RollbackState{On: st.ov.Rollback.On, Ramping: st.ov.Ramping(s.now()),
			Who: st.ov.Rollback.Who, At: st.ov.Rollback.At},
		Tunnels:     s.tunnels.Len(),
		StaleRoutes: st.ov.Stale(c),
	}
	if out.Rollback.Ramping {
		out.Rollback.RampUntil = st.ov.Rollback.RampFrom.Add(st.ov.Rollback.RampFor)
	}
	if s.store != nil {
		out.Store = s.store.Describe()
	}
	s.fillStoreStatus(&out)
	for i := range c.Routes {
		r := &c.Routes[i]
		rs := RouteStatus{
			Name: r.Name, From: r.From, To: r.To, Salt: r.SaltValue,
			Percent: pct(r.PercentBP), WritePercent: pct(r.WritePercentBP),
			FilePercent: pct(r.PercentBP), FileWritePercent: pct(r.WritePercentBP),
			Breakers: map[string]string{},
		}
		for _, k := range r.KeySources {
			rs.Keys = append(rs.Keys, k.String())
		}
		if o, ok := st.ov.Routes[r.Name]; ok {
			rs.Override = &SplitOverride{Percent: pct(o.PercentBP), WritePercent: pct(o.WritePercentBP), Who: o.Who, At: o.At}
			rs.Percent, rs.WritePercent = pct(o.PercentBP), pct(o.WritePercentBP)
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
		out.Routes = append(out.Routes, rs)
	}
	return out
}

func (s *Server) adminStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Status())
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
}

// SplitResult answers a split change or dry run.
type SplitResult struct {
	Route       string   `json:"route"`
	Before      float64  `json:"before_percent"`
	BeforeWrite float64  `json:"before_write_percent"`
	After       float64  `json:"percent"`
	AfterWrite  float64  `json:"write_percent"`
	MoveForward float64  `json:"share_moving_forward"`
	MoveBack    float64  `json:"share_moving_back"`
	SampleKeys  []string `json:"sample_moving_keys,omitempty"`
	DryRun      bool     `json:"dry_run"`
	Revision    int64    `json:"override_revision,omitempty"`
	// Local is true for a change made on this instance only (see SplitRequest).
	Local bool `json:"local,omitempty"`
}

func peerOf(r *http.Request) string { return r.RemoteAddr }

func (s *Server) adminSplit(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req SplitRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return
	}
	st := s.state.Load()
	res, before, split, status, err := planSplit(st, name, req)
	if err != nil {
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	read, write := split.Read, split.Write
	if req.DryRun {
		writeJSON(w, http.StatusOK, res)
		return
	}
	who := peerOf(r)
	ov, err := s.changeOverrides(r.Context(), s.wantLocal(r, req.Local), func(o *conf.Overrides) error {
		if o.Routes == nil {
			o.Routes = map[string]conf.RouteOverride{}
		}
		o.Routes[name] = conf.RouteOverride{PercentBP: read, WritePercentBP: write, Who: who, At: s.now().UTC()}
		return nil
	})
	if err != nil {
		writeJSON(w, storeErrStatus(err), map[string]string{"error": err.Error()})
		return
	}
	res.Revision, res.Local = ov.Revision, s.wantLocal(r, req.Local)
	s.log.Info("audit", "who", who, "what", "split", "route", name,
		"before", conf.FormatBP(before.Read)+"/"+conf.FormatBP(before.Write),
		"after", conf.FormatBP(read)+"/"+conf.FormatBP(write), "revision", ov.Revision, "local", res.Local)
	writeJSON(w, http.StatusOK, res)
}

// planSplit checks one route's split change against the serving state and describes
// it; on error it also returns the HTTP status to answer with.
func planSplit(st *state, name string, req SplitRequest) (res SplitResult, before, after conf.SplitBP, status int, err error) {
	route, ok := st.cfg.Route(name)
	if !ok {
		return res, before, after, http.StatusNotFound, fmt.Errorf("no route %q", name)
	}
	read, err := conf.ParsePercent(req.Percent.String())
	if err != nil {
		return res, before, after, http.StatusBadRequest, fmt.Errorf("route %s: percent: want 0..100 with at most two decimals, got %s", name, req.Percent.String())
	}
	write := read
	if req.WritePercent != nil {
		if write, err = conf.ParsePercent(req.WritePercent.String()); err != nil {
			return res, before, after, http.StatusBadRequest, fmt.Errorf("route %s: write_percent: want 0..100 with at most two decimals, got %s", name, req.WritePercent.String())
		}
	}
	if write > read {
		return res, before, after, http.StatusBadRequest, fmt.Errorf("route %s: write_percent %s is above percent %s: a user's writes may not move before their reads", name, conf.FormatBP(write), conf.FormatBP(read))
	}
	before = conf.SplitBP{Read: route.PercentBP, Write: route.WritePercentBP}
	if o, ok := st.ov.Routes[name]; ok {
		before = conf.SplitBP{Read: o.PercentBP, Write: o.WritePercentBP}
	}
	res = SplitResult{Route: name, Before: pct(before.Read), BeforeWrite: pct(before.Write),
		After: pct(read), AfterWrite: pct(write), DryRun: req.DryRun}
	res.MoveForward, res.MoveBack, res.SampleKeys = splitMoves(route.SaltValue, before.Read, read)
	return res, before, conf.SplitBP{Read: read, Write: write}, http.StatusOK, nil
}

// BulkSplitRequest is the body of PUT /v1/splits: many routes' splits changed in one
// store write (one etcd transaction in a fleet), so they take effect together.
type BulkSplitRequest struct {
	Routes map[string]SplitRequest `json:"routes"`
	DryRun bool                    `json:"dry_run,omitempty"`
	Local  bool                    `json:"local,omitempty"`
}

// BulkSplitResult answers PUT /v1/splits.
type BulkSplitResult struct {
	Results  []SplitResult `json:"results"`
	DryRun   bool          `json:"dry_run"`
	Revision int64         `json:"override_revision,omitempty"`
}

func (s *Server) adminBulkSplit(w http.ResponseWriter, r *http.Request) {
	var req BulkSplitRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return
	}
	if len(req.Routes) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "routes: at least one route"})
		return
	}
	st := s.state.Load()
	names := make([]string, 0, len(req.Routes))
	for name := range req.Routes {
		names = append(names, name)
	}
	sort.Strings(names)
	out := BulkSplitResult{DryRun: req.DryRun}
	splits := map[string]conf.SplitBP{}
	for _, name := range names {
		one := req.Routes[name]
		one.DryRun = req.DryRun
		res, _, split, status, err := planSplit(st, name, one)
		if err != nil {
			// Nothing is changed unless every route's change is valid.
			writeJSON(w, status, map[string]string{"error": err.Error()})
			return
		}
		out.Results = append(out.Results, res)
		splits[name] = split
	}
	if req.DryRun {
		writeJSON(w, http.StatusOK, out)
		return
	}
	who := peerOf(r)
	local := s.wantLocal(r, req.Local)
	ov, err := s.changeOverrides(r.Context(), local, func(o *conf.Overrides) error {
		if o.Routes == nil {
			o.Routes = map[string]conf.RouteOverride{}
		}
		at := s.now().UTC()
		for name, sp := range splits {
			o.Routes[name] = conf.RouteOverride{PercentBP: sp.Read, WritePercentBP: sp.Write, Who: who, At: at}
		}
		return nil
	})
	if err != nil {
		writeJSON(w, storeErrStatus(err), map[string]string{"error": err.Error()})
		return
	}
	out.Revision = ov.Revision
	for _, res := range out.Results {
		s.log.Info("audit", "who", who, "what", "split", "route", res.Route,
			"before", fmt.Sprintf("%g/%g", res.Before, res.BeforeWrite), "after", fmt.Sprintf("%g/%g", res.After, res.AfterWrite),
			"revision", ov.Revision, "local", local, "bulk", len(out.Results))
	}
	writeJSON(w, http.StatusOK, out)
}

// splitMoves estimates, from the bucket space, the share of users that move forward
// (from → to) and back when a route's read split goes from a to b basis points, and
// finds a few sample keys that move.
func splitMoves(salt string, a, b int) (forward, back float64, samples []string) {
	if b > a {
		forward = float64(b-a) / routing.Buckets
	} else {
		back = float64(a-b) / routing.Buckets
	}
	lo, hi := min(a, b), max(a, b)
	for i := 0; i < 200000 && len(samples) < 5 && lo < hi; i++ {
		k := fmt.Sprintf("u-%d", i)
		if bk := routing.Bucket(salt, k); bk >= lo && bk < hi {
			samples = append(samples, k)
		}
	}
	return forward, back, samples
}

// RollbackRequest is the body of POST /v1/rollback.
type RollbackRequest struct {
	On   bool   `json:"on"`
	Ramp string `json:"ramp,omitempty"`
	// Local changes this instance only, as in SplitRequest.
	Local bool `json:"local,omitempty"`
}

func (s *Server) adminRollback(w http.ResponseWriter, r *http.Request) {
	var req RollbackRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
		return
	}
	var ramp time.Duration
	if req.Ramp != "" {
		d, err := time.ParseDuration(req.Ramp)
		if err != nil || d < 0 || d > 24*time.Hour {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "ramp: want a duration up to 24h such as 10m, got " + req.Ramp})
			return
		}
		if req.On {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "ramp applies to turning rollback off"})
			return
		}
		ramp = d
	}
	before := s.Overrides().Rollback.On
	who := peerOf(r)
	ov, err := s.changeOverrides(r.Context(), s.wantLocal(r, req.Local), func(o *conf.Overrides) error {
		now := s.now().UTC()
		o.Rollback = conf.Rollback{On: req.On, Who: who, At: now}
		if !req.On && ramp > 0 {
			o.Rollback.RampFrom, o.Rollback.RampFor = now, ramp
		}
		return nil
	})
	if err != nil {
		writeJSON(w, storeErrStatus(err), map[string]string{"error": err.Error()})
		return
	}
	local := s.wantLocal(r, req.Local)
	s.log.Info("audit", "who", who, "what", "rollback", "before", before, "after", req.On, "ramp", ramp.String(), "revision", ov.Revision, "local", local)
	writeJSON(w, http.StatusOK, map[string]any{"on": ov.Rollback.On, "ramp": ramp.String(), "override_revision": ov.Revision, "local": local})
}

// changeOverrides stores a change through the OverrideStore, then applies the stored
// result. With no store it applies in memory. local changes this instance only (see
// conf.LocalUpdater).
func (s *Server) changeOverrides(ctx context.Context, local bool, change func(*conf.Overrides) error) (conf.Overrides, error) {
	if s.store == nil {
		s.mu.Lock()
		next := s.state.Load().ov.Clone()
		s.mu.Unlock()
		if err := change(&next); err != nil {
			return next, err
		}
		next.Revision++
		return next, s.ApplyOverrides(next)
	}
	update := s.store.Update
	if local {
		update = s.changeLocal
	}
	ov, err := update(ctx, change)
	if err != nil {
		return ov, fmt.Errorf("override store %s: %w", s.store.Describe(), err)
	}
	return ov, s.applyStored(ov)
}

func (s *Server) adminDecide(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req, host, path, err := DecideRequest(q.Get("method"), q.Get("path"), q["header"], q.Get("ip"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	_, ex := s.state.Load().table.Explain(host, path, req)
	writeJSON(w, http.StatusOK, ex)
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
	req := &routing.StaticRequest{MethodName: strings.ToUpper(method), Cookies: map[string]string{}, QueryArgs: map[string]string{}}
	if ip == "" {
		ip = "127.0.0.1"
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ip: %v", err)
	}
	req.PeerAddr = a
	var host string
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return nil, nil, nil, fmt.Errorf("header %q: want 'Name: value'", h)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		req.Headers = append(req.Headers, [2]string{name, value})
		switch strings.ToLower(name) {
		case "host":
			host = value
		case "cookie":
			for _, c := range strings.Split(value, ";") {
				if k, v, ok := strings.Cut(strings.TrimSpace(c), "="); ok {
					req.Cookies[k] = v
				}
			}
		}
	}
	path, query, _ := strings.Cut(target, "?")
	for _, kv := range strings.Split(query, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if _, seen := req.QueryArgs[k]; !seen {
				req.QueryArgs[k] = v
			}
		}
	}
	return req, []byte(host), []byte(path), nil
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
	set.NewGauge("shiftgate_config_version", func() float64 { return float64(s.state.Load().version) })
	set.NewGauge("shiftgate_override_store_up", func() float64 {
		if h, ok := s.storeHealth(); ok && !h.Up {
			return 0
		}
		return 1
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
