package proxy

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
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
	requests  [][statusClasses]*counter // [region][class]
	latency   []*latencyHistogram       // [region]
	bySource  []*metrics.Counter        // [key source index]; last: no key
	failovers *metrics.Counter
	// abandoned counts, by region, the reads cut when the region's breaker opened
	// (nil without breaker.slow_call.abandon_reads).
	abandoned  []*counter
	fallbacks  [4]*metrics.Counter // [fallbackNone..fallbackLua]
	noUpstream *metrics.Counter
	luaErrors  *metrics.Counter
	// budgetMisses counts reads a byte budget sent to the cached fallback that
	// missed, and were refused (levers.go).
	budgetMisses *metrics.Counter
	// clients counts X-Shift-Client outcomes (clientAgree..clientStale);
	// crossRegion, by region, the requests sent from self_region to another
	// region (nil without self_region; nil for self_region itself).
	clients     [clientOutcomes]*metrics.Counter
	crossRegion []*metrics.Counter
}

// metricsRegistry holds every metric of a Server. Counters are kept across reloads by
// name (the library's GetOrCreate), so a reload neither resets nor duplicates them.
type metricsRegistry struct {
	set        *metrics.Set
	histograms atomic.Pointer[[]namedHistogram]
	hist       map[string]*latencyHistogram
	// byRoute names the series created for each route, so that a route's series
	// go when the route does. Written only while compiling (under the reload lock).
	byRoute map[string]map[string]bool
}

type namedHistogram struct {
	labels string
	h      *latencyHistogram
}

func newMetricsRegistry() *metricsRegistry {
	m := &metricsRegistry{set: metrics.NewSet(), hist: map[string]*latencyHistogram{}, byRoute: map[string]map[string]bool{}}
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

// routeCounter is counter for a series that belongs to route: it is unregistered
// when the route leaves the config. Called only while compiling.
func (m *metricsRegistry) routeCounter(route, format string, args ...any) *metrics.Counter {
	name := fmt.Sprintf(format, args...)
	names := m.byRoute[route]
	if names == nil {
		names = map[string]bool{}
		m.byRoute[route] = names
	}
	names[name] = true
	return m.set.GetOrCreateCounter(name)
}

// retainRoutes unregisters the series and histograms of every route not in routes.
// Called only while putting a snapshot into service.
func (m *metricsRegistry) retainRoutes(routes []string) {
	keep := make(map[string]bool, len(routes))
	for _, r := range routes {
		keep[r] = true
	}
	for route, names := range m.byRoute {
		if keep[route] {
			continue
		}
		for name := range names {
			m.set.UnregisterMetric(name)
		}
		delete(m.byRoute, route)
	}
	prefix := func(route string) string { return fmt.Sprintf("route=%q,", route) }
	var list []namedHistogram
	changed := false
	if old := m.histograms.Load(); old != nil {
		for _, nh := range *old {
			route, _, _ := strings.Cut(strings.TrimPrefix(nh.labels, "route="), ",")
			if r, err := strconv.Unquote(route); err == nil && !keep[r] && strings.HasPrefix(nh.labels, prefix(r)) {
				delete(m.hist, nh.labels)
				changed = true
				continue
			}
			list = append(list, nh)
		}
	}
	if changed {
		m.histograms.Store(&list)
	}
}

// series reports whether a series named name is registered (tests).
func (m *metricsRegistry) series(name string) bool {
	for _, n := range m.set.ListMetricNames() {
		if n == name {
			return true
		}
	}
	return false
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

// WritePrometheus writes every metric in the Prometheus text format, with the build,
// Go runtime and process series, each family under its "# HELP" and "# TYPE" lines.
func (m *metricsRegistry) WritePrometheus(w io.Writer) {
	var bb bytes.Buffer
	m.set.WritePrometheus(&bb)
	writeBuildInfo(&bb)
	processMetrics(&bb)
	writeExposition(w, bb.Bytes())
}
