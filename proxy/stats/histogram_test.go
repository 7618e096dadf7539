package stats

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestGridIsContiguousAndFine(t *testing.T) {
	if got := fineLower(FineBuckets); got != maxMicros {
		t.Fatalf("grid ends at %d µs, want %d", got, maxMicros)
	}
	for i := range FineBuckets {
		lo, hi := fineLower(i), fineLower(i+1)
		if hi <= lo {
			t.Fatalf("bucket %d: [%d, %d) is empty", i, lo, hi)
		}
		if got := fineIndex(lo); got != i {
			t.Fatalf("fineIndex(%d) = %d, want %d", lo, got, i)
		}
		if got := fineIndex(hi - 1); got != i {
			t.Fatalf("fineIndex(%d) = %d, want %d", hi-1, got, i)
		}
		if lo >= linearLimit && float64(hi-lo)/float64(lo) > 1.0/subBuckets {
			t.Fatalf("bucket %d: [%d, %d) wider than 1/16 of its start", i, lo, hi)
		}
	}
	for _, c := range []struct {
		us   uint64
		want int
	}{
		{0, 0}, {31, 31}, {32, 32}, {33, 32}, {34, 33}, {63, 47}, {64, 48},
		{maxMicros - 1, FineBuckets - 1}, {maxMicros, FineBuckets - 1}, {math.MaxUint64, FineBuckets - 1},
	} {
		if got := fineIndex(c.us); got != c.want {
			t.Errorf("fineIndex(%d) = %d, want %d", c.us, got, c.want)
		}
	}
}

// exactQuantile is the ⌈p·n⌉-th smallest value, the rank Quantile uses.
func exactQuantile(sorted []time.Duration, p float64) time.Duration {
	return sorted[rankOf(p, uint64(len(sorted)))-1]
}

func TestQuantileAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sets := map[string]func() time.Duration{
		// log-uniform from 10 µs to 60 s: every power of two gets its share.
		"log-uniform": func() time.Duration {
			return time.Duration(math.Exp(math.Log(10e3) + rng.Float64()*(math.Log(60e9)-math.Log(10e3))))
		},
		// a typical service: median 20 ms, long tail.
		"lognormal": func() time.Duration {
			return time.Duration(math.Exp(math.Log(20e6) + rng.NormFloat64()))
		},
	}
	for name, gen := range sets {
		vals := make([]time.Duration, 200_000)
		hs := [maxShift + 1]Histogram{NewHistogram(0), NewHistogram(1), NewHistogram(2)}
		for i := range vals {
			vals[i] = gen()
			for s := range hs {
				hs[s].Observe(vals[i])
			}
		}
		slices.Sort(vals)
		bound := [maxShift + 1]float64{0.05, 0.0625, 0.125}
		for s := range hs {
			for _, p := range []float64{0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
				want := exactQuantile(vals, p)
				if s > 0 && want < linearLimit*time.Microsecond {
					continue // coarse buckets below 32 µs are 2 or 4 µs wide
				}
				got := hs[s].Quantile(p)
				rel := math.Abs(float64(got-want)) / float64(want)
				if rel > bound[s] {
					t.Errorf("%s shift %d p%g: got %v, exact %v, error %.2f%% > %.1f%%", name, s, p*100, got, want, rel*100, bound[s]*100)
				}
			}
		}
	}
}

func TestQuantileSmallCases(t *testing.T) {
	var h Histogram
	if got := h.Quantile(0.99); got != 0 {
		t.Fatalf("empty histogram p99 = %v, want 0", got)
	}
	h.Observe(-time.Second) // negative counts as 0
	h.Observe(10 * time.Millisecond)
	if got := h.Quantile(0.5); got != 500*time.Nanosecond {
		t.Fatalf("p50 of {0, 10ms} = %v, want the midpoint of [0, 1µs)", got)
	}
	if got := h.Quantile(1); got < 9700*time.Microsecond || got > 10300*time.Microsecond {
		t.Fatalf("p100 of {0, 10ms} = %v, want about 10ms", got)
	}
	h.Observe(time.Hour) // beyond the grid: last bucket
	if got := h.Quantile(1); got < 60*time.Second || got > 70*time.Second {
		t.Fatalf("an hour reports %v, want the last bucket, about 65 s", got)
	}
}

func randomHist(rng *rand.Rand, shift, n int) Histogram {
	h := NewHistogram(shift)
	for range n {
		h.Observe(time.Duration(rng.ExpFloat64() * 30e6))
	}
	return h
}

