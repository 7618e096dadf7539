package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/shed"
)

// The control API of the emergency levers: GET and PUT /v1/limits, `shiftgate limit`
// and `shiftgate budget`. Changes are overrides like splits: stored (the state_dir
// file or etcd), applied through the one swap, audited, and in force over the file's
// values until cleared.

// LimitsStatus is the answer of GET /v1/limits.
type LimitsStatus struct {
	// Scope is "fleet" when caps are fleet-wide (the etcd store: each instance
	// enforces Share of them) or "instance" when each instance enforces them whole.
	Scope string `json:"scope"`
	// LiveInstances is the fleet's size as last counted (1 without a fleet).
	LiveInstances int `json:"live_instances"`
	// Share is this instance's fraction of each request cap; BudgetShare of each
	// byte budget (1/live instances of its self_region).
	Share       float64             `json:"share"`
	BudgetShare float64             `json:"budget_share"`
	SelfRegion  string              `json:"self_region,omitempty"`
	Site        CapStatus           `json:"site"`
	Routes      []RouteLimitStatus  `json:"routes"`
	Budgets     []BudgetStatus      `json:"budgets"`
	CrossRegion []CrossRegionStatus `json:"cross_region,omitempty"`
	// Stale names lever overrides for routes or regions the config does not have.
	Stale []string `json:"stale_overrides,omitempty"`
}

// CapStatus is one request cap: what the file says, the override, and what is in force.
type CapStatus struct {
	// RPS is the fleet-wide cap in force (0: none); FileRPS is the file's.
	RPS     float64 `json:"rps"`
	FileRPS float64 `json:"file_rps"`
	// Source is "file" or "override".
	Source   string              `json:"source"`
	Override *conf.LimitOverride `json:"override,omitempty"`
	// EnforcedRPS is what this instance enforces now, with its share and any ramp
	// (0: no cap). Ramping is true while it climbs; Lifting while a lifted cap climbs
	// before it turns off.
	EnforcedRPS float64 `json:"enforced_rps"`
	Ramping     bool    `json:"ramping"`
}

// RouteLimitStatus is one route's cap, priority and refusals.
type RouteLimitStatus struct {
	Name       string `json:"name"`
	Priority   string `json:"priority"`
	BudgetMode string `json:"budget_mode"`
	CapStatus
	// Forwarded counts the route's requests sent to a region since start; Refused its
	// refusals by reason; Paced and Fallback what byte budgets did instead.
	Forwarded uint64   `json:"forwarded"`
	Refused   Refusals `json:"refused"`
	Paced     uint64   `json:"paced"`
	Fallback  uint64   `json:"budget_fallbacks"`
}

// Refusals counts refused requests by reason: the values of X-Shift-Shed.
type Refusals struct {
	Site   uint64 `json:"site"`
	Route  uint64 `json:"route"`
	Budget uint64 `json:"budget"`
}

// BudgetStatus is one cross-region byte budget.
type BudgetStatus struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Rate is the fleet-wide budget in force ("800Mbit", "off"); BytesPerSec the same.
	Rate        string  `json:"rate"`
	BytesPerSec float64 `json:"bytes_per_sec"`
	FileRate    string  `json:"file_rate"`
	// Source is "file" or "override".
	Source   string               `json:"source"`
	Override *conf.BudgetOverride `json:"override,omitempty"`
	// Binds is whether this instance is in From (its self_region) and so holds
	// its share of the budget.
	Binds bool `json:"binds"`
	// EnforcedBytesPerSec is this instance's share now, with any ramp.
	EnforcedBytesPerSec float64 `json:"enforced_bytes_per_sec"`
	Ramping             bool    `json:"ramping"`
	// Level is the budget's bucket as a fraction of one second of it: below 0 it
	// is in debt (see proxy/shed).
	Level float64 `json:"level"`
	Bytes uint64  `json:"bytes"`
}

