// Package clientcfg is the client side of the split contract: the config the gateway
// publishes at /.well-known/shiftgate/client-config, the decision a client makes from
// it with the gateway's own algorithm, and the golden vectors that every SDK
// (clients/js, clients/java, and this package as the Go one) is tested against.
//
// The package is a leaf: it imports the standard library and xxhash only, so a Go
// application can use it as its SDK without pulling in the gateway. It computes the
// bucket itself rather than calling routing.Bucket; a test holds the two equal.
package clientcfg

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Algorithm names the split algorithm this package implements:
// bucket = xxhash64(salt + "\x00" + key) mod 10000, to iff bucket < round(percent × 100).
// A config that names another algorithm is refused: a client must not guess.
const Algorithm = "xxh64-salt0-mod10000"

// Buckets is the number of buckets: percents move in 0.01 % steps.
const Buckets = 10000

// DefaultTTL is the refetch interval, in seconds, that fetchers use when a config's
// ttl is 0.
const DefaultTTL = 60

// ErrUnsupportedAlgorithm is returned (wrapped) by Parse and Validate for a config whose
// algorithm is not Algorithm. A client that sees it keeps sending requests to the
// gateway's default address and lets the gateway decide.
var ErrUnsupportedAlgorithm = errors.New("clientcfg: unsupported algorithm")

// Config is the client config as the gateway publishes it (CONTRACT.md, "Client
// config"). Unknown JSON fields are ignored, so a newer gateway may add fields.
//
// A Config is plain data: safe for concurrent reads, and Decide keeps no reference
// into it. The zero value has no routes and an empty algorithm, so Decide answers
// ReasonUnsupported for it.
type Config struct {
	// Version identifies this config. It is a JSON string (never a number), opaque to
	// clients: compare it for equality only, e.g. with X-Shift-Config-Version.
	Version string `json:"version"`
	// Algorithm is Algorithm for every config this package accepts.
	Algorithm string `json:"algorithm"`
	// TTL is how often, in seconds, a client should refetch the config (0: DefaultTTL).
	TTL int `json:"ttl"`
	// Rollback sends every route's traffic to its From region.
	Rollback bool `json:"rollback"`
	// Cutoff, site-wide, asks clients to stop calling and serve their local cache.
	Cutoff bool `json:"cutoff"`
	// Regions maps a region name to where clients reach it.
	Regions map[string]Region `json:"regions"`
	// Routes are matched by host and longest path prefix, as the gateway matches them.
	Routes []Route `json:"routes"`
}

// Region is how clients reach one region.
type Region struct {
	// PublicURL is the region's base URL, e.g. "https://cloud.example.com".
	PublicURL string `json:"public_url"`
}

// Match selects the requests of a route.
type Match struct {
	// Host, when not empty, must equal the request's host, ASCII case-insensitively,
	// port ignored. Routes with a host win over routes without one.
	Host string `json:"host"`
	// PathPrefix is compared byte for byte with the start of the path; the longest
	// matching prefix wins ("/api" also matches "/apix"). Parse turns "" into "/".
	PathPrefix string `json:"path_prefix"`
}

// Route is one route's split as clients see it. Forced keys are not published, so a
// client decides those keys by bucket and the gateway corrects it.
type Route struct {
	Name  string `json:"name"`
	Match Match  `json:"match"`
	From  string `json:"from"`
	To    string `json:"to"`
	Salt  string `json:"salt"`
	// Keys is the key chain in order: "header:NAME", "cookie:NAME", "query:NAME", "ip".
	Keys []string `json:"keys"`
	// Percent is the share of buckets (0..100, at most two decimals) sent to To.
	Percent float64 `json:"percent"`
	// WritePercent is Percent for writes (methods but GET, HEAD and OPTIONS). Parse
	// sets it to Percent when the JSON omits it; in a Route built in code, 0 is 0.
	WritePercent float64 `json:"write_percent"`
	// Cutoff asks clients to stop calling this route and serve their local cache.
	Cutoff bool `json:"cutoff"`
}

