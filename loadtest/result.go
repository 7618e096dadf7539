package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Modes of a run, as Result.Mode names them.
const (
	ModeClosed = "closed"
	ModeOpen   = "open"
)

// Latency holds percentiles of the latency of answered requests (any status).
// Requests that got no answer (refused, timed out, reset) are counted in Result.Errors
// and are not in the latency figures.
type Latency struct {
	P50, P90, P99, P999, Max, Mean time.Duration
}

// Result is what one run measured. Requests == Successes + Errors always holds;
// Successes are 2xx answers. A Result is a plain value: callers own its maps.
type Result struct {
	URL     string
	Mode    string        // ModeClosed or ModeOpen
	Conns   int           // connections (and workers) used
	Rate    float64       // open loop: the target rate; 0 in the closed loop
	Elapsed time.Duration // of the measured part, the warm-up excluded

	// Warmup is the unmeasured load before the measured part (Options.Warmup);
	// WarmupRequests and WarmupErrors count its requests, which are in no other figure.
	Warmup         time.Duration
	WarmupRequests int64
	WarmupErrors   int64

	Requests  int64
	Successes int64
	Errors    int64
	// ErrorKinds counts Errors by kind: "connect_refused", "timeout", "reset",
	// "other" (no answer), "status_1xx", "status_3xx", "status_4xx", "status_5xx",
	// "status_other" (answered, not 2xx). Kinds with no error are absent.
	ErrorKinds map[string]int64
	// Regions counts answers by the value of the region header; RegionNone counts
	// answers without one, RegionOther those past the first 32 distinct names.
	Regions map[string]int64

	// TLS says what an https:// run's first connection negotiated (version,
	// cipher suite, key exchange, ALPN); Handshakes counts its TLS connections.
	TLS        string
	Handshakes int64

	// RPS is Requests divided by Elapsed.
	RPS     float64
	Latency Latency
	// Histogram holds every answered request's latency in microseconds (1 µs to
	// 1 h, 3 significant digits). It is nil in a Result decoded from JSON.
	Histogram *hdrhistogram.Histogram
}

// collect merges the workers' counters and histograms; it runs after they stopped.
func collect(o *Options, workers []*worker, elapsed time.Duration) Result {
	res := Result{
		URL:        o.URL,
		Mode:       ModeClosed,
		Conns:      o.Conns,
		Rate:       o.Rate,
		Elapsed:    elapsed,
		Warmup:     o.Warmup,
		ErrorKinds: map[string]int64{},
		Regions:    map[string]int64{},
		Histogram:  newHistogram(),
	}
	if o.Rate > 0 {
		res.Mode = ModeOpen
	}
	for _, w := range workers {
		res.Requests += w.sent.Load()
		res.Errors += w.failed.Load()
		res.WarmupRequests += w.warm.Load()
		res.WarmupErrors += w.warmFailed.Load()
		for k, n := range w.kinds {
			if n > 0 {
				res.ErrorKinds[kindNames[k]] += n
			}
		}
		for name, n := range w.regions {
			res.Regions[name] += *n
		}
		res.Histogram.Merge(w.hist)
	}
	res.Successes = res.Requests - res.Errors
	if elapsed > 0 {
		res.RPS = float64(res.Requests) / elapsed.Seconds()
	}
	res.Latency = latencyOf(res.Histogram)
	return res
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return Latency{
		P50:  us(h.ValueAtPercentile(50)),
		P90:  us(h.ValueAtPercentile(90)),
		P99:  us(h.ValueAtPercentile(99)),
		P999: us(h.ValueAtPercentile(99.9)),
		Max:  us(h.Max()),
		Mean: time.Duration(h.Mean() * float64(time.Microsecond)),
	}
}

// jsonResult is the JSON shape of a Result: durations in seconds or milliseconds,
// names in snake case. Scripts parse it; keys are only ever added.
type jsonResult struct {
	URL        string           `json:"url"`
	Mode       string           `json:"mode"`
	Conns      int              `json:"conns"`
	Rate       float64          `json:"rate,omitempty"`
	ElapsedS   float64          `json:"elapsed_s"`
	WarmupS    float64          `json:"warmup_s,omitempty"`
	WarmupReqs int64            `json:"warmup_requests,omitempty"`
	WarmupErrs int64            `json:"warmup_errors,omitempty"`
	Requests   int64            `json:"requests"`
	Successes  int64            `json:"successes"`
	Errors     int64            `json:"errors"`
	ErrorKinds map[string]int64 `json:"error_kinds"`
	Regions    map[string]int64 `json:"regions"`
	RPS        float64          `json:"rps"`
	LatencyMS  jsonLatency      `json:"latency_ms"`
	TLS        string           `json:"tls,omitempty"`
	Handshakes int64            `json:"tls_handshakes,omitempty"`
}