// CrossRegionStatus counts what this instance exchanged with another region's
// upstreams since start.
type CrossRegionStatus struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Bytes     uint64 `json:"bytes"`
	Responses uint64 `json:"responses"`
}

// LimitsScope returns "fleet" or "instance" (see LimitsStatus.Scope), the live
// instances last counted and this instance's share of the caps.
func (s *Server) LimitsScope() (scope string, live int, share float64) {
	if s.fleet() == nil {
		return "instance", 1, 1
	}
	live = int(s.share.live.Load())
	return "fleet", max(live, 1), s.shed.Share()
}

// enforced turns a bucket's rate into JSON: +Inf (a lifted cap, off) reads as 0.
func enforced(c shed.Cap) float64 {
	if math.IsInf(c.Rate, 0) || math.IsNaN(c.Rate) {
		return 0
	}
	return c.Rate
}

// Limits reports the caps and budgets in force, where each comes from, what this
// instance enforces, and the refusals so far.
func (s *Server) Limits() LimitsStatus {
	st := s.state.Load()
	c := st.cfg
	stats := st.levers.Stats()
	out := LimitsStatus{SelfRegion: c.SelfRegion, Share: s.shed.Share(), BudgetShare: s.shed.BudgetShare(),
		Stale: st.ov.StaleLevers(c)}
	out.Scope, out.LiveInstances, _ = s.LimitsScope()
	site := st.ov.SiteLimitOf(c)
	out.Site = CapStatus{RPS: site.RPS, FileRPS: c.Limits.SiteRPS, Source: source(site.Override != nil),
		Override: site.Override, EnforcedRPS: enforced(stats.Site), Ramping: stats.Site.Ramping}
	for i := range c.Routes {
		r := &c.Routes[i]
		lim := st.ov.RouteLimitOf(c, r)
		rs := RouteLimitStatus{Name: r.Name, Priority: r.Priority, BudgetMode: r.BudgetMode,
			CapStatus: CapStatus{RPS: lim.RPS, FileRPS: r.LimitRPS, Source: source(lim.Override != nil), Override: lim.Override}}
		if i < len(stats.Routes) {
			rr := routeShedStats(stats.Routes[i], &st.routes[i])
			rs.EnforcedRPS, rs.Ramping = enforced(rr.Cap), rr.Cap.Ramping
			rs.Refused = Refusals(rr.Refused)
			rs.Paced, rs.Fallback = rr.Paced, rr.Fallback
		}
		for _, byClass := range st.routes[i].metrics.requests {
			for _, ctr := range byClass {
				rs.Forwarded += ctr.Get()
			}
		}
		out.Routes = append(out.Routes, rs)
	}
	pairs := map[string]shed.PairStats{}
	for _, p := range stats.Pairs {
		pairs[conf.BudgetKey(p.From, p.To)] = p
		if p.Responses > 0 {
			out.CrossRegion = append(out.CrossRegion, CrossRegionStatus{From: p.From, To: p.To, Bytes: p.Bytes, Responses: p.Responses})
		}
	}
	for _, b := range st.ov.BudgetsOf(c) {
		bs := BudgetStatus{From: b.From, To: b.To, Rate: conf.FormatRate(b.BytesPerSec), BytesPerSec: b.BytesPerSec,
			FileRate: conf.FormatRate(b.FileBytesPerSec), Source: source(b.Override != nil), Override: b.Override,
			Binds: b.From == c.SelfRegion}
		if p, ok := pairs[conf.BudgetKey(b.From, b.To)]; ok {
			bs.EnforcedBytesPerSec, bs.Ramping, bs.Level, bs.Bytes = enforced(p.Budget), p.Budget.Ramping, p.Level, p.Bytes
		}
		out.Budgets = append(out.Budgets, bs)
	}
	return out
}

func source(override bool) string {
	if override {
		return "override"
	}
	return "file"
}

