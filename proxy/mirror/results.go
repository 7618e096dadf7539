package mirror

import (
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Verdicts of a field.
const (
	VerdictDiffering = "differing"
	VerdictNoise     = "noise"
)

// Snapshot is what mirrored answers showed, the shape of GET /v1/diff and
// `shiftgate diff -json`. It is a copy: the caller may keep and change it.
type Snapshot struct {
	Routes []RouteResult `json:"routes"`
}

// RouteResult is one mirrored route's results since the Mirror was built.
type RouteResult struct {
	Name string `json:"name"`
	Counters
	// Fields are the fields that differed at least once, differing verdicts first,
	// then by raw rate.
	Fields  []FieldResult `json:"fields"`
	Latency Latency       `json:"latency"`
}

// Counters are a route's running totals; each only grows. They are read without
// locks, so one Counters may mix moments a few requests apart.
type Counters struct {
	// Offered: sampled requests handed to Offer.
	Offered uint64 `json:"offered"`
	// Dropped: offered while the queue was full.
	Dropped uint64 `json:"dropped"`
	// Limited: refused by the route's rate cap.
	Limited uint64 `json:"limited"`
	// Skipped: not mirrored because of the request body (over the cap or not held).
	Skipped uint64 `json:"skipped"`
	// Compared: mirror answers compared with the client's.
	Compared uint64 `json:"compared"`
	// Same and Differing split Compared by whether any compared field differed.
	Same      uint64 `json:"same"`
	Differing uint64 `json:"differing"`
	// NoiseCompared: noise answers compared with the client's.
	NoiseCompared uint64 `json:"noise_compared"`
	// Errors: copies the mirror target did not answer (down, timeout, broken answer).
	Errors uint64 `json:"errors"`
	// NoiseErrors: the same for the noise upstreams.
	NoiseErrors uint64 `json:"noise_errors"`
	// Truncated: comparisons in which a body was compared only up to the cap.
	Truncated uint64 `json:"truncated"`
	// Completed: copies whose work is over, whatever came of it.
	Completed uint64 `json:"completed"`
}

// FieldResult is one field's record. RawRate is the share of compared requests in
// which the mirror's answer differed from the client's in this field; NoiseRate the
// share of noise-compared requests in which the noise upstream's did.
type FieldResult struct {
	Field          string   `json:"field"`
	Verdict        string   `json:"verdict"`
	RawRate        float64  `json:"raw_rate"`
	NoiseRate      float64  `json:"noise_rate"`
	Differing      uint64   `json:"differing"`
	NoiseDiffering uint64   `json:"noise_differing"`
	Samples        []Sample `json:"samples"`
}

// Sample is one recent difference, values cut to Options.SampleBytes.
type Sample struct {
	// Path is the request path (no query: it may carry tokens).
	Path string `json:"path"`
	// Field is the concrete field path, indices included.
	Field string `json:"field"`
	// Primary is the value in the client's answer, Mirror in the mirror's.
	Primary   string `json:"primary"`
	Mirror    string `json:"mirror"`
	Truncated bool   `json:"truncated,omitempty"`
}

// Latency compares, over the same recent requests, how long the client's answer took
// (primary, usually the `from` region) and the mirror's (usually `to`).
type Latency struct {
	Samples      int     `json:"samples"`
	PrimaryP50Ms float64 `json:"primary_p50_ms"`
	PrimaryP99Ms float64 `json:"primary_p99_ms"`
	MirrorP50Ms  float64 `json:"mirror_p50_ms"`
	MirrorP99Ms  float64 `json:"mirror_p99_ms"`
}

// routeStats is one route's running results. The request path touches only the
// atomic counters; workers take mu for fields and latency.
type routeStats struct {
	name string
	opts *Options

	offered, dropped, limited, skipped                atomic.Uint64
	compared, same, differing, noiseCompared, errors  atomic.Uint64
	noiseErrors, truncated, completed, noiseSequencer atomic.Uint64

	mu     sync.Mutex
	fields map[string]*fieldStats
	lat    latencyRing
}

type fieldStats struct {
	raw, noise uint64
	samples    []Sample // a ring of the latest
	next       int
}

func newRouteStats(name string, o *Options) *routeStats {
	return &routeStats{name: name, opts: o, fields: map[string]*fieldStats{}, lat: latencyRing{size: o.LatencyWindow}}
}

// field returns the record of key, or of ":other" when the route tracks enough.
// Called with mu held.
func (s *routeStats) field(key string) (string, *fieldStats) {
	if f := s.fields[key]; f != nil {
		return key, f
	}
	if len(s.fields) >= s.opts.MaxFields {
		key = fieldOther
		if f := s.fields[key]; f != nil {
			return key, f
		}
	}
	f := &fieldStats{}
	s.fields[key] = f
	return key, f
}

// recordRaw adds one comparison of the mirror's answer with the client's. seen is
// scratch space, emptied here.
func (s *routeStats) recordRaw(path string, diffs []Difference, truncated bool, primary, mirror time.Duration, seen map[string]bool) {
	clear(seen)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compared.Add(1)
	if len(diffs) == 0 {
		s.same.Add(1)
	} else {
		s.differing.Add(1)
	}
	if truncated {
		s.truncated.Add(1)
	}
	s.lat.add(primary, mirror)
	for i := range diffs {
		d := &diffs[i]
		key, f := s.field(d.Field)
		if seen[key] {
			continue // a field counts once per request however many indices differ
		}
		seen[key] = true
		f.raw++
		f.addSample(Sample{
			Path: cut(path, s.opts.SampleBytes), Field: cut(d.Path, s.opts.SampleBytes),
			Primary: cut(d.A, s.opts.SampleBytes), Mirror: cut(d.B, s.opts.SampleBytes), Truncated: d.Truncated,
		}, s.opts.Samples)
	}
}

// recordNoise adds one comparison of a noise upstream's answer with the client's.
func (s *routeStats) recordNoise(diffs []Difference, seen map[string]bool) {
	clear(seen)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noiseCompared.Add(1)
	for i := range diffs {
		key, f := s.field(diffs[i].Field)
		if !seen[key] {
			seen[key] = true
			f.noise++
		}
	}
}

func (f *fieldStats) addSample(x Sample, max int) {
	if len(f.samples) < max {
		f.samples = append(f.samples, x)
		return
	}
	f.samples[f.next] = x
	f.next = (f.next + 1) % max
}

func (s *routeStats) counters() Counters {
	return Counters{
		Offered: s.offered.Load(), Dropped: s.dropped.Load(), Limited: s.limited.Load(), Skipped: s.skipped.Load(),
		Compared: s.compared.Load(), Same: s.same.Load(), Differing: s.differing.Load(),
		NoiseCompared: s.noiseCompared.Load(), Errors: s.errors.Load(), NoiseErrors: s.noiseErrors.Load(),
		Truncated: s.truncated.Load(), Completed: s.completed.Load(),
	}
}

func (s *routeStats) result() RouteResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := RouteResult{Name: s.name, Counters: s.counters(), Fields: []FieldResult{}, Latency: s.lat.summary()}
	for key, f := range s.fields {
		fr := FieldResult{Field: key, Differing: f.raw, NoiseDiffering: f.noise, Samples: make([]Sample, 0, len(f.samples))}
		if r.Compared > 0 {
			fr.RawRate = float64(f.raw) / float64(r.Compared)
		}
		if r.NoiseCompared > 0 {
			fr.NoiseRate = float64(f.noise) / float64(r.NoiseCompared)
		}
		fr.Verdict = verdict(fr.RawRate, fr.NoiseRate, s.opts.RelMargin, s.opts.AbsMargin)
		// Oldest first.
		fr.Samples = append(fr.Samples, f.samples[f.next:]...)
		fr.Samples = append(fr.Samples, f.samples[:f.next]...)
		r.Fields = append(r.Fields, fr)
	}
	slices.SortFunc(r.Fields, func(a, b FieldResult) int {
		if (a.Verdict == VerdictDiffering) != (b.Verdict == VerdictDiffering) {
			if a.Verdict == VerdictDiffering {
				return -1
			}
			return 1
		}
		if a.RawRate != b.RawRate {
			if a.RawRate > b.RawRate {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Field, b.Field)
	})
	return r
}

// verdict is Diffy's rule on rates: a field differs only if the mirror differs from
// the client's answer more often than a second upstream of the client's own region
// does, by a relative margin (|raw−noise|/(raw+noise) > rel) and an absolute one
// (raw−noise > abs). Otherwise it is noise.
func verdict(raw, noise, rel, abs float64) string {
	if raw <= noise {
		return VerdictNoise
	}
	if (raw-noise)/(raw+noise) > rel && raw-noise > abs {
		return VerdictDiffering
	}
	return VerdictNoise
}

// latencyRing keeps the latest size (primary, mirror) pairs.
type latencyRing struct {
	size            int
	primary, mirror []time.Duration
	next            int
}

func (l *latencyRing) add(p, m time.Duration) {
	if len(l.primary) < l.size {
		l.primary = append(l.primary, p)
		l.mirror = append(l.mirror, m)
		return
	}
	l.primary[l.next], l.mirror[l.next] = p, m
	l.next = (l.next + 1) % l.size
}

func (l *latencyRing) summary() Latency {
	return Latency{
		Samples:      len(l.primary),
		PrimaryP50Ms: quantileMs(l.primary, 0.5), PrimaryP99Ms: quantileMs(l.primary, 0.99),
		MirrorP50Ms: quantileMs(l.mirror, 0.5), MirrorP99Ms: quantileMs(l.mirror, 0.99),
	}
}

// quantileMs returns the q-quantile of d (nearest rank) in milliseconds; 0 for none.
func quantileMs(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return float64(s[max(i, 0)]) / float64(time.Millisecond)
}
