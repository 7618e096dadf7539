// Package conf owns shiftgate's configuration: the schema, strict parsing with errors
// that name file, line and key path, defaults, validation and normalisation (region
// names become small ints, percents basis points, key sources small values), plus the
// runtime overrides (split, rollback) that the admin API changes and their persistence.
//
// A *Config returned by Parse is immutable: nothing in shiftgate modifies it after Parse,
// so it may be shared by any number of goroutines.
package conf

import (
	"net/netip"
)

// Config is one parsed, validated and normalised configuration file.
type Config struct {
	Listen     string            `yaml:"listen"`
	Admin      Admin             `yaml:"admin"`
	StateDir   string            `yaml:"state_dir"`
	SelfRegion string            `yaml:"self_region"`
	Regions    map[string]Region `yaml:"regions"`
	ClientIP   ClientIP          `yaml:"client_ip"`
	Internal   Internal          `yaml:"internal"`
	Split      Split             `yaml:"split"`
	Routes     []Route           `yaml:"routes"`
	Timeouts   Timeouts          `yaml:"timeouts"`
	Limits     Limits            `yaml:"limits"`
	Budgets    []Budget          `yaml:"budgets"`
	Fleet      Fleet             `yaml:"fleet"`
	AccessLog  AccessLog         `yaml:"access_log"`
	// Stats configures the per-cohort statistics (on unless stats.off).
	Stats Stats `yaml:"stats"`
	// MirrorSettings are the process-wide settings of traffic mirroring.
	MirrorSettings MirrorSettings `yaml:"mirror"`
	// TLS, when set, serves a TLS listener beside the plain one.
	TLS *TLS `yaml:"tls"`
	// ClientConfig configures the client config published to apps (client_config).
	ClientConfig ClientConfig `yaml:"client_config"`
	// ForceReshuffle allows a reload that changes a mid-cutover route's salt, keys or
	// from/to (which would move users back and forth). Off by default.
	ForceReshuffle bool `yaml:"force_reshuffle"`

	// Normalised fields, filled by Parse.

	// File is the path the config was read from ("" for bytes without a file).
	File string `yaml:"-"`
	// Dir is the directory relative paths in the file are resolved against.
	Dir string `yaml:"-"`
	// RegionList holds the regions sorted by name; a region's index in it is its
	// small-int identity (RegionID) in this config.
	RegionList []Region `yaml:"-"`
	// SelfRegionID is the index of SelfRegion, or NoRegion.
	SelfRegionID RegionID `yaml:"-"`
	// TrustedProxies and TrustedCallers are the parsed CIDR lists.
	TrustedProxies []netip.Prefix `yaml:"-"`
	TrustedCallers []netip.Prefix `yaml:"-"`
	// Hash is a digest of what the config serves: the file's bytes and the contents
	// of the files it names (contentHash); a reload with the same Hash is a no-op.
	Hash uint64 `yaml:"-"`
	// FileHash is a digest of the file's bytes alone, what the file watcher compares.
	FileHash uint64 `yaml:"-"`
	// Warnings are problems that do not stop serving (a certificate that has
	// expired still serves rather than nothing); `check` reports them and fails.
	Warnings Errors `yaml:"-"`
}

// RegionID is a region's index in Config.RegionList.
type RegionID uint8

// NoRegion marks an absent region.
const NoRegion RegionID = 255

// MaxRegions bounds the number of regions in one config.
const MaxRegions = 32

// AccessLog configures the access log: one JSON line per request.
type AccessLog struct {
	// Path is the file to append to ("-" for stderr; relative to the config file);
	// empty turns the log off (the default). A renamed or removed file (rotation) is
	// opened again within a second.
	Path string `yaml:"path"`
}

// Admin configures the admin listener (status, overrides, metrics).
type Admin struct {
	// Listen defaults to 127.0.0.1:9090. Any address other than loopback needs TokenFile.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token admin requests must carry; required off loopback.
	TokenFile string `yaml:"token_file"`
	// Token is read from TokenFile by Parse.
	Token string `yaml:"-"`
}