// LimitsRequest is the body of PUT /v1/limits: changes to the site cap, route caps
// and byte budgets, stored in one write and put into service together.
type LimitsRequest struct {
	Site    *LimitChange           `json:"site,omitempty"`
	Routes  map[string]LimitChange `json:"routes,omitempty"`
	Budgets []BudgetChange         `json:"budgets,omitempty"`
	// Local changes this instance only, for an outage of the fleet store (as in
	// SplitRequest).
	Local bool `json:"local,omitempty"`
}

// LimitChange sets one request cap. Exactly one of RPS, Off and Clear is given.
type LimitChange struct {
	// RPS is the new fleet-wide cap in requests per second (> 0).
	RPS json.Number `json:"rps,omitempty"`
	// Off lifts the cap: no cap, whatever the file says, until cleared.
	Off bool `json:"off,omitempty"`
	// Clear drops the override: the file's value applies again.
	Clear bool `json:"clear,omitempty"`
	// Ramp, for a raise or a lift, is how long the cap takes to climb ("2m").
	Ramp string `json:"ramp,omitempty"`
}

// BudgetChange sets the byte budget of one region pair. Exactly one of Rate and
// Clear is given.
type BudgetChange struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Rate is the new fleet-wide budget ("800Mbit", "100MB/s") or "off".
	Rate  string `json:"rate,omitempty"`
	Clear bool   `json:"clear,omitempty"`
	Ramp  string `json:"ramp,omitempty"`
}

// LimitsResult answers PUT /v1/limits.
type LimitsResult struct {
	Changes  []LeverChange `json:"changes"`
	Revision int64         `json:"override_revision"`
	Local    bool          `json:"local,omitempty"`
	Scope    string        `json:"scope"`
	// Notes say what an operator may not expect, such as a budget that binds no
	// instance of this one's region.
	Notes []string `json:"notes,omitempty"`
	// Unpersisted, as in RollbackResult.
	Unpersisted string `json:"unpersisted,omitempty"`
}

// LeverChange describes one change: the lever ("site", "route feed", "budget
// idc->cloud") and its value before and after ("20000 rps", "800Mbit", "off", "file:
// 500 rps").
type LeverChange struct {
	Lever  string `json:"lever"`
	Before string `json:"before"`
	After  string `json:"after"`
	Ramp   string `json:"ramp,omitempty"`
}

const maxLeverRamp = 24 * time.Hour

func parseRamp(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxLeverRamp {
		return 0, Errorf(http.StatusBadRequest, "ramp: want a duration up to 24h such as 2m, got %q", s)
	}
	return d, nil
}

// planLimit checks one cap change; clear reports a change that drops the override.
func planLimit(name string, ch LimitChange) (ov conf.LimitOverride, clear bool, err error) {
	n := 0
	for _, set := range []bool{ch.RPS != "", ch.Off, ch.Clear} {
		if set {
			n++
		}
	}
	if n != 1 {
		return ov, false, Errorf(http.StatusBadRequest, "%s: give one of rps, off and clear", name)
	}
	if ov.Ramp, err = parseRamp(ch.Ramp); err != nil {
		return ov, false, Errorf(http.StatusBadRequest, "%s: %v", name, err)
	}
	switch {
	case ch.Clear:
		if ch.Ramp != "" {
			return ov, false, Errorf(http.StatusBadRequest, "%s: clear takes no ramp: the file's ramp (limits.ramp) applies", name)
		}
		return ov, true, nil
	case ch.Off:
		return ov, false, nil
	}
	v, perr := strconv.ParseFloat(ch.RPS.String(), 64)
	if perr != nil || !(v > 0) || conf.CheckRPS(v) != nil {
		return ov, false, Errorf(http.StatusBadRequest, "%s: rps: want a request rate above 0 and up to %g (or off), got %q", name, float64(conf.MaxRPS), ch.RPS.String())
	}
	ov.RPS = v
	return ov, false, nil
}

func fmtRPS(rps float64) string {
	if rps <= 0 {
		return "off"
	}
	return strconv.FormatFloat(rps, 'f', -1, 64) + " rps"
}

