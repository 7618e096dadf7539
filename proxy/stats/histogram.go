package stats

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"time"
)

// Latencies are counted in whole microseconds on a fixed log-linear grid, the same on
// every instance and in every version, so two histograms merge by adding counts.
//
// The grid: values 0..31 µs have a bucket each; above, every power of two is cut into
// 16 equal sub-buckets (as HdrHistogram does with 2 significant bits of 16). A bucket is
// at most 1/16 as wide as its lower bound, so the midpoint a quantile reports is within
// 3.2 % of any value in the bucket from 32 µs up, and within 5 % from 10 µs up.
// Values at or above 2^26 µs (67.1 s) count in the last bucket.
const (
	subBuckets   = 16
	linearLimit  = 2 * subBuckets // values below it have a bucket of their own
	groups       = 21             // powers of two above linearLimit, up to 2^26 µs
	FineBuckets  = linearLimit + groups*subBuckets
	maxMicros    = uint64(linearLimit) << groups // first value past the grid
	maxShift     = 2
	coarseShift  = 2 // the per-second history keeps 4 sub-buckets per power of two
	coarseBucket = FineBuckets >> coarseShift
)

// fineIndex returns the bucket of a latency of us microseconds.
func fineIndex(us uint64) int {
	if us < linearLimit {
		return int(us)
	}
	if us >= maxMicros {
		return FineBuckets - 1
	}
	g := bits.Len64(us) - 5 // us is in [16·2^g, 32·2^g)
	return linearLimit + (g-1)*subBuckets + int(us>>uint(g)) - subBuckets
}

// fineLower returns the smallest value, in µs, of fine bucket i; fineLower(FineBuckets)
// is the end of the grid.
func fineLower(i int) uint64 {
	if i < linearLimit {
		return uint64(i)
	}
	g := (i-linearLimit)/subBuckets + 1
	sub := (i-linearLimit)%subBuckets + subBuckets
	return uint64(sub) << uint(g)
}

// microsOf converts a latency to the grid's unit; negative latencies count as 0.
func microsOf(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64(d / time.Microsecond)
}

// Histogram is a latency histogram on the package's fixed grid, at a precision given by
// its shift: shift 0 keeps all FineBuckets buckets (quantiles within 3.2 % from 32 µs
// up), shift 1 merges pairs (6.3 %), shift 2 merges fours (12.5 %). Merging histograms of different
// shifts gives the coarser one. The zero value is an empty histogram at shift 0.
// A Histogram is a value owned by its holder; it is not safe for concurrent mutation.
type Histogram struct {
	shift  uint8
	counts []uint64 // nil while empty
}

// NewHistogram returns an empty histogram at the given shift (0..2).
func NewHistogram(shift int) Histogram {
	if shift < 0 || shift > maxShift {
		panic(fmt.Sprintf("stats: histogram shift %d out of 0..%d", shift, maxShift))
	}
	return Histogram{shift: uint8(shift)}
}

// Shift reports the histogram's precision level (0 finest).
func (h Histogram) Shift() int { return int(h.shift) }

func (h Histogram) buckets() int { return FineBuckets >> h.shift }

func (h *Histogram) grow() {
	if h.counts == nil {
		h.counts = make([]uint64, h.buckets())
	}
}

// Observe counts one latency. It allocates the counts on first use; the request path
// does not use Histogram but atomic arrays with the same grid.
func (h *Histogram) Observe(d time.Duration) { h.addFine(fineIndex(microsOf(d)), 1) }

func (h *Histogram) addFine(fine int, n uint64) {
	if n == 0 {
		return
	}
	h.grow()
	h.counts[fine>>h.shift] += n
}

// Count returns the number of latencies counted.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// Merge adds o's counts into h. If o is coarser, h becomes as coarse first.
func (h *Histogram) Merge(o Histogram) {
	if o.shift > h.shift {
		h.coarsen(int(o.shift))
	}
	for i, c := range o.counts {
		if c == 0 {
			continue
		}
		h.grow()
		// o's bucket i covers fine buckets [i<<o.shift, (i+1)<<o.shift), all inside
		// one bucket of h since h is at least as coarse.
		h.counts[(i<<o.shift)>>h.shift] += c
	}
}

