package stats

import (
	"math"
	"slices"
)

// Merge combines the snapshots of several instances into the fleet's view: counts and
// histograms add up, quantiles are recomputed from the merged histograms, and the
// comparisons are judged again on the merged windows. Snapshots must have been taken
// with View.Histograms for exact quantiles; without a histogram a quantile merges as
// the largest of the instances' (an upper bound: no quantile of a union exceeds the
// largest of its parts'), and the latency gates are inconclusive.
//
// Top sources merge as mergeable Space-Saving summaries do: a source an instance does
// not list counts that instance's floor into both its count and its error, so every
// merged row still satisfies Count − Error ≤ true ≤ Count. Routes match by name;
// Instances lists the instances merged; Missing is carried over. The inputs are not
// modified.
func Merge(snaps ...Snapshot) Snapshot {
	out := Snapshot{Routes: []RouteSnapshot{}}
	idx := map[string]int{}
	tops := map[string][]topList{}
	for n, s := range snaps {
		if n == 0 {
			out.Self, out.Criteria = s.Self, s.Criteria
		} else if s.Self != out.Self {
			out.Self = ""
		}
		if s.Instance != "" {
			out.Instances = append(out.Instances, s.Instance)
		}
		out.Instances = append(out.Instances, s.Instances...)
		out.Missing = append(out.Missing, s.Missing...)
		if s.At.After(out.At) {
			out.At = s.At
		}
		for _, r := range s.Routes {
			tops[r.Name] = append(tops[r.Name], topList{r.TopSources, r.TopFloor})
			i, ok := idx[r.Name]
			if !ok {
				idx[r.Name] = len(out.Routes)
				out.Routes = append(out.Routes, cloneRoute(r))
				continue
			}
			mergeRoute(&out.Routes[i], r)
		}
	}
	crit := Criteria{Error: out.Criteria.Error.withDefaults(), Latency: out.Criteria.Latency.withDefaults()}
	for i := range out.Routes {
		r := &out.Routes[i]
		rejudge(&r.Compare.MovedVsStayed, crit)
		rejudge(&r.Compare.StayedVsPast, crit)
		r.MovedShare = share(r.Compare.MovedVsStayed.A.Requests, r.Compare.MovedVsStayed.B.Requests)
		r.TopSources, r.TopFloor = mergeTop(tops[r.Name])
	}
	return out
}

func cloneRoute(r RouteSnapshot) RouteSnapshot {
	c := r
	c.Regions = cloneReadings(r.Regions)
	c.Pairs = cloneReadings(r.Pairs)
	for _, k := range allCohorts {
		*c.Cohorts.at(k) = cloneReading(*r.Cohorts.at(k))
	}
	c.Compare.MovedVsStayed.A = cloneReading(r.Compare.MovedVsStayed.A)
	c.Compare.MovedVsStayed.B = cloneReading(r.Compare.MovedVsStayed.B)
	c.Compare.StayedVsPast.A = cloneReading(r.Compare.StayedVsPast.A)
	c.Compare.StayedVsPast.B = cloneReading(r.Compare.StayedVsPast.B)
	if r.History != nil {
		hv := *r.History
		for _, k := range allCohorts {
			if s := *hv.at(k); s != nil {
				cs := s.clone()
				*hv.at(k) = &cs
			}
		}
		c.History = &hv
	}
	return c
}

func cloneReadings(m map[string]Reading) map[string]Reading {
	if m == nil {
		return nil
	}
	c := make(map[string]Reading, len(m))
	for k, v := range m {
		c[k] = cloneReading(v)
	}
	return c
}

func cloneReading(r Reading) Reading {
	if r.Hist != nil {
		h := r.Hist.Clone()
		r.Hist = &h
	}
	return r
}

func mergeRoute(a *RouteSnapshot, b RouteSnapshot) {
	a.Requests += b.Requests
	a.RPS = round6(a.RPS + b.RPS)
	a.Regions = mergeReadings(a.Regions, b.Regions)
	a.Pairs = mergeReadings(a.Pairs, b.Pairs)
	for _, k := range allCohorts {
		mergeReading(a.Cohorts.at(k), *b.Cohorts.at(k))
	}
	mergeReading(&a.Compare.MovedVsStayed.A, b.Compare.MovedVsStayed.A)
	mergeReading(&a.Compare.MovedVsStayed.B, b.Compare.MovedVsStayed.B)
	mergeReading(&a.Compare.StayedVsPast.A, b.Compare.StayedVsPast.A)
	mergeReading(&a.Compare.StayedVsPast.B, b.Compare.StayedVsPast.B)
	if b.History == nil {
		return
	}
	if a.History == nil {
		a.History = &HistoryView{Step: b.History.Step}
	}
	if a.History.Step != b.History.Step {
		return // different steps do not align; keep the first's
	}
	for _, k := range allCohorts {
		bs := *b.History.at(k)
		if bs == nil {
			continue
		}
		as := a.History.at(k)
		if *as == nil {
			cs := bs.clone()
			*as = &cs
			continue
		}
		(*as).merge(*bs)
	}
}