// ChangeLimits validates every change against the serving config and stores them in
// one store write, then puts them into service. Nothing changes unless every change is
// valid. who names the caller in the audit log.
func (s *Server) ChangeLimits(ctx context.Context, who string, req LimitsRequest) (LimitsResult, error) {
	st := s.state.Load()
	c := st.cfg
	if req.Site == nil && len(req.Routes) == 0 && len(req.Budgets) == 0 {
		return LimitsResult{}, Errorf(http.StatusBadRequest, "nothing to change: give site, routes or budgets")
	}
	type capPlan struct {
		name  string // "" for the site
		ov    conf.LimitOverride
		clear bool
	}
	var caps []capPlan
	var changes []LeverChange
	if req.Site != nil {
		ov, clear, err := planLimit("site", *req.Site)
		if err != nil {
			return LimitsResult{}, err
		}
		if clear && st.ov.SiteLimit == nil {
			return LimitsResult{}, Errorf(http.StatusNotFound, "site: no override to clear: the file's cap is in force")
		}
		caps = append(caps, capPlan{"", ov, clear})
		before := st.ov.SiteLimitOf(c)
		changes = append(changes, leverChange("site", before.RPS, before.Override != nil, ov.RPS, clear, c.Limits.SiteRPS, ov.Ramp))
	}
	names := make([]string, 0, len(req.Routes))
	for name := range req.Routes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		r, ok := c.Route(name)
		if !ok {
			if _, stale := st.ov.RouteLimits[name]; !(stale && req.Routes[name].Clear) {
				return LimitsResult{}, Errorf(http.StatusNotFound, "no route %q", name)
			}
		}
		ov, clear, err := planLimit("route "+name, req.Routes[name])
		if err != nil {
			return LimitsResult{}, err
		}
		if _, has := st.ov.RouteLimits[name]; clear && !has {
			return LimitsResult{}, Errorf(http.StatusNotFound, "route %s: no cap override to clear: the file's cap is in force", name)
		}
		caps = append(caps, capPlan{name, ov, clear})
		var file float64
		var before conf.EffectiveLimit
		if r != nil {
			file, before = r.LimitRPS, st.ov.RouteLimitOf(c, r)
		}
		changes = append(changes, leverChange("route "+name, before.RPS, before.Override != nil, ov.RPS, clear, file, ov.Ramp))
	}
	type budgetPlan struct {
		key   string
		ov    conf.BudgetOverride
		clear bool
	}
	var budgets []budgetPlan
	var notes []string
	seen := map[string]bool{}
	cur := map[string]conf.EffectiveBudget{}
	for _, b := range st.ov.BudgetsOf(c) {
		cur[conf.BudgetKey(b.From, b.To)] = b
	}
	for _, bc := range req.Budgets {
		k := conf.BudgetKey(bc.From, bc.To)
		lever := "budget " + bc.From + "->" + bc.To
		if seen[k] {
			return LimitsResult{}, Errorf(http.StatusBadRequest, "%s is named twice", lever)
		}
		seen[k] = true
		_, stale := st.ov.Budgets[k]
		for _, reg := range []string{bc.From, bc.To} {
			if _, ok := c.Region(reg); !ok && !(stale && bc.Clear) {
				return LimitsResult{}, Errorf(http.StatusNotFound, "%s: no region %q (have %s)", lever, reg, regionList(c))
			}
		}
		if bc.From == bc.To {
			return LimitsResult{}, Errorf(http.StatusBadRequest, "%s: a budget caps the traffic between two regions", lever)
		}
		ramp, err := parseRamp(bc.Ramp)
		if err != nil {
			return LimitsResult{}, Errorf(http.StatusBadRequest, "%s: %v", lever, err)
		}
		var p budgetPlan
		p.key, p.ov.Ramp = k, ramp
		switch {
		case bc.Clear && bc.Rate == "" && bc.Ramp == "":
			if !stale {
				return LimitsResult{}, Errorf(http.StatusNotFound, "%s: no override to clear: the file's budget is in force", lever)
			}
			p.clear = true
		case bc.Clear:
			return LimitsResult{}, Errorf(http.StatusBadRequest, "%s: clear takes no rate or ramp", lever)
		case strings.EqualFold(bc.Rate, "off"):
		default:
			v, err := conf.ParseRate(bc.Rate)
			if err != nil {
				return LimitsResult{}, Errorf(http.StatusBadRequest, "%s: %v (or off)", lever, err)
			}
			p.ov.BytesPerSec = v
		}
		budgets = append(budgets, p)
		before := cur[k]
		changes = append(changes, LeverChange{Lever: lever,
			Before: leverValue(conf.FormatRate(before.BytesPerSec), before.Override != nil),
			After:  afterValue(conf.FormatRate(p.ov.BytesPerSec), p.clear, conf.FormatRate(before.FileBytesPerSec)),
			Ramp:   rampString(ramp)})
		if c.SelfRegion != bc.From && !p.clear {
			notes = append(notes, fmt.Sprintf("%s binds the instances whose self_region is %s; this one's is %q", lever, bc.From, c.SelfRegion))
		}
	}

	local := req.Local && s.fleet() != nil
	ov, unpersisted, err := s.changeOverrides(ctx, local, func(o *conf.Overrides) error {
		at := s.now().UTC()
		if o.RouteLimits == nil {
			o.RouteLimits = map[string]conf.LimitOverride{}
		}
		if o.Budgets == nil {
			o.Budgets = map[string]conf.BudgetOverride{}
		}
		for _, p := range caps {
			p.ov.Who, p.ov.At = who, at
			cur, inForce := s.shed.SiteRate()
			if p.name != "" {
				cur, inForce = s.shed.RouteRate(p.name)
			}
			p.ov.From = rampFrom(p.ov.RPS, p.ov.Ramp, cur, inForce)
			switch {
			case p.name == "" && p.clear:
				o.SiteLimit = nil
			case p.name == "":
				v := p.ov
				o.SiteLimit = &v
			case p.clear:
				delete(o.RouteLimits, p.name)
			default:
				o.RouteLimits[p.name] = p.ov
			}
		}
		for _, p := range budgets {
			p.ov.Who, p.ov.At = who, at
			if from, to, ok := conf.SplitBudgetKey(p.key); ok {
				cur, inForce := s.shed.BudgetRate(from, to)
				p.ov.From = rampFrom(p.ov.BytesPerSec, p.ov.Ramp, cur, inForce)
			}
			if p.clear {
				delete(o.Budgets, p.key)
			} else {
				o.Budgets[p.key] = p.ov
			}
		}
		return nil
	})
	if err != nil {
		return LimitsResult{}, err
	}
	scope, _, _ := s.LimitsScope()
	for _, ch := range changes {
		s.log.Info("audit", "who", who, "what", "limit", "lever", ch.Lever, "before", ch.Before, "after", ch.After,
			"ramp", ch.Ramp, "scope", scope, "revision", ov.Revision, "local", local, "persisted", unpersisted == "")
	}
	return LimitsResult{Changes: changes, Revision: ov.Revision, Local: local, Scope: scope, Notes: notes, Unpersisted: unpersisted}, nil
}

