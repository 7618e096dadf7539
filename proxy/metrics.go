package proxy

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// latencyBounds are the upper bounds, in seconds, of the upstream latency histogram.
var latencyBounds = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// latencyHistogram is a Prometheus histogram with atomic buckets: recording a request
// takes no lock, unlike the library's histograms, so it can sit on the request path of
// every core at once.
type latencyHistogram struct {
	buckets [len(latencyBounds) + 1]atomic.Uint64
	sumNS   atomic.Uint64
}

func (h *latencyHistogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBounds) && s > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sumNS.Add(uint64(d))
}

// write prints the histogram in the Prometheus text format under name{labels}.
func (h *latencyHistogram) write(w io.Writer, name, labels string) {
	var cum uint64
	for i, ub := range latencyBounds {
		cum += h.buckets[i].Load()
		fmt.Fprintf(w, "%s_bucket{%s,le=\"%g\"} %d\n", name, labels, ub, cum)
	}
	cum += h.buckets[len(latencyBounds)].Load()
	fmt.Fprintf(w, "%s_bucket{%s,le=\"+Inf\"} %d\n", name, labels, cum)
	fmt.Fprintf(w, "%s_sum{%s} %g\n", name, labels, float64(h.sumNS.Load())/1e9)
	fmt.Fprintf(w, "%s_count{%s} %d\n", name, labels, cum)
}

// statusClasses indexes responses by class: 0 for errors without a status, 1..5 for
// 1xx..5xx.
const statusClasses = 6

var classNames = [statusClasses]string{"error", "1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(code int) int {
	if code < 100 || code > 599 {
		return 0
	}
	return code / 100
}

// routeMetrics are a route's counters, created when a config is compiled and reached
// by index on the request path: no lookups by name per request.
// counter is the counter type metrics are kept in.
type counter = metrics.Counter

type routeMetrics struct {
	requests   [][statusClasses]*counter // [region][class]
	latency    []*latencyHistogram       // [region]
	bySource   []*metrics.Counter        // [key source index]; last: no key
	failovers  *metrics.Counter
	fallbacks  [4]*metrics.Counter // [fallbackNone..fallbackLua]
	noUpstream *metrics.Counter
	luaErrors  *metrics.Counter
}

// metricsRegistry holds every metric of a Server. Counters are kept across reloads by
// name (the library's GetOrCreate), so a reload neither resets nor duplicates them.
type metricsRegistry struct {
	set        *metrics.Set
	histograms atomic.Pointer[[]namedHistogram]
	hist       map[string]*latencyHistogram
}

type namedHistogram struct {
	labels string
	h      *latencyHistogram
}

func newMetricsRegistry() *metricsRegistry {
	m := &metricsRegistry{set: metrics.NewSet(), hist: map[string]*latencyHistogram{}}
	m.set.RegisterMetricsWriter(func(w io.Writer) {
		if hs := m.histograms.Load(); hs != nil {
			for _, nh := range *hs {
				nh.h.write(w, "shiftgate_upstream_duration_seconds", nh.labels)
			}
		}
	})
	return m
}

func (m *metricsRegistry) counter(format string, args ...any) *metrics.Counter {
	return m.set.GetOrCreateCounter(fmt.Sprintf(format, args...))
}

// histogram returns the latency histogram for labels, creating it once. Called only
// while compiling a config (one goroutine at a time).
func (m *metricsRegistry) histogram(labels string) *latencyHistogram {
	if h, ok := m.hist[labels]; ok {
		return h
	}
	h := &latencyHistogram{}
	m.hist[labels] = h
	var list []namedHistogram
	if old := m.histograms.Load(); old != nil {
		list = append(list, *old...)
	}
	list = append(list, namedHistogram{labels, h})
	m.histograms.Store(&list)
	return h
}

// WritePrometheus writes every metric in the Prometheus text format.
func (m *metricsRegistry) WritePrometheus(w io.Writer) {
	m.set.WritePrometheus(w)
}