func equalHist(a, b Histogram) bool {
	if a.shift != b.shift || a.Count() != b.Count() {
		return false
	}
	for i := range a.buckets() {
		var x, y uint64
		if a.counts != nil {
			x = a.counts[i]
		}
		if b.counts != nil {
			y = b.counts[i]
		}
		if x != y {
			return false
		}
	}
	return true
}

func TestMergeAssociativeAndCommutative(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, shifts := range [][3]int{{0, 0, 0}, {0, 1, 2}, {2, 0, 1}} {
		a, b, c := randomHist(rng, shifts[0], 1000), randomHist(rng, shifts[1], 2000), randomHist(rng, shifts[2], 500)
		left := a.Clone()
		left.Merge(b)
		left.Merge(c)
		bc := b.Clone()
		bc.Merge(c)
		right := a.Clone()
		right.Merge(bc)
		if !equalHist(left, right) {
			t.Fatalf("shifts %v: (a+b)+c != a+(b+c)", shifts)
		}
		ba := b.Clone()
		ba.Merge(a)
		ab := a.Clone()
		ab.Merge(b)
		if !equalHist(ab, ba) {
			t.Fatalf("shifts %v: a+b != b+a", shifts)
		}
		if left.Count() != 3500 || left.Shift() != max(shifts[0], shifts[1], shifts[2]) {
			t.Fatalf("shifts %v: merged count %d shift %d", shifts, left.Count(), left.Shift())
		}
	}
}

func TestMergeEqualsObservingBoth(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var a, b, both Histogram
	for i := range 10_000 {
		d := time.Duration(rng.ExpFloat64() * 5e6)
		both.Observe(d)
		if i%3 == 0 {
			a.Observe(d)
		} else {
			b.Observe(d)
		}
	}
	third := a.Clone()
	a.Merge(b)
	if !equalHist(a, both) {
		t.Fatal("merging two halves differs from observing everything")
	}
	a.Sub(b)
	if !equalHist(a, third) {
		t.Fatal("(a+b)-b != a")
	}
	b.Sub(both) // more than b holds: clamped at 0
	if b.Count() != 0 {
		t.Fatalf("b-(a+b) left %d", b.Count())
	}
}

func TestHistogramJSONRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for shift := range maxShift + 1 {
		h := randomHist(rng, shift, 3000)
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var back Histogram
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !equalHist(h, back) {
			t.Fatalf("shift %d: round trip changed the histogram: %s", shift, b)
		}
	}
	b, _ := json.Marshal(Histogram{})
	if string(b) != `{"shift":0,"b":[]}` {
		t.Fatalf("empty histogram encodes as %s", b)
	}
}

func TestHistogramJSONRefusesOffGrid(t *testing.T) {
	for _, c := range []struct {
		in      string
		wantErr error
	}{
		{`{"shift":0,"b":[[0,1],[367,2]]}`, nil},
		{`{"shift":2,"b":[[91,1]]}`, nil},
		{`{"shift":3,"b":[]}`, ErrHistogram},
		{`{"shift":0,"b":[[368,1]]}`, ErrHistogram},
		{`{"shift":2,"b":[[92,1]]}`, ErrHistogram},
		{`{"shift":0,"b":[[1]]}`, nil}, // a short pair counts 0
		{`{"shift":-1}`, errSyntax},
		{`[1,2]`, errSyntax},
	} {
		var h Histogram
		err := json.Unmarshal([]byte(c.in), &h)
		switch {
		case c.wantErr == nil && err != nil:
			t.Errorf("%s: %v", c.in, err)
		case c.wantErr == errSyntax && err == nil:
			t.Errorf("%s: accepted", c.in)
		case c.wantErr != nil && c.wantErr != errSyntax && !errors.Is(err, c.wantErr):
			t.Errorf("%s: %v, want %v", c.in, err, c.wantErr)
		}
	}
}

var errSyntax = errors.New("any decoding error")

func FuzzHistogramJSON(f *testing.F) {
	f.Add([]byte(`{"shift":0,"b":[[0,1],[367,2]]}`))
	f.Add([]byte(`{"shift":2,"b":[[91,18446744073709551615]]}`))
	f.Add([]byte(`{"shift":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Histogram
		if json.Unmarshal(b, &h) != nil {
			return
		}
		// Whatever was accepted is usable and survives a round trip.
		_ = h.Quantile(0.99)
		var g Histogram
		g.Merge(h)
		out, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var back Histogram
		if err := json.Unmarshal(out, &back); err != nil || !equalHist(h, back) {
			t.Fatalf("round trip of %s: %v", out, err)
		}
	})
}