func leverChange(lever string, before float64, beforeOverride bool, after float64, clear bool, file float64, ramp time.Duration) LeverChange {
	return LeverChange{Lever: lever, Before: leverValue(fmtRPS(before), beforeOverride),
		After: afterValue(fmtRPS(after), clear, fmtRPS(file)), Ramp: rampString(ramp)}
}

func leverValue(v string, override bool) string {
	if override {
		return v + " (override)"
	}
	return v + " (file)"
}

func afterValue(v string, clear bool, file string) string {
	if clear {
		return file + " (file)"
	}
	return v + " (override)"
}

func rampString(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

func regionList(c *conf.Config) string {
	names := make([]string, len(c.RegionList))
	for i, r := range c.RegionList {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}

// registerLeverMetrics exposes the levers: refusals by route and reason
// (shiftgate_shed_total), budget fallbacks and paced requests, the rates each
// instance enforces, and the bytes exchanged with other regions.
func (s *Server) registerLeverMetrics() {
	s.metrics.set.RegisterMetricsWriter(func(w io.Writer) {
		cur := s.state.Load()
		st := cur.levers.Stats()
		fmt.Fprintf(w, "shiftgate_limit_share %g\n", st.Share)
		fmt.Fprintf(w, "shiftgate_budget_share %g\n", st.BudgetShare)
		s.writeFleetMetrics(w)
		fmt.Fprintf(w, "shiftgate_limit_enforced_rps{scope=\"site\"} %g\n", enforced(st.Site))
		for i, r := range st.Routes {
			if i < len(cur.routes) {
				r = routeShedStats(r, &cur.routes[i])
			}
			fmt.Fprintf(w, "shiftgate_shed_total{route=%q,reason=\"site\"} %d\n", r.Name, r.Refused.Site)
			fmt.Fprintf(w, "shiftgate_shed_total{route=%q,reason=\"route\"} %d\n", r.Name, r.Refused.Route)
			fmt.Fprintf(w, "shiftgate_shed_total{route=%q,reason=\"budget\"} %d\n", r.Name, r.Refused.Budget)
			fmt.Fprintf(w, "shiftgate_budget_fallbacks_total{route=%q} %d\n", r.Name, r.Fallback)
			fmt.Fprintf(w, "shiftgate_budget_paced_total{route=%q} %d\n", r.Name, r.Paced)
			if r.Cap.Target > 0 || r.Cap.Ramping {
				fmt.Fprintf(w, "shiftgate_limit_enforced_rps{scope=\"route\",route=%q} %g\n", r.Name, enforced(r.Cap))
			}
		}
		for _, p := range st.Pairs {
			fmt.Fprintf(w, "shiftgate_cross_region_bytes_total{from=%q,to=%q} %d\n", p.From, p.To, p.Bytes)
			if p.Budget.Target > 0 || p.Budget.Ramping {
				fmt.Fprintf(w, "shiftgate_budget_enforced_bytes_per_second{from=%q,to=%q} %g\n", p.From, p.To, enforced(p.Budget))
				fmt.Fprintf(w, "shiftgate_budget_level{from=%q,to=%q} %g\n", p.From, p.To, p.Level)
			}
		}
	})
}

// LimitsBrief is the levers' line in status: whether caps are fleet-wide or per
// instance, and what is capped (GET /v1/limits has the whole picture).
type LimitsBrief struct {
	// Scope, LiveInstances and Share are as in LimitsStatus.
	Scope         string  `json:"scope"`
	LiveInstances int     `json:"live_instances"`
	Share         float64 `json:"share"`
	// SiteRPS is the fleet-wide site cap in force (0: none); CappedRoutes counts
	// the routes with a cap of their own; Budgets the byte budgets in force.
	SiteRPS      float64 `json:"site_rps"`
	CappedRoutes int     `json:"capped_routes"`
	Budgets      int     `json:"budgets"`
	// Refused counts every refusal since start, by reason.
	Refused Refusals `json:"refused"`
}

func (s *Server) limitsBrief(st *state) LimitsBrief {
	b := LimitsBrief{SiteRPS: st.limits.SiteRPS}
	b.Scope, b.LiveInstances, b.Share = s.LimitsScope()
	for _, r := range st.limits.Routes {
		if r.RPS > 0 {
			b.CappedRoutes++
		}
	}
	for _, bg := range st.limits.Budgets {
		if bg.BytesPerSec > 0 {
			b.Budgets++
		}
	}
	for i, r := range st.levers.Stats().Routes {
		if i < len(st.routes) {
			r = routeShedStats(r, &st.routes[i])
		}
		b.Refused.Site += r.Refused.Site
		b.Refused.Route += r.Refused.Route
		b.Refused.Budget += r.Refused.Budget
	}
	return b
}