// Region is one region (or datacenter) and its upstream servers.
type Region struct {
	Upstreams []string `yaml:"upstreams"`
	// ResolveEvery is how often upstream host names are resolved again (default 30s).
	ResolveEvery Duration `yaml:"resolve_every"`
	// MaxConnsPerUpstream caps connections to each upstream address (default 1024).
	MaxConnsPerUpstream int `yaml:"max_conns_per_upstream"`
	// PipelineConns is how many pipelined connections each upstream address gets for
	// routes with pipeline on (default 2).
	PipelineConns int `yaml:"pipeline_conns"`
	// TLS, when set, speaks TLS to the region's upstreams. Upstreams written
	// https://host:port set it too (with every field at its default).
	TLS *RegionTLS `yaml:"tls"`
	// PublicURL is the base URL apps use to reach the region directly, published in
	// the client config ("" publishes none); an absolute http(s) URL without
	// credentials, query or trailing slash.
	PublicURL string `yaml:"public_url"`

	// Name is the region's key in the regions map.
	Name string `yaml:"-"`
	// ID is the region's index in Config.RegionList.
	ID RegionID `yaml:"-"`
}

// ClientIP says whose X-Forwarded-For to believe.
type ClientIP struct {
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Internal says which peers are internal callers that may carry X-Shift-Region, and
// which other internal headers only they may send.
type Internal struct {
	TrustedCallers []string `yaml:"trusted_callers"`
	// StripHeaders names headers the operator's backends trust (a region, an internal
	// user, a debug flag): a request from a peer outside trusted_callers loses them
	// in every spelling (any case, duplicates, '_' for '-'), like X-Shift-Region.
	StripHeaders []string `yaml:"strip_headers"`
}

// Split holds the defaults every route inherits.
type Split struct {
	From string   `yaml:"from"`
	To   string   `yaml:"to"`
	Salt *string  `yaml:"salt"`
	Keys []string `yaml:"keys"`
}

// Match selects the requests of a route.
type Match struct {
	// Host, when set, must equal the request's host (case-insensitive, port ignored).
	Host string `yaml:"host"`
	// PathPrefix is matched against the request path; the longest prefix wins.
	PathPrefix string `yaml:"path_prefix"`
}

// Route is one route: which requests it takes and how it splits them.
type Route struct {
	Name         string              `yaml:"name"`
	Match        Match               `yaml:"match"`
	From         string              `yaml:"from"`
	To           string              `yaml:"to"`
	Salt         *string             `yaml:"salt"`
	Keys         []string            `yaml:"keys"`
	Percent      *Percent            `yaml:"percent"`
	WritePercent *Percent            `yaml:"write_percent"`
	Force        map[string][]string `yaml:"force"`
	Breaker      Breaker             `yaml:"breaker"`
	// Failover is "none" (default) or "idempotent": a GET/HEAD without a body whose
	// region fails is sent once to the route's other region.
	Failover string   `yaml:"failover"`
	Fallback Fallback `yaml:"fallback"`
	// ForceReshuffle allows this route's salt, keys or from/to to change mid-cutover.
	ForceReshuffle bool `yaml:"force_reshuffle"`
	// Pipeline sends the route's GET and HEAD requests without a body over a few
	// pipelined upstream connections per address, batching many clients' requests
	// into one write and their responses into one read. Responses are buffered (up to
	// limits.max_pipelined_response_bytes), and a pipelined request that fails after
	// it was sent is never replayed to the other region.
	Pipeline bool `yaml:"pipeline"`
	// Mirror copies a share of the route's traffic to another region and compares
	// the answers (see Mirror); nil is off.
	Mirror *Mirror `yaml:"mirror"`
	// LimitRPS caps the route's requests per second (fleet-wide with etcd); 0 is no
	// cap. `shiftgate limit ROUTE` overrides it.
	LimitRPS float64 `yaml:"limit_rps"`
	// Priority orders shedding under the site cap and the byte budgets: critical,
	// normal (the default) or low.
	Priority string `yaml:"priority"`
	// BudgetMode is what a byte budget does to the route's requests it sheds and no
	// cached fallback answers: refuse (503, the default) or pace (hold them back).
	BudgetMode string `yaml:"budget_mode"`
	// Plan is the route's guarded ramp (see Plan); nil is none.
	Plan *Plan `yaml:"plan"`

	// Normalised fields, filled by Parse.

	// Index is the route's position in Config.Routes.
	Index int `yaml:"-"`
	// Line is the line of the route's entry in the file (0 when unknown), for errors
	// found after parsing, such as a reload the reshuffle guard refuses.
	Line int `yaml:"-"`
	// FromID and ToID are the route's regions.
	FromID, ToID RegionID `yaml:"-"`
	// SaltValue is the effective salt (the route's, else the split default's).
	SaltValue string `yaml:"-"`
	// KeySources is the parsed, effective key chain.
	KeySources []KeySource `yaml:"-"`
	// PercentBP and WritePercentBP are the effective percents in basis points (0..10000).
	PercentBP, WritePercentBP int `yaml:"-"`
	// ForceIDs maps a pinned key to its region.
	ForceIDs map[string]RegionID `yaml:"-"`
	// FailoverIdempotent is Failover == "idempotent".
	FailoverIdempotent bool `yaml:"-"`
}

// Breaker configures the circuit breaker of each (route, region). Zero values take the
// defaults: 50 % failures of at least 20 requests in 10 s, open for 5 s, 3 probes.
type Breaker struct {
	MinRequests    int      `yaml:"min_requests"`
	FailureRatio   float64  `yaml:"failure_ratio"`
	Window         Duration `yaml:"window"`
	OpenFor        Duration `yaml:"open_for"`
	HalfOpenProbes int      `yaml:"half_open_probes"`
	// FailureStatuses lists statuses that count as failures: codes (503) or classes
	// ("5xx"). Default: 5xx.
	FailureStatuses []string `yaml:"failure_statuses"`
	// Disabled turns the breaker off for the route.
	Disabled bool `yaml:"disabled"`
	// ConsecutiveFailures, when set, also trips after that many failures in a row,
	// whatever the window's history (default 0: off).
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// SlowCall, when set, trips a hung region on requests still in flight.
	SlowCall *SlowCall `yaml:"slow_call"`

	// FailureRanges are FailureStatuses parsed: inclusive status ranges.
	FailureRanges [][2]int `yaml:"-"`
}

// SlowCall makes requests in flight for Threshold slow: the breaker opens once at
// least MinCalls are, and they are Ratio or more of them plus the requests that ended
// meanwhile (defaults: ratio 0.5, min_calls 5).
type SlowCall struct {
	Threshold Duration `yaml:"threshold"`
	Ratio     float64  `yaml:"ratio"`
	MinCalls  int      `yaml:"min_calls"`
	// AbandonReads cuts, when the breaker opens, the reads still waiting on the
	// region for their answer's head, and sends them to the other region at once;
	// a half-open probe waits at most Threshold. Only for routes with failover:
	// idempotent (default false).
	AbandonReads bool `yaml:"abandon_reads"`
}

// Fallback configures what answers when a route's regions fail.
type Fallback struct {
	Cache  *FallbackCache  `yaml:"cache"`
	Static *FallbackStatic `yaml:"static"`
	Lua    *FallbackLua    `yaml:"lua"`
	// Methods are the request methods a fallback may answer (default GET and HEAD).
	// A write that no region answered must fail visibly, not look saved: a route
	// opts in to answering other methods from the static body or the script by
	// listing them (with GET and HEAD if those are still wanted). Of the listed
	// methods, the cache answers only GET and HEAD.
	Methods []string `yaml:"methods"`
}

// FallbackCache keeps the last good GET responses of a route.
type FallbackCache struct {
	TTL           Duration `yaml:"ttl"`
	MaxBytes      ByteSize `yaml:"max_bytes"`
	MaxEntryBytes ByteSize `yaml:"max_entry_bytes"`
	// Vary lists key sources (as in keys) whose values join the cache key, for
	// per-user lists.
	Vary []string `yaml:"vary"`

	// VarySources is the parsed Vary list.
	VarySources []KeySource `yaml:"-"`
}

// FallbackStatic is a fixed answer.
type FallbackStatic struct {
	Status      int    `yaml:"status"`
	ContentType string `yaml:"content_type"`
	BodyFile    string `yaml:"body_file"`
	Body        string `yaml:"body"`

	// Bytes is the body, read from BodyFile (relative to the config file) or Body.
	Bytes []byte `yaml:"-"`
}

// FallbackLua is a Lua script that builds the answer.
type FallbackLua struct {
	File    string   `yaml:"file"`
	Source  string   `yaml:"source"`
	Timeout Duration `yaml:"timeout"`

	// Code is the script's text, read from File or Source.
	Code string `yaml:"-"`
	// Name names the script in errors (its file, or routes[i].fallback.lua).
	Name string `yaml:"-"`
}

// Timeouts bound every wait. Zero values take the defaults noted.
type Timeouts struct {
	Connect        Duration `yaml:"connect"`         // 2s
	ResponseHeader Duration `yaml:"response_header"` // 10s: upstream's answer head
	Idle           Duration `yaml:"idle"`            // 60s: client keep-alive idle
	RequestHead    Duration `yaml:"request_head"`    // 10s: read a client's request head
	UpstreamIdle   Duration `yaml:"upstream_idle"`   // 30s: pooled upstream connections
	Body           Duration `yaml:"body"`            // 60s: between body reads/writes
	Shutdown       Duration `yaml:"shutdown"`        // 15s: drain on SIGTERM
	// ShutdownDelay is how long, on SIGTERM, the gateway keeps serving with /readyz
	// answering 503 before it stops accepting (0: it stops at once), so that a load
	// balancer that probes /readyz stops sending first. Not part of Shutdown.
	ShutdownDelay Duration `yaml:"shutdown_delay"`
	TunnelGrace   Duration `yaml:"tunnel_grace"` // 30s: before a moved tunnel is closed
	// ParkIdle is how long an idle keep-alive client connection keeps its server
	// goroutine and buffers before it parks (1s); "off": it keeps them until it
	// closes. Read at start.
	ParkIdle OffDuration `yaml:"park_idle"`
}

// Limits bound what a client may send, and the request rate the site takes.
type Limits struct {
	MaxHeaderBytes ByteSize `yaml:"max_header_bytes"` // 64KiB, request line and headers
	MaxConns       int      `yaml:"max_conns"`        // 10000 concurrent client connections
	MaxBodyBytes   ByteSize `yaml:"max_body_bytes"`   // 0: unlimited (bodies are streamed)
	// MaxPipelinedResponseBytes bounds a response read over a pipelined connection,
	// which is buffered whole (default 4MiB); a larger one is a 502.
	MaxPipelinedResponseBytes ByteSize `yaml:"max_pipelined_response_bytes"`
	// SiteRPS caps the requests per second of all routes together (fleet-wide with
	// etcd); 0 is no cap. `shiftgate limit site` overrides it.
	SiteRPS float64 `yaml:"site_rps"`
	// Ramp is how long a cap or budget that the file raises or lifts takes to climb
	// to its new value (0: at once). Lowering applies at once.
	Ramp Duration `yaml:"ramp"`
}

// Fleet configures the shared override store for a fleet of instances.
type Fleet struct {
	Etcd *Etcd `yaml:"etcd"`
}

// Etcd locates the etcd cluster that holds a fleet's overrides.
type Etcd struct {
	Endpoints    []string `yaml:"endpoints"`
	Prefix       string   `yaml:"prefix"`
	DialTimeout  Duration `yaml:"dial_timeout"`
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
	CAFile       string   `yaml:"ca_file"`
	CertFile     string   `yaml:"cert_file"`
	KeyFile      string   `yaml:"key_file"`
	// Instance names this instance in the fleet list (default: host name and listen port).
	Instance string `yaml:"instance"`
	// OnDownAtStart is what an instance serves when it starts while etcd does not
	// answer and its state_dir holds no mirror, so it cannot know the fleet's
	// overrides: "rollback" (the default: everything to each route's from region,
	// which agrees with a rolled-back fleet and otherwise keeps users where a cutover
	// began) or "file" (the file's splits, which may send users to a region the fleet
	// has rolled back from). The etcd values replace it as soon as etcd answers.
	OnDownAtStart string `yaml:"on_down_at_start"`
}

// Region returns the region with the given name.
func (c *Config) Region(name string) (Region, bool) {
	for _, r := range c.RegionList {
		if r.Name == name {
			return r, true
		}
	}
	return Region{}, false
}

// Route returns the route with the given name.
func (c *Config) Route(name string) (*Route, bool) {
	for i := range c.Routes {
		if c.Routes[i].Name == name {
			return &c.Routes[i], true
		}
	}
	return nil, false
}
