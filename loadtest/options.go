package loadtest

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Defaults applied by Run to zero fields of Options.
const (
	DefaultConns         = 64
	DefaultTimeout       = 5 * time.Second
	DefaultUserHeader    = "X-User-Id"
	DefaultUserPrefix    = "u-"
	DefaultRegionHeader  = "X-Shift-Region"
	DefaultProgressEvery = time.Second
)

// Header is one extra request header sent with every request.
type Header struct {
	Name, Value string
}

// Options describe one load run. Run reads them once and does not retain the Body or
// Headers slices after it returns. The zero value is not runnable: URL and at least one
// of Duration and N are required; every other zero field takes the default named on it.
type Options struct {
	// URL is the target, "http://host:port/path?query" or "https://...": HTTP/1.1,
	// over TLS for https (see TLS).
	URL string
	// TLS configures the client side of an https:// target.
	TLS TLSOptions
	// NewConns sends every request on a new connection (Connection: close): the
	// run then measures new connections per second, full TLS handshakes for an
	// https:// target unless TLS.Resume.
	NewConns bool
	// Method is the request method; "" means GET.
	Method string
	// Headers are added to every request, after the user-id header.
	Headers []Header
	// Body is sent with every request (for POST/PUT); nil sends none.
	Body []byte

	// Conns is the number of keep-alive connections, and of worker goroutines: each
	// has at most one request in flight. 0 means DefaultConns.
	Conns int
	// Rate, when > 0, switches to the open loop: Rate requests per second in total,
	// at intended send times start + i/Rate, latency measured from the intended time.
	// 0 is the closed loop: each connection sends its next request as soon as the
	// previous one is answered.
	Rate float64

	// Duration bounds the run in time (0: no time bound). Requests in flight when it
	// ends are completed and counted.
	Duration time.Duration
	// N bounds the run in requests sent (0: no count bound). A run with N > 0 sends
	// exactly N requests unless Duration or the context ends it first.
	N int64
	// Warmup is unmeasured load before Duration, on the same connections and the
	// same schedule: what the run reports starts once the connections are open (and
	// their TLS handshakes done) and the server has warmed up. It needs a Duration.
	Warmup time.Duration
	// OnMeasure, when non-nil, is called with true when the measured part begins
	// (after Warmup; at once without one) and with false when it ends (its Duration
	// passed, or the workers are done), before Run closes the connections, so that
	// a harness can read the server's CPU time over the measured part. Both calls
	// come from one goroutine, in that order; neither comes when the run stops
	// during the warm-up.
	OnMeasure func(begin bool)

	// Users is the number of distinct user ids; each request carries one drawn
	// uniformly at random, as "UserHeader: UserPrefix<n>" with n in [0, Users).
	// 0 sends no user header.
	Users int
	// UserHeader names the user-id header; "" means DefaultUserHeader.
	UserHeader string
	// UserPrefix prefixes the user number; "" means DefaultUserPrefix.
	UserPrefix string
	// Seed seeds the user draw, so two runs with the same seed send the same ids in
	// the same order per worker. 0 is a valid seed.
	Seed uint64

	// Timeout bounds each request's write and read; 0 means DefaultTimeout.
	Timeout time.Duration
	// RegionHeader names the response header whose value is counted per region;
	// "" means DefaultRegionHeader.
	RegionHeader string
	// AllowRemote permits a target that is not a loopback address. Without it Run
	// refuses any host that is not, or does not resolve only to, loopback addresses.
	AllowRemote bool

	// Progress, when non-nil, receives a progress line every ProgressEvery while the
	// run lasts. Writes happen from one goroutine.
	Progress io.Writer
	// ProgressEvery is the progress interval; 0 means DefaultProgressEvery.
	ProgressEvery time.Duration
}

// ErrUnbounded is returned by Run when Options set neither Duration nor N.
var ErrUnbounded = errors.New("loadtest: run is unbounded: set a duration or a request count")

// ErrRemoteTarget is returned (wrapped) by Run when the target is not on loopback and
// AllowRemote is false.
var ErrRemoteTarget = errors.New("loadtest: target is not a loopback address (allow it explicitly to load a remote host)")

// withDefaults returns a copy of o with defaults applied, or an error naming the
// first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.Method == "" {
		o.Method = "GET"
	}
	if o.Conns == 0 {
		o.Conns = DefaultConns
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.UserHeader == "" {
		o.UserHeader = DefaultUserHeader
	}
	if o.UserPrefix == "" {
		o.UserPrefix = DefaultUserPrefix
	}
	if o.RegionHeader == "" {
		o.RegionHeader = DefaultRegionHeader
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = DefaultProgressEvery
	}
	switch {
	case o.URL == "":
		return o, errors.New("loadtest: no target URL")
	case o.Conns < 0:
		return o, fmt.Errorf("loadtest: conns: want > 0, got %d", o.Conns)
	case o.Rate < 0:
		return o, fmt.Errorf("loadtest: rate: want >= 0, got %g", o.Rate)
	case o.Duration < 0:
		return o, fmt.Errorf("loadtest: duration: want >= 0, got %v", o.Duration)
	case o.N < 0:
		return o, fmt.Errorf("loadtest: n: want >= 0, got %d", o.N)
	case o.Users < 0:
		return o, fmt.Errorf("loadtest: users: want >= 0, got %d", o.Users)
	case o.Timeout < 0:
		return o, fmt.Errorf("loadtest: timeout: want > 0, got %v", o.Timeout)
	case o.ProgressEvery < 0:
		return o, fmt.Errorf("loadtest: progress interval: want > 0, got %v", o.ProgressEvery)
	case o.Duration == 0 && o.N == 0:
		return o, ErrUnbounded
	case o.Warmup < 0:
		return o, fmt.Errorf("loadtest: warmup: want >= 0, got %v", o.Warmup)
	case o.Warmup > 0 && o.Duration == 0:
		return o, errors.New("loadtest: warmup needs a duration: the measured part starts after it and lasts the duration")
	}
	for _, h := range o.Headers {
		if o.Users > 0 && strings.EqualFold(h.Name, o.UserHeader) {
			return o, fmt.Errorf("loadtest: header %s is set by Headers and by Users (which would replace it): set one", h.Name)
		}
	}
	return o, nil
}
