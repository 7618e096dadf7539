package stats

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Cohort says who a finished request was and who answered it.
type Cohort uint8

const (
	// Moved: the user's bucket is below the split, and the route's To answered.
	Moved Cohort = iota
	// Stayed: the user's bucket is at or above the split, and the route's From answered.
	Stayed
	// Failover: the other region answered after the chosen one failed.
	Failover
	// Fallback: a fallback (cache, static body, script) answered.
	Fallback
	numCohorts
)

// allCohorts lists every cohort, in index order.
var allCohorts = [numCohorts]Cohort{Moved, Stayed, Failover, Fallback}

var cohortNames = [numCohorts]string{"moved", "stayed", "failover", "fallback"}

// String returns the cohort's JSON name: moved, stayed, failover or fallback.
func (c Cohort) String() string {
	if c < numCohorts {
		return cohortNames[c]
	}
	return "unknown"
}

// compared reports whether the 1 s ring keeps a latency histogram for c: moved and
// stayed are compared with each other; the others are rare and only counted.
func (c Cohort) compared() bool { return c <= Stayed }

// cell is the cumulative record of one (cohort, upstream region).
type cell struct {
	requests, errors  atomic.Uint64
	bytesIn, bytesOut atomic.Uint64
	hist              [FineBuckets]atomic.Uint64
}

// Route records the requests of one route. Record, SampleSource, AddSource and
// ObserveSource are the request path: safe for concurrent use, none allocates, and
// Record takes no lock. A nil *Route records nothing.
type Route struct {
	id      identity
	now     func() time.Time
	regions []string
	cells   []cell // [cohort*len(regions) + region]
	sec     ring1
	top     *TopK
	sample  uint32

	roll rollState // the 10 s ring, behind its own lock; control plane only
}

func newRoute(o Options, id identity, regions []string) *Route {
	return &Route{
		id:      id,
		now:     o.Now,
		regions: append([]string(nil), regions...),
		cells:   make([]cell, int(numCohorts)*len(regions)),
		sec:     newRing1(o.Seconds),
		top:     NewTopK(o.TopK),
		sample:  uint32(o.TopSample),
		roll:    rollState{slots: o.TenSeconds},
	}
}

// Name returns the route's name.
func (r *Route) Name() string { return r.id.info.Name }

// Record counts one finished request of cohort c answered by region (an index into the
// Config's Regions; for Fallback, the region that failed, or any valid index). errored
// is the caller's verdict: 5xx, timeout or connection error. bytesIn is what the client
// sent, bytesOut what it received. Out-of-range cohorts or regions are ignored.
func (r *Route) Record(c Cohort, region int, errored bool, latency time.Duration, bytesIn, bytesOut int64) {
	if r == nil || c >= numCohorts || uint(region) >= uint(len(r.regions)) {
		return
	}
	fine := fineIndex(microsOf(latency))
	in, out := uint64(max(bytesIn, 0)), uint64(max(bytesOut, 0))

	cl := &r.cells[int(c)*len(r.regions)+region]
	cl.requests.Add(1)
	var e uint64
	if errored {
		cl.errors.Add(1)
		e = 1
	}
	if in != 0 {
		cl.bytesIn.Add(in)
	}
	if out != 0 {
		cl.bytesOut.Add(out)
	}
	cl.hist[fine].Add(1)

	s := r.sec.slot(r.now().Unix())
	if s == nil {
		return // a stale clock read, or a slot cleared for too long: the totals have it
	}
	sc := &s.c[c]
	// Requests and errors of one second fit 32 bits each: one atomic add for both.
	sc.reqErr.Add(1 | e<<32)
	if in != 0 {
		sc.bytesIn.Add(in)
	}
	if out != 0 {
		sc.bytesOut.Add(out)
	}
	if c.compared() {
		s.h[c][fine>>coarseShift].Add(1)
	}
}

// SampleSource reports whether this request's source should go into the route's
// top-K: true for one call in Options.TopSample, at random. The proxy calls it for
// requests From still answered after the route's split rose above 0 %, and builds the
// key (AppendClientPrefix, UAFamily, ...) only when it says yes. It does not allocate.
func (r *Route) SampleSource() bool {
	return r != nil && (r.sample <= 1 || rand.Uint32N(r.sample) == 0)
}

// AddSource counts key (a client prefix, key source, user agent family or caller
// name; at most KeyLen bytes are kept) in the route's top-K, weighted by
// Options.TopSample since SampleSource let through one call in that many. It takes the
// top-K's lock; key is not retained. It does not allocate.
func (r *Route) AddSource(key []byte) {
	if r != nil {
		r.top.Add(key, uint64(r.sample))
	}
}

// ObserveSource is SampleSource then AddSource, for a key already at hand.
func (r *Route) ObserveSource(key []byte) {
	if r.SampleSource() {
		r.AddSource(key)
	}
}

// TopSources returns the route's top-K table (for Reset, or to read it directly).
func (r *Route) TopSources() *TopK { return r.top }

// cellTotals sums the cumulative cells selected by cohort (all when c == numCohorts)
// and region (all when region < 0) into a Tally with a fine histogram.
func (r *Route) cellTotals(c Cohort, region int) Tally {
	t := Tally{Hist: NewHistogram(0)}
	for ci := range numCohorts {
		if c != numCohorts && ci != c {
			continue
		}
		for ri := range r.regions {
			if region >= 0 && ri != region {
				continue
			}
			cl := &r.cells[int(ci)*len(r.regions)+ri]
			t.Requests += cl.requests.Load()
			t.Errors += cl.errors.Load()
			t.BytesIn += cl.bytesIn.Load()
			t.BytesOut += cl.bytesOut.Load()
			for i := range cl.hist {
				t.Hist.addFine(i, cl.hist[i].Load())
			}
		}
	}
	return t
}

// rollState is the route's 10 s ring and how far it has been filled.
type rollState struct {
	mu    sync.Mutex
	slots int
	ring  []slot10 // allocated on the first block with traffic
	done  int64    // the last 10 s block number rolled up
}