type jsonLatency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func ms(d time.Duration) float64     { return float64(d) / float64(time.Millisecond) }
func fromMS(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
func nonNil(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

// MarshalJSON encodes r as one object (see the bench README for its keys).
func (r Result) MarshalJSON() ([]byte, error) {
	l := r.Latency
	return json.Marshal(jsonResult{
		URL: r.URL, Mode: r.Mode, Conns: r.Conns, Rate: r.Rate,
		ElapsedS: r.Elapsed.Seconds(),
		WarmupS:  r.Warmup.Seconds(), WarmupReqs: r.WarmupRequests, WarmupErrs: r.WarmupErrors,
		Requests: r.Requests, Successes: r.Successes, Errors: r.Errors,
		ErrorKinds: nonNil(r.ErrorKinds), Regions: nonNil(r.Regions),
		RPS: r.RPS, TLS: r.TLS, Handshakes: r.Handshakes,
		LatencyMS: jsonLatency{
			P50: ms(l.P50), P90: ms(l.P90), P99: ms(l.P99), P999: ms(l.P999),
			Max: ms(l.Max), Mean: ms(l.Mean),
		},
	})
}

// UnmarshalJSON decodes what MarshalJSON wrote; Histogram stays nil.
func (r *Result) UnmarshalJSON(b []byte) error {
	var j jsonResult
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	l := j.LatencyMS
	*r = Result{
		URL: j.URL, Mode: j.Mode, Conns: j.Conns, Rate: j.Rate,
		Elapsed: time.Duration(j.ElapsedS * float64(time.Second)),
		Warmup:  time.Duration(j.WarmupS * float64(time.Second)), WarmupRequests: j.WarmupReqs, WarmupErrors: j.WarmupErrs,
		Requests: j.Requests, Successes: j.Successes, Errors: j.Errors,
		ErrorKinds: j.ErrorKinds, Regions: j.Regions, RPS: j.RPS, TLS: j.TLS, Handshakes: j.Handshakes,
		Latency: Latency{
			P50: fromMS(l.P50), P90: fromMS(l.P90), P99: fromMS(l.P99), P999: fromMS(l.P999),
			Max: fromMS(l.Max), Mean: fromMS(l.Mean),
		},
	}
	return nil
}

// unanswered counts the requests that got no answer at all (refused, timed out,
// reset, or another transport error), as opposed to an answer of any status.
func (r Result) unanswered() int64 {
	var n int64
	for _, k := range []errKind{kindRefused, kindTimeout, kindReset, kindOther} {
		n += r.ErrorKinds[k.String()]
	}
	return n
}

// errorSummary lists the error kinds and their counts, "kind n, ...".
func (r Result) errorSummary() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r.ErrorKinds)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.ErrorKinds[k]))
	}
	return strings.Join(parts, ", ")
}

// WriteText writes r for people: a few aligned lines.
func (r Result) WriteText(w io.Writer) error {
	var b strings.Builder
	mode := fmt.Sprintf("closed loop, %d conns", r.Conns)
	if r.Mode == ModeOpen {
		mode = fmt.Sprintf("open loop, %g req/s target, %d conns", r.Rate, r.Conns)
	}
	fmt.Fprintf(&b, "target    %s  (%s, %.2fs)\n", r.URL, mode, r.Elapsed.Seconds())
	if r.Warmup > 0 {
		fmt.Fprintf(&b, "warm-up   %v before the measured part, not counted below: %d requests, %d errors\n",
			r.Warmup, r.WarmupRequests, r.WarmupErrors)
	}
	fmt.Fprintf(&b, "requests  %d  (%.1f req/s)  ok %d  errors %d\n", r.Requests, r.RPS, r.Successes, r.Errors)
	if r.TLS != "" {
		fmt.Fprintf(&b, "tls       %s, %d handshakes (%.1f/s)\n", r.TLS, r.Handshakes, float64(r.Handshakes)/max(r.Elapsed.Seconds(), 1e-9))
	}
	if len(r.ErrorKinds) > 0 {
		b.WriteString("errors   ")
		for _, k := range slices.Sorted(maps.Keys(r.ErrorKinds)) {
			fmt.Fprintf(&b, " %s %d", k, r.ErrorKinds[k])
		}
		b.WriteByte('\n')
	}
	if len(r.Regions) > 0 {
		var answered int64
		for _, n := range r.Regions {
			answered += n
		}
		b.WriteString("regions  ")
		for _, k := range slices.Sorted(maps.Keys(r.Regions)) {
			fmt.Fprintf(&b, " %s %d (%.1f%%)", k, r.Regions[k], 100*float64(r.Regions[k])/float64(answered))
		}
		b.WriteByte('\n')
	}
	l := r.Latency
	answered := l != (Latency{})
	if r.Histogram != nil {
		answered = r.Histogram.TotalCount() > 0
	}
	if !answered {
		b.WriteString("latency   (no answers)\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, "latency   p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999), fmtDur(l.Max))
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtDur prints a latency with three significant digits and a unit people read.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.3gms", ms(d))
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}
