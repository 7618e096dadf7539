package stats

import (
	"math"
	"time"
)

// Counts are the counters of a cohort (or region) over some span.
type Counts struct {
	Requests, Errors  uint64
	BytesIn, BytesOut uint64
}

func (c *Counts) add(o Counts) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	c.BytesIn += o.BytesIn
	c.BytesOut += o.BytesOut
}

func (c *Counts) sub(o Counts) {
	c.Requests -= min(o.Requests, c.Requests)
	c.Errors -= min(o.Errors, c.Errors)
	c.BytesIn -= min(o.BytesIn, c.BytesIn)
	c.BytesOut -= min(o.BytesOut, c.BytesOut)
}

// ErrorRatio returns Errors/Requests, 0 when there were no requests.
func (c Counts) ErrorRatio() float64 {
	if c.Requests == 0 {
		return 0
	}
	return float64(c.Errors) / float64(c.Requests)
}

// Tally is what a cohort did over a span: its counts and latency histogram. From and
// To bound the span ([From, To), seconds); both are zero for a cumulative tally. A
// Tally is a value the caller owns.
type Tally struct {
	From, To time.Time
	Counts
	Hist Histogram
}

// Merge adds o into t (another instance's tally of the same span, or another cohort).
func (t *Tally) Merge(o Tally) {
	t.Counts.add(o.Counts)
	t.Hist.Merge(o.Hist)
}

// Since returns what happened between older and t, two cumulative tallies of the same
// recorder: the way a ramp plan measures a step of any length at full histogram
// precision (take Totals when the step starts; Since on each check).
func (t Tally) Since(older Tally) Tally {
	d := Tally{Counts: t.Counts, Hist: t.Hist.Clone()}
	d.Counts.sub(older.Counts)
	d.Hist.Sub(older.Hist)
	return d
}

// Totals returns route's cumulative tally of cohort c since its recorder was created
// (it survives reloads that keep the route's identity), at full histogram precision.
func (s *Set) Totals(route int, c Cohort) Tally {
	r := s.Route(route)
	if r == nil || c >= numCohorts {
		return Tally{}
	}
	return r.cellTotals(c, -1)
}

// Window returns route's tally of cohort c over the seconds [from, to), clipped to the
// 1 s ring (the last Options.Seconds seconds, the current one included); From and To
// of the result are the clipped bounds. Latencies are kept at shift 2 (quantiles
// within 12.5 %) and only for Moved and Stayed. For longer spans use History's 10 s
// blocks, or Totals and Since.
func (s *Set) Window(route int, c Cohort, from, to time.Time) Tally {
	r := s.Route(route)
	if r == nil || c >= numCohorts {
		return Tally{}
	}
	return r.window(c, from.Unix(), to.Unix(), r.now().Unix())
}

func (r *Route) window(c Cohort, from, to, now int64) Tally {
	from = max(from, now-r.sec.keep+1)
	to = min(to, now+1)
	t := Tally{Hist: NewHistogram(coarseShift)}
	if to < from {
		to = from
	}
	t.From, t.To = time.Unix(from, 0), time.Unix(to, 0)
	for sec := from; sec < to; sec++ {
		if cnt, ok := r.sec.read(sec, c, &t.Hist); ok {
			t.Counts.add(cnt)
		}
	}
	return t
}

// Series is a cohort's history at a fixed step: for each step starting at T[i] (unix
// seconds), requests, errors, p99 latency in ms (NaN when unknown) and bytes. It
// encodes as uPlot's data layout, [[t...],[req...],[err...],[p99...],[in...],[out...]],
// with null for NaN.
type Series struct {
	Step              int // seconds
	T                 []int64
	Req, Err          []uint64
	P99               []float64
	BytesIn, BytesOut []uint64
}

// History returns route's series for cohort c over the last span, ending with the
// last complete second. A step of 1 s reads the 1 s ring (at most Options.Seconds
// back); a step that is a multiple of 10 s reads the 24 h ring, whose p99 per step is
// the highest p99 of its 10 s blocks (an upper bound). Other steps up to the 1 s ring's
// length sum whole seconds. p99 is NaN for Failover and Fallback, which keep no
// per-second latencies.
func (s *Set) History(route int, c Cohort, span, step time.Duration) Series {
	r := s.Route(route)
	if r == nil || c >= numCohorts {
		return Series{}
	}
	return r.historyOf(c, span, step, r.now().Unix())
}

func (r *Route) historyOf(c Cohort, span, step time.Duration, now int64) Series {
	st := max(int64(step/time.Second), 1)
	n := max(int64(span/time.Second)/st, 1)
	if st%10 == 0 && n*st > r.sec.keep-1 {
		r.rollUp(now)
		return r.history10(c, now, st, n)
	}
	return r.history1(c, now, st, n)
}

func (r *Route) history1(c Cohort, now, st, n int64) Series {
	n = min(n, (r.sec.keep-1)/st)
	end := now // exclusive: the current second is incomplete
	start := end - n*st
	out := newSeries(int(st), int(n))
	for i := range n {
		from := start + i*st
		t := r.window(c, from, from+st, now)
		out.put(int(i), from, t.Counts, p99ms(t))
	}
	return out
}

func (r *Route) history10(c Cohort, now, st, n int64) Series {
	per := st / 10
	endBlock := (now-2)/10 - 1 // the last rolled block
	startBlock := endBlock - n*per + 1
	out := newSeries(int(st), int(n))
	rs := &r.roll
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for i := range n {
		var cnt Counts
		p99 := math.NaN()
		for b := startBlock + i*per; b < startBlock+(i+1)*per; b++ {
			s, ok := rs.block10(b)
			if !ok {
				continue
			}
			sc := s.c[c]
			cnt.add(Counts{Requests: uint64(sc.req), Errors: uint64(sc.err), BytesIn: uint64(sc.in), BytesOut: uint64(sc.out)})
			if c.compared() {
				if q := coarseMidpoint(s.q[c][2]); !math.IsNaN(q) && (math.IsNaN(p99) || q > p99) {
					p99 = q
				}
			}
		}
		out.put(int(i), (startBlock+i*per)*10, cnt, p99)
	}
	return out
}

func newSeries(step, n int) Series {
	return Series{
		Step: step, T: make([]int64, n), Req: make([]uint64, n), Err: make([]uint64, n),
		P99: make([]float64, n), BytesIn: make([]uint64, n), BytesOut: make([]uint64, n),
	}
}

func (s *Series) put(i int, t int64, c Counts, p99 float64) {
	s.T[i], s.Req[i], s.Err[i], s.P99[i] = t, c.Requests, c.Errors, p99
	s.BytesIn[i], s.BytesOut[i] = c.BytesIn, c.BytesOut
}

// p99ms returns t's p99 in ms, NaN when t has no latencies.
func p99ms(t Tally) float64 {
	if t.Hist.Count() == 0 {
		return math.NaN()
	}
	return durMs(t.Hist.Quantile(0.99))
}

func durMs(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
