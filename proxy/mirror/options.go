package mirror

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Options configure a Mirror. Every zero value takes the default named on its field;
// New copies Options and never changes the caller's slices.
type Options struct {
	// Routes are indexed by the caller's route index: Sampled and Offer take that
	// index. A Route with Percent 0 is off and costs its requests one bounds check and
	// one comparison.
	Routes []Route

	// Workers bounds the copies in flight to mirror targets at once, over all routes.
	// Default 8.
	Workers int
	// Queue bounds the copies waiting for a worker; beyond it Offer drops and counts.
	// Default 256. Memory held at worst is (Queue+Workers) × (MaxBody + MaxAnswer).
	Queue int
	// Timeout bounds one exchange with a mirror or noise upstream, connect to last
	// byte. Short on purpose: a slow mirror must not hold workers. Default 2 s.
	Timeout time.Duration
	// ConnectTimeout bounds a connect to a mirror upstream. Default 1 s.
	ConnectTimeout time.Duration
	// MaxConnsPerHost bounds the connections to each mirror upstream. Default Workers.
	MaxConnsPerHost int
	// MaxAnswer is how many bytes of an answer are compared, the client's and the
	// mirror's alike; past it an answer is compared up to it and marked truncated.
	// Default 64 KiB.
	MaxAnswer int

	// RelMargin and AbsMargin are Diffy's thresholds, as fractions: a field is
	// reported as differing only if raw_rate > noise_rate and
	// (raw−noise)/(raw+noise) > RelMargin and raw−noise > AbsMargin. Defaults 0.2 and
	// 0.0003 (Diffy's 20 % and 0.03 %). A negative value means 0.
	RelMargin float64
	AbsMargin float64

	// MaxFields bounds the distinct fields tracked per route; further fields are
	// counted under ":other". Default 256.
	MaxFields int
	// Samples is how many sample differences are kept per field (the latest).
	// Default 5.
	Samples int
	// SampleBytes caps a sample's values and path. Default 200.
	SampleBytes int
	// LatencyWindow is how many recent (primary, mirror) latency pairs each route
	// keeps for its percentiles. Default 2048.
	LatencyWindow int

	// Now is the clock of the rate caps and of the mirror's latency. Default time.Now.
	Now func() time.Time
}

// Route is one route's mirror policy. The zero Route is off.
type Route struct {
	// Name labels the route's results.
	Name string
	// Percent is the share of the route's requests mirrored, in basis points: 1 is
	// 0.01 %, 10000 is all. 0 is off.
	Percent int
	// Methods may be mirrored; default GET and HEAD. WARNING: anything else sends
	// real writes to the mirror region, marked X-Shift-Mirror: 1 but executed by any
	// backend that ignores the mark. Only list a write method for backends known to
	// suppress side effects for marked requests.
	Methods []string
	// MaxBody is the largest request body mirrored; larger ones, and bodies the
	// caller does not hold whole, are skipped. Default 64 KiB; negative means none.
	MaxBody int
	// Rate caps the copies offered per second (a token bucket of Burst); 0 is no cap.
	Rate float64
	// Burst is the token bucket's depth. Default max(1, Rate).
	Burst int

	// Region is sent as X-Shift-Region on copies to TargetAddrs ("" removes it).
	Region string
	// TargetAddrs are the mirror region's upstreams (host:port), used round robin.
	TargetAddrs []string
	// NoiseRegion is sent as X-Shift-Region on copies to NoiseAddrs.
	NoiseRegion string
	// NoiseAddrs are upstreams of the region that served the client (a second one
	// when it has several); comparing them with the client's answer measures noise.
	// Empty: no noise measurement, and every field that differs is reported.
	NoiseAddrs []string
	// NoiseShare is the share of compared requests also sent to NoiseAddrs, in basis
	// points. Default 5000 when NoiseAddrs is set.
	NoiseShare int

	// CompareHeaders are the response headers compared, case-insensitive. Default
	// Content-Type, Content-Encoding and Location. "*" compares every header but
	// the volatile ones (Date, Content-Length, hop-by-hop, X-Request-Id,
	// X-Shift-Region, X-Shift-Fallback, and Set-Cookie, whose values samples would
	// show).
	CompareHeaders []string
	// IgnoreHeaders are never compared, case-insensitive.
	IgnoreHeaders []string
	// IgnorePaths are JSON paths never compared, nor anything below them:
	// "$.meta.ts", "meta.ts", "items[*].id" ([*] is any index), `["a.b"]`.
	IgnorePaths []string
}