// Sub removes o's counts from h, for the histogram of what happened between two
// cumulative snapshots (o taken before h). Counts o has that h lacks are clamped at 0.
func (h *Histogram) Sub(o Histogram) {
	if o.shift > h.shift {
		h.coarsen(int(o.shift))
	}
	for i, c := range o.counts {
		if c == 0 || h.counts == nil {
			continue
		}
		j := (i << o.shift) >> h.shift
		h.counts[j] -= min(c, h.counts[j])
	}
}

// coarsen lowers h's precision to shift s ≥ h.shift.
func (h *Histogram) coarsen(s int) {
	if s <= int(h.shift) {
		return
	}
	old, oldShift := h.counts, h.shift
	h.shift, h.counts = uint8(s), nil
	for i, c := range old {
		if c != 0 {
			h.grow()
			h.counts[(i<<oldShift)>>h.shift] += c
		}
	}
}

// Clone returns a copy that shares nothing with h.
func (h Histogram) Clone() Histogram {
	c := Histogram{shift: h.shift}
	if h.counts != nil {
		c.counts = append([]uint64(nil), h.counts...)
	}
	return c
}

// bounds returns the range [lo, hi) in µs of bucket i at h's shift.
func (h Histogram) bounds(i int) (lo, hi uint64) {
	return fineLower(i << h.shift), fineLower((i + 1) << h.shift)
}

// bucketAtRank returns the bucket holding the rank-th smallest latency (1-based,
// clamped to 1..Count), or -1 when h is empty.
func (h Histogram) bucketAtRank(rank uint64) int {
	n := h.Count()
	if n == 0 {
		return -1
	}
	rank = max(1, min(rank, n))
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			return i
		}
	}
	return len(h.counts) - 1
}

// rankOf returns the rank of quantile p (0..1) among n values: ⌈p·n⌉, at least 1.
func rankOf(p float64, n uint64) uint64 {
	r := p * float64(n)
	k := uint64(r)
	if float64(k) < r {
		k++
	}
	return max(k, 1)
}

// Quantile returns the latency at quantile p (0..1, e.g. 0.99): the midpoint of the
// bucket holding the ⌈p·n⌉-th smallest value. It returns 0 when h is empty.
func (h Histogram) Quantile(p float64) time.Duration {
	i := h.bucketAtRank(rankOf(p, h.Count()))
	if i < 0 {
		return 0
	}
	lo, hi := h.bounds(i)
	return time.Duration(lo+hi) * time.Microsecond / 2
}

// histJSON is the wire form: sparse [bucket, count] pairs, as a fleet view fetches
// other instances' histograms and most buckets are empty.
type histJSON struct {
	Shift   uint8       `json:"shift"`
	Buckets [][2]uint64 `json:"b"`
}

// MarshalJSON encodes h as {"shift":s,"b":[[bucket,count],...]}.
func (h Histogram) MarshalJSON() ([]byte, error) {
	w := histJSON{Shift: h.shift, Buckets: [][2]uint64{}}
	for i, c := range h.counts {
		if c != 0 {
			w.Buckets = append(w.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(w)
}

// ErrHistogram reports a histogram in JSON that does not fit the grid.
var ErrHistogram = errors.New("stats: histogram does not fit the grid")

// UnmarshalJSON decodes the form MarshalJSON writes. It refuses shifts and bucket
// numbers outside the grid, since the data may come from another instance.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var w histJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if w.Shift > maxShift {
		return fmt.Errorf("%w: shift %d", ErrHistogram, w.Shift)
	}
	out := Histogram{shift: w.Shift}
	for _, p := range w.Buckets {
		if p[0] >= uint64(out.buckets()) {
			return fmt.Errorf("%w: bucket %d at shift %d", ErrHistogram, p[0], w.Shift)
		}
		if p[1] != 0 {
			out.grow()
			out.counts[p[0]] += p[1]
		}
	}
	*h = out
	return nil
}
