package stats

import (
	"encoding/json"
	"time"
)

// Reading is a tally as /v1/stats shows it: counts, error ratio, quantiles in ms and,
// for the fleet view, the histogram they came from. From and To (unix seconds) bound a
// windowed reading and are absent from cumulative ones.
type Reading struct {
	From       int64      `json:"from,omitempty"`
	To         int64      `json:"to,omitempty"`
	Requests   uint64     `json:"requests"`
	Errors     uint64     `json:"errors"`
	ErrorRatio float64    `json:"error_ratio"`
	P50        float64    `json:"p50_ms"`
	P95        float64    `json:"p95_ms"`
	P99        float64    `json:"p99_ms"`
	BytesIn    uint64     `json:"bytes_in"`
	BytesOut   uint64     `json:"bytes_out"`
	Hist       *Histogram `json:"hist,omitempty"`
}

func readingOf(t Tally, keepHist bool) Reading {
	rd := Reading{
		Requests: t.Requests, Errors: t.Errors, ErrorRatio: round6(t.ErrorRatio()),
		BytesIn: t.BytesIn, BytesOut: t.BytesOut,
	}
	if !t.From.IsZero() {
		rd.From, rd.To = t.From.Unix(), t.To.Unix()
	}
	rd.setQuantiles(&t.Hist)
	if keepHist {
		h := t.Hist.Clone()
		rd.Hist = &h
	}
	return rd
}

func (rd *Reading) setQuantiles(h *Histogram) {
	if h.Count() == 0 {
		rd.P50, rd.P95, rd.P99 = 0, 0, 0
		return
	}
	rd.P50, rd.P95, rd.P99 = durMs(h.Quantile(0.50)), durMs(h.Quantile(0.95)), durMs(h.Quantile(0.99))
}

// Tally turns a reading back into a tally (for gates over merged readings). Without a
// histogram, the tally has no latencies.
func (rd Reading) Tally() Tally {
	t := Tally{Counts: Counts{Requests: rd.Requests, Errors: rd.Errors, BytesIn: rd.BytesIn, BytesOut: rd.BytesOut}}
	if rd.From != 0 || rd.To != 0 {
		t.From, t.To = time.Unix(rd.From, 0), time.Unix(rd.To, 0)
	}
	if rd.Hist != nil {
		t.Hist = rd.Hist.Clone()
	}
	return t
}

// CohortReadings are a route's cumulative readings per cohort.
type CohortReadings struct {
	Moved    Reading `json:"moved"`
	Stayed   Reading `json:"stayed"`
	Failover Reading `json:"failover"`
	Fallback Reading `json:"fallback"`
}

func (c *CohortReadings) at(k Cohort) *Reading {
	return [...]*Reading{&c.Moved, &c.Stayed, &c.Failover, &c.Fallback}[k]
}

// Comparisons are the dashboard's two comparisons of a route.
type Comparisons struct {
	MovedVsStayed Comparison `json:"moved_vs_stayed"`
	StayedVsPast  Comparison `json:"stayed_vs_past"`
}

// HistoryView holds a route's per-cohort series, all at one step.
type HistoryView struct {
	Step     int     `json:"step_s"`
	Moved    *Series `json:"moved,omitempty"`
	Stayed   *Series `json:"stayed,omitempty"`
	Failover *Series `json:"failover,omitempty"`
	Fallback *Series `json:"fallback,omitempty"`
}

func (v *HistoryView) at(k Cohort) **Series {
	return [...]**Series{&v.Moved, &v.Stayed, &v.Failover, &v.Fallback}[k]
}

// RouteSnapshot is one route in /v1/stats. Regions are keyed by upstream region, summed
// over cohorts; Pairs are keyed "self>upstream" for bytes and latency per region pair.
type RouteSnapshot struct {
	Name     string  `json:"name"`
	From     string  `json:"from"`
	To       string  `json:"to"`
	Requests uint64  `json:"requests"`
	RPS      float64 `json:"rps"`
	// MovedShare is the observed share of moved among moved and stayed requests over
	// the comparison span (0..1), to set beside the configured split.
	MovedShare float64            `json:"moved_share"`
	Regions    map[string]Reading `json:"regions"`
	Pairs      map[string]Reading `json:"pairs,omitempty"`
	Cohorts    CohortReadings     `json:"cohorts"`
	Compare    Comparisons        `json:"compare"`
	TopSources []Source           `json:"top_sources"`
	// TopFloor is the smallest count in a full top-K table (0 if not full): a source
	// absent from TopSources was seen at most TopFloor times.
	TopFloor uint64       `json:"top_floor"`
	History  *HistoryView `json:"history,omitempty"`
}

// Snapshot is the body of /v1/stats: one instance's view, or with Instances set, the
// merge of several (Merge). Missing is for the caller to fill with the instances it
// could not reach.
type Snapshot struct {
	Instance  string          `json:"instance,omitempty"`
	Instances []string        `json:"instances,omitempty"`
	Missing   []string        `json:"missing,omitempty"`
	Self      string          `json:"self_region,omitempty"`
	At        time.Time       `json:"at"`
	Criteria  Criteria        `json:"criteria"`
	Routes    []RouteSnapshot `json:"routes"`
}