// UnmarshalJSON reads a route, defaulting write_percent to percent.
func (r *Route) UnmarshalJSON(b []byte) error {
	type plain Route
	var aux struct {
		plain
		// Shadows the embedded field, so its absence can be told from 0.
		WritePercent *float64 `json:"write_percent"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*r = Route(aux.plain)
	r.WritePercent = r.Percent
	if aux.WritePercent != nil {
		r.WritePercent = *aux.WritePercent
	}
	return nil
}

// Parse reads and validates a client config. It normalizes as the gateway does:
// an empty path prefix becomes "/". The result is new and owned by the caller.
func Parse(data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("clientcfg: %w", err)
	}
	for i := range c.Routes {
		if c.Routes[i].Match.PathPrefix == "" {
			c.Routes[i].Match.PathPrefix = "/"
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate reports the first problem that would make a client decide differently from
// the gateway, naming its path ("routes[1].percent: ..."). It does not modify c.
func (c *Config) Validate() error {
	if c.Algorithm != Algorithm {
		return fmt.Errorf("%w %q (want %q)", ErrUnsupportedAlgorithm, c.Algorithm, Algorithm)
	}
	if c.TTL < 0 {
		return fmt.Errorf("clientcfg: ttl: want >= 0, got %d", c.TTL)
	}
	for i := range c.Routes {
		if err := c.Routes[i].validate(); err != nil {
			return fmt.Errorf("clientcfg: routes[%d]%w", i, err)
		}
	}
	return nil
}

// routeError is a problem in one route; its text starts with the field path.
type routeError string

func (e routeError) Error() string { return string(e) }

func (r *Route) validate() error {
	fail := func(format string, args ...any) error {
		return routeError(fmt.Sprintf(format, args...))
	}
	switch {
	case r.Name == "":
		return fail(".name: must not be empty")
	case r.From == "":
		return fail(".from: must not be empty")
	case r.To == "":
		return fail(".to: must not be empty")
	case !strings.HasPrefix(r.Match.PathPrefix, "/"):
		return fail(".match.path_prefix: must start with /, got %q", r.Match.PathPrefix)
	case !validPercent(r.Percent):
		return fail(".percent: want 0..100 with at most two decimals, got %v", r.Percent)
	case !validPercent(r.WritePercent):
		return fail(".write_percent: want 0..100 with at most two decimals, got %v", r.WritePercent)
	case Threshold(r.WritePercent) > Threshold(r.Percent):
		return fail(".write_percent: %v is above percent %v", r.WritePercent, r.Percent)
	}
	for j, k := range r.Keys {
		if _, _, ok := parseKey(k); !ok {
			return fail(".keys[%d]: want header:NAME, cookie:NAME, query:NAME or ip, got %q", j, k)
		}
	}
	return nil
}

// validPercent reports whether p is in 0..100 with at most two decimals. The test is
// on p × 100 as an IEEE double, which every SDK computes identically.
func validPercent(p float64) bool {
	if !(p >= 0 && p <= 100) {
		return false
	}
	x := p * 100
	return math.Abs(x-math.Round(x)) <= 1e-6
}

// Threshold returns round(percent × 100) clamped to 0..Buckets: a request goes to the
// route's To region iff its bucket is below it.
func Threshold(percent float64) int {
	t := math.Round(percent * 100)
	switch {
	case t >= Buckets:
		return Buckets
	case t > 0:
		return int(t)
	}
	return 0 // also NaN
}

// keyKind is where a key comes from.
type keyKind uint8

const (
	keyHeader keyKind = iota + 1
	keyCookie
	keyQuery
	keyIP
)

// parseKey reads one key source without allocating.
func parseKey(s string) (keyKind, string, bool) {
	if s == "ip" {
		return keyIP, "", true
	}
	i := strings.IndexByte(s, ':')
	if i < 0 || i == len(s)-1 {
		return 0, "", false
	}
	name := s[i+1:]
	switch s[:i] {
	case "header":
		return keyHeader, name, true
	case "cookie":
		return keyCookie, name, true
	case "query":
		return keyQuery, name, true
	}
	return 0, "", false
}
