package admin

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

// fleetStatsTimeout bounds the wait for each fleet member's stats: a member that does
// not answer in time is listed as missing, and the page shows the rest.
const fleetStatsTimeout = time.Second

// statsView reads the query's view: history=DURATION (default 5m, "0" for none),
// compare=DURATION (the comparisons' span, default 1m; a ramp plan's gates ask for
// the window since their step began) and histograms=1 (what a fleet view merges).
func statsView(r *http.Request) (stats.View, error) {
	q := r.URL.Query()
	v := stats.View{Histograms: q.Get("histograms") == "1"}
	if h := q.Get("history"); h != "" {
		d, err := time.ParseDuration(h)
		if err != nil || d < 0 || d > 24*time.Hour {
			return v, proxy.Errorf(http.StatusBadRequest, "history: want a duration up to 24h such as 5m, got %q", h)
		}
		v.History = d
		if d == 0 {
			v.History = -1
		}
		if d > 10*time.Minute {
			v.HistoryStep = 10 * time.Second
		}
	}
	if c := q.Get("compare"); c != "" {
		d, err := time.ParseDuration(c)
		if err != nil || d < time.Second || d > 24*time.Hour {
			return v, proxy.Errorf(http.StatusBadRequest, "compare: want a duration from 1s to 24h such as 1m, got %q", c)
		}
		v.Compare = d
	}
	return v, nil
}

// FleetStats is GET /v1/stats?fleet=1 for callers in the process (a ramp plan's
// gates): srv's statistics of route ("" for all) under v, merged with those of every
// other instance registered in the fleet; self, this instance's admin address, is
// not asked again. v's Compare and History travel to the other instances.
func FleetStats(ctx context.Context, srv *proxy.Server, self, route string, v stats.View) (stats.Snapshot, error) {
	v.Histograms = true
	local, err := srv.Stats(route, v)
	if err != nil {
		return local, err
	}
	q := url.Values{}
	if route != "" {
		q.Set("route", route)
	}
	if v.Compare > 0 {
		q.Set("compare", v.Compare.String())
	}
	q.Set("history", "0")
	if v.History > 0 {
		q.Set("history", v.History.String())
	}
	a := &api{srv: srv, self: self}
	return a.fleetStats(ctx, local, q.Encode())
}

// stats answers GET /v1/stats: this instance's per-cohort statistics, or with
// ?fleet=1 the merge of every registered instance's, with the ones that did not
// answer in missing[].
func (a *api) stats(w http.ResponseWriter, r *http.Request) {
	v, err := statsView(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	route := r.URL.Query().Get("route")
	fleet, _ := strconv.ParseBool(r.URL.Query().Get("fleet"))
	if fleet {
		v.Histograms = true // the merge needs them
	}
	snap, err := a.srv.Stats(route, v)
	if err != nil {
		writeErr(w, err)
		return
	}
	if fleet {
		snap, err = a.fleetStats(r.Context(), snap, r.URL.RawQuery)
		if err != nil {
			writeErr(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, snap)
}

// fleetStats merges local with the stats of every other registered instance.
func (a *api) fleetStats(ctx context.Context, local stats.Snapshot, rawQuery string) (stats.Snapshot, error) {
	if !a.srv.InFleet() {
		// One instance without a fleet store is a fleet of one: its own statistics,
		// with instances[] naming it, as a dashboard or a script asking fleet-wide
		// expects, not an error.
		return stats.Merge(local), nil
	}
	lctx, cancel := context.WithTimeout(ctx, fleetStatsTimeout)
	defer cancel()
	fl, err := a.srv.FleetInstances(lctx)
	if err != nil {
		return local, err
	}
	type answer struct {
		name string
		snap stats.Snapshot
		err  error
	}
	var wg sync.WaitGroup
	answers := make(chan answer, len(fl.Instances))
	for _, inst := range fl.Instances {
		if inst.Admin == a.self {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &Client{Base: "http://" + inst.Admin, Token: a.srv.AdminToken(), HTTP: &http.Client{Timeout: fleetStatsTimeout}}
			var s stats.Snapshot
			err := c.Do("GET", "/v1/stats?histograms=1&"+stripFleet(rawQuery), nil, &s)
			answers <- answer{inst.Instance, s, err}
		}()
	}
	wg.Wait()
	close(answers)
	snaps := []stats.Snapshot{local}
	var missing []string
	for ans := range answers {
		if ans.err != nil {
			missing = append(missing, ans.name)
			continue
		}
		snaps = append(snaps, ans.snap)
	}
	out := stats.Merge(snaps...)
	sort.Strings(missing)
	out.Missing = append(out.Missing, missing...)
	return out, nil
}

// stripFleet drops fleet=... from a query so members answer for themselves.
func stripFleet(rawQuery string) string {
	q, _ := url.ParseQuery(rawQuery)
	q.Del("fleet")
	q.Del("histograms")
	return q.Encode()
}