// MarshalJSON writes a fleet view (Instances set) with missing[] always present,
// empty when every instance answered, as the contract names it; one instance's view
// has neither.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	type plain Snapshot // without this method
	if s.Instances == nil {
		return json.Marshal(plain(s))
	}
	missing := s.Missing
	if missing == nil {
		missing = []string{}
	}
	// The shallower field wins: this "missing" replaces the embedded one.
	return json.Marshal(struct {
		plain
		Missing []string `json:"missing"`
	}{plain(s), missing})
}

// View says what a Snapshot holds. Zero fields take the defaults noted.
type View struct {
	// Compare is the span of both comparisons, ending with the last complete
	// second. Default 1 min.
	Compare time.Duration
	// Past is the span just before Compare that StayedVsPast compares with. Default
	// 9 min, which with Compare fills the default 10 min ring.
	Past time.Duration
	// History is how far back the series go; negative for none. Default 5 min.
	History time.Duration
	// HistoryStep is the series' step. Default 1 s; multiples of 10 s reach 24 h.
	HistoryStep time.Duration
	// Top is how many top sources to list. Default all the table holds.
	Top int
	// Histograms keeps every reading's histogram, for a fleet view to Merge.
	Histograms bool
	// Criteria for the comparisons' gates.
	Criteria Criteria
}

func (v View) withDefaults() View {
	if v.Compare <= 0 {
		v.Compare = time.Minute
	}
	if v.Past <= 0 {
		v.Past = 9 * time.Minute
	}
	if v.History == 0 {
		v.History = 5 * time.Minute
	}
	if v.HistoryStep <= 0 {
		v.HistoryStep = time.Second
	}
	v.Criteria.Error = v.Criteria.Error.withDefaults()
	v.Criteria.Latency = v.Criteria.Latency.withDefaults()
	return v
}

// Snapshot reads every route of s. It takes no lock the request path takes, and
// costs roughly one pass over each route's 1 s ring.
func (s *Set) Snapshot(v View) Snapshot {
	v = v.withDefaults()
	now := s.opt.Now()
	snap := Snapshot{
		Instance: s.opt.Instance, Self: s.cfg.Self, At: now.UTC().Truncate(time.Second),
		Criteria: v.Criteria, Routes: make([]RouteSnapshot, 0, len(s.routes)),
	}
	for i, r := range s.routes {
		r.rollUp(now.Unix())
		snap.Routes = append(snap.Routes, r.snapshot(s.cfg.Routes[i], v, now.Unix()))
	}
	return snap
}

func (r *Route) snapshot(ri RouteInfo, v View, now int64) RouteSnapshot {
	rs := RouteSnapshot{Name: ri.Name, From: ri.From, To: ri.To, Regions: make(map[string]Reading, len(r.regions))}
	if r.id.self != "" {
		rs.Pairs = make(map[string]Reading, len(r.regions))
	}
	for reg, name := range r.regions {
		t := r.cellTotals(numCohorts, reg)
		rd := readingOf(t, v.Histograms)
		rs.Regions[name] = rd
		if rs.Pairs != nil {
			rs.Pairs[r.id.self+">"+name] = rd
		}
		rs.Requests += t.Requests
	}
	for _, c := range allCohorts {
		*rs.Cohorts.at(c) = readingOf(r.cellTotals(c, -1), v.Histograms)
	}

	cw, past := int64(v.Compare/time.Second), int64(v.Past/time.Second)
	moved := r.window(Moved, now-cw, now, now)
	stayed := r.window(Stayed, now-cw, now, now)
	before := r.window(Stayed, now-cw-past, now-cw, now)
	rs.Compare.MovedVsStayed = Compare(MovedVsStayed, v.Criteria, moved, stayed, v.Histograms)
	rs.Compare.StayedVsPast = Compare(StayedVsPast, v.Criteria, stayed, before, v.Histograms)
	var total uint64
	for _, c := range allCohorts {
		if c == Moved || c == Stayed {
			continue
		}
		total += r.window(c, now-cw, now, now).Requests
	}
	rs.MovedShare = share(moved.Requests, stayed.Requests)
	if span := moved.To.Sub(moved.From).Seconds(); span > 0 {
		rs.RPS = round6(float64(total+moved.Requests+stayed.Requests) / span)
	}

	rs.TopSources, rs.TopFloor = r.top.Top(v.Top)
	if v.History > 0 {
		hv := &HistoryView{Step: max(int(v.HistoryStep/time.Second), 1)}
		for _, c := range allCohorts {
			se := r.historyOf(c, v.History, v.HistoryStep, now)
			if c.compared() || se.total() > 0 {
				*hv.at(c) = &se
			}
		}
		rs.History = hv
	}
	return rs
}

func (s *Series) total() (n uint64) {
	for _, x := range s.Req {
		n += x
	}
	return n
}

func share(moved, stayed uint64) float64 {
	if moved+stayed == 0 {
		return 0
	}
	return round6(float64(moved) / float64(moved+stayed))
}