func mergeReadings(a, b map[string]Reading) map[string]Reading {
	if len(b) == 0 {
		return a
	}
	if a == nil {
		a = make(map[string]Reading, len(b))
	}
	for k, v := range b {
		cur, ok := a[k]
		if !ok {
			a[k] = cloneReading(v)
			continue
		}
		mergeReading(&cur, v)
		a[k] = cur
	}
	return a
}

// mergeReading adds b into a; a owns its histogram.
func mergeReading(a *Reading, b Reading) {
	if b.Requests == 0 && b.Hist == nil {
		return
	}
	if a.Requests == 0 && a.Hist == nil {
		*a = cloneReading(b)
		return
	}
	if b.From != 0 && (a.From == 0 || b.From < a.From) {
		a.From = b.From
	}
	a.To = max(a.To, b.To)
	a.Requests += b.Requests
	a.Errors += b.Errors
	a.BytesIn += b.BytesIn
	a.BytesOut += b.BytesOut
	a.ErrorRatio = round6(Counts{Requests: a.Requests, Errors: a.Errors}.ErrorRatio())
	if a.Hist != nil && b.Hist != nil {
		a.Hist.Merge(*b.Hist)
		a.setQuantiles(a.Hist)
		return
	}
	a.Hist = nil
	a.P50, a.P95, a.P99 = max(a.P50, b.P50), max(a.P95, b.P95), max(a.P99, b.P99)
}

// rejudge recomputes a comparison's gates and deltas from its merged readings.
func rejudge(c *Comparison, crit Criteria) {
	a, b := c.A.Tally(), c.B.Tally()
	lat := LatencyGate(crit.Latency, a, b)
	if c.A.Hist == nil || c.B.Hist == nil {
		lat = Gate{Name: lat.Name, Unit: "ms", Outcome: Inconclusive, Moved: c.A.P99, Stayed: c.B.P99,
			Samples: Samples{Moved: c.A.Requests, Stayed: c.B.Requests},
			Reason:  "an instance sent no histogram"}
	}
	c.Gates = []Gate{ErrorGate(crit.Error, a.Counts, b.Counts), lat}
	c.ErrorDeltaPoints = round6((a.ErrorRatio() - b.ErrorRatio()) * 100)
	c.P99Delta = 0
	if c.A.P99 > 0 && c.B.P99 > 0 {
		c.P99Delta = round6(c.A.P99/c.B.P99 - 1)
	}
	c.Verdict = Pass
	for _, g := range c.Gates {
		c.Verdict = worse(c.Verdict, g.Outcome)
	}
}

type topList struct {
	rows  []Source
	floor uint64
}

// mergeTop merges per-instance top lists and cuts the result to the longest input.
func mergeTop(lists []topList) ([]Source, uint64) {
	k := 0
	keys := map[string]bool{}
	var floors uint64
	for _, l := range lists {
		k = max(k, len(l.rows))
		floors += l.floor
		for _, r := range l.rows {
			keys[r.Source] = true
		}
	}
	byKey := make([]map[string]Source, len(lists))
	for i, l := range lists {
		byKey[i] = make(map[string]Source, len(l.rows))
		for _, r := range l.rows {
			byKey[i][r.Source] = r
		}
	}
	out := make([]Source, 0, len(keys))
	for key := range keys {
		m := Source{Source: key}
		for i, l := range lists {
			r, ok := byKey[i][key]
			if !ok {
				m.Count += l.floor
				m.Error += l.floor
				continue
			}
			m.Count += r.Count
			m.Error += r.Error
		}
		out = append(out, m)
	}
	sortSources(out)
	floor := floors
	if len(out) > k {
		// A source cut here may reach the largest count cut.
		floor = max(floor, out[k].Count)
		out = out[:k]
	}
	return out, floor
}

func (s Series) clone() Series {
	return Series{
		Step: s.Step, T: slices.Clone(s.T), Req: slices.Clone(s.Req), Err: slices.Clone(s.Err),
		P99: slices.Clone(s.P99), BytesIn: slices.Clone(s.BytesIn), BytesOut: slices.Clone(s.BytesOut),
	}
}

// merge adds o's points into s where the times match; o's times s lacks are dropped,
// since both end at their snapshot's second and a fleet's snapshots are taken together.
// p99 merges as the larger (an upper bound of the fleet's p99).
func (s *Series) merge(o Series) {
	j := 0
	for i, t := range s.T {
		for j < len(o.T) && o.T[j] < t {
			j++
		}
		if j >= len(o.T) || o.T[j] != t {
			continue
		}
		s.Req[i] += at(o.Req, j)
		s.Err[i] += at(o.Err, j)
		s.BytesIn[i] += at(o.BytesIn, j)
		s.BytesOut[i] += at(o.BytesOut, j)
		if q := atF(o.P99, j); !math.IsNaN(q) && (math.IsNaN(s.P99[i]) || q > s.P99[i]) {
			s.P99[i] = q
		}
	}
}

func at(s []uint64, i int) uint64 {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func atF(s []float64, i int) float64 {
	if i < len(s) {
		return s[i]
	}
	return math.NaN()
}