// Defaults.
const (
	defaultWorkers       = 8
	defaultQueue         = 256
	defaultTimeout       = 2 * time.Second
	defaultConnect       = time.Second
	defaultMaxAnswer     = 64 << 10
	defaultMaxBody       = 64 << 10
	defaultRelMargin     = 0.2
	defaultAbsMargin     = 0.0003
	defaultMaxFields     = 256
	defaultSamples       = 5
	defaultSampleBytes   = 200
	defaultLatencyWindow = 2048
	defaultNoiseShare    = 5000
)

var defaultCompareHeaders = []string{"Content-Type", "Content-Encoding", "Location"}

// withDefaults returns o with every zero value replaced by its default.
func (o Options) withDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = defaultWorkers
	}
	if o.Queue <= 0 {
		o.Queue = defaultQueue
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = defaultConnect
	}
	if o.MaxConnsPerHost <= 0 {
		o.MaxConnsPerHost = o.Workers
	}
	if o.MaxAnswer <= 0 {
		o.MaxAnswer = defaultMaxAnswer
	}
	switch {
	case o.RelMargin == 0:
		o.RelMargin = defaultRelMargin
	case o.RelMargin < 0:
		o.RelMargin = 0
	}
	switch {
	case o.AbsMargin == 0:
		o.AbsMargin = defaultAbsMargin
	case o.AbsMargin < 0:
		o.AbsMargin = 0
	}
	if o.MaxFields <= 0 {
		o.MaxFields = defaultMaxFields
	}
	if o.Samples <= 0 {
		o.Samples = defaultSamples
	}
	if o.SampleBytes <= 0 {
		o.SampleBytes = defaultSampleBytes
	}
	if o.LatencyWindow <= 0 {
		o.LatencyWindow = defaultLatencyWindow
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// check validates one route; i names it in errors.
func (r *Route) check(i int) error {
	where := fmt.Sprintf("mirror route %d (%s)", i, r.Name)
	if r.Percent < 0 || r.Percent > 10000 {
		return fmt.Errorf("%s: percent: want 0..10000 basis points, got %d", where, r.Percent)
	}
	if r.Percent == 0 {
		return nil
	}
	if len(r.TargetAddrs) == 0 {
		return fmt.Errorf("%s: no mirror upstreams", where)
	}
	if r.NoiseShare < 0 || r.NoiseShare > 10000 {
		return fmt.Errorf("%s: noise share: want 0..10000 basis points, got %d", where, r.NoiseShare)
	}
	if r.Rate < 0 {
		return fmt.Errorf("%s: rate: want ≥ 0, got %v", where, r.Rate)
	}
	for _, m := range r.Methods {
		if m == "" || strings.ContainsAny(m, " \t\r\n") {
			return fmt.Errorf("%s: method %q is not a token", where, m)
		}
	}
	for _, a := range append(append([]string(nil), r.TargetAddrs...), r.NoiseAddrs...) {
		if a == "" {
			return fmt.Errorf("%s: empty upstream address", where)
		}
	}
	for _, p := range r.IgnorePaths {
		if _, err := parseRule(p); err != nil {
			return fmt.Errorf("%s: ignore path %q: %w", where, p, err)
		}
	}
	return nil
}

var errEmptyRule = errors.New("empty path")
