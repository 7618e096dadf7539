package conf

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.yaml.in/yaml/v3"
)

// Defaults applied by Parse where the file is silent.
const (
	DefaultListen      = "127.0.0.1:8080"
	DefaultAdminListen = "127.0.0.1:9090"
	DefaultStateDir    = "./state"
)

// DefaultKeys is the key chain of a route that names none (and whose split names none).
var DefaultKeys = []string{"header:X-User-Id", "cookie:uid", "header:X-Device-Id", "ip"}

// LoadFile reads and parses a config file. Relative paths inside it (state_dir,
// body_file, lua file, token_file) are resolved against the file's directory.
// A file larger than MaxFileBytes is refused unread.
func LoadFile(path string) (*Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes, checks and normalises one config. file names the source in errors and
// locates relative paths; data is the file's bytes. Every problem found is returned as
// Errors, each with line and key path; on error the *Config is nil. Data over
// MaxFileBytes, or a document of more than MaxNodes nodes once its aliases are
// expanded, is refused before anything expands them.
func Parse(file string, data []byte) (*Config, error) {
	p := &parser{file: file}
	if len(data) > MaxFileBytes {
		return nil, Errors{{File: file, Msg: fmt.Sprintf("%d bytes: larger than %d bytes (1 MiB)", len(data), MaxFileBytes)}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{p.yamlError(err, nil)}
	}
	if len(root.Content) == 0 {
		return nil, Errors{{File: file, Msg: "empty config"}}
	}
	if e := checkNodeCount(file, &root, MaxNodes); e != nil {
		return nil, Errors{e}
	}
	p.ix = indexNodes(&root)
	if errs := unknownKeys(p.ix, file, "", root.Content[0], reflect.TypeOf(Config{})); len(errs) > 0 {
		return nil, errs
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var errs Errors
			for _, s := range te.Errors {
				errs = append(errs, p.yamlError(errors.New(s), p.ix))
			}
			return nil, errs
		}
		return nil, Errors{p.yamlError(err, p.ix)}
	}
	c.File = file
	c.Dir = "."
	if file != "" {
		c.Dir = filepath.Dir(file)
	}
	c.Hash = xxhash.Sum64(data)
	c.FileHash = c.Hash
	p.check(&c)
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool { return p.errs[i].Line < p.errs[j].Line })
		return nil, p.errs.unique()
	}
	c.Hash = contentHash(&c, data)
	sort.SliceStable(c.Warnings, func(i, j int) bool { return c.Warnings[i].Line < c.Warnings[j].Line })
	return &c, nil
}

// contentHash is the hash of what a config serves: its bytes and the contents of the
// files it names (static body_file, Lua file, admin token_file), so that a reload
// after one of those changed is not taken for a no-op. Without named files it is the
// hash of the bytes.
func contentHash(c *Config, data []byte) uint64 {
	h := xxhash.New()
	h.Write(data) //nolint:errcheck // a hash takes every write
	for i := range c.Routes {
		f := &c.Routes[i].Fallback
		if s := f.Static; s != nil && s.BodyFile != "" {
			h.Write(s.Bytes) //nolint:errcheck
		}
		if l := f.Lua; l != nil && l.File != "" {
			h.WriteString(l.Code) //nolint:errcheck
		}
	}
	if c.Admin.TokenFile != "" {
		h.WriteString(c.Admin.Token) //nolint:errcheck
	}
	return h.Sum64()
}

// NamedFiles lists the files whose contents the config serves (static body_file,
// Lua file, admin token_file), resolved against the config's directory, each once.
// The TLS files it names are followed by the TLS layer in service.
func (c *Config) NamedFiles() []string {
	var out []string
	seen := map[string]bool{}
	add := func(f string) {
		if f == "" {
			return
		}
		if !filepath.IsAbs(f) {
			f = filepath.Join(c.Dir, f)
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for i := range c.Routes {
		f := &c.Routes[i].Fallback
		if s := f.Static; s != nil {
			add(s.BodyFile)
		}
		if l := f.Lua; l != nil {
			add(l.File)
		}
	}
	add(c.Admin.TokenFile)
	return out
}

// NamedFilesIn lists the files a config's bytes name, as NamedFiles does, read from
// a file that does not parse as a whole (a body_file that does not exist yet, a
// mistake elsewhere): what the watcher follows so that fixing the file reloads it.
// It reads only those keys, with Parse's limits on size and nodes, and returns
// nothing for bytes that are not YAML.
func NamedFilesIn(file string, data []byte) []string {
	if len(data) > MaxFileBytes {
		return nil
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil || len(root.Content) == 0 || checkNodeCount(file, &root, MaxNodes) != nil {
		return nil
	}
	var m struct {
		Admin struct {
			TokenFile string `yaml:"token_file"`
		} `yaml:"admin"`
		Routes []struct {
			Fallback struct {
				Static *FallbackStatic `yaml:"static"`
				Lua    *FallbackLua    `yaml:"lua"`
			} `yaml:"fallback"`
		} `yaml:"routes"`
	}
	root.Content[0].Decode(&m) //nolint:errcheck // a key of the wrong type is left out; the rest stands
	c := Config{Dir: "."}
	if file != "" {
		c.Dir = filepath.Dir(file)
	}
	c.Admin.TokenFile = m.Admin.TokenFile
	for _, r := range m.Routes {
		c.Routes = append(c.Routes, Route{Fallback: Fallback{Static: r.Fallback.Static, Lua: r.Fallback.Lua}})
	}
	return c.NamedFiles()
}

type parser struct {
	file string
	ix   *nodeIndex
	errs Errors
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns the YAML library's "line N: msg" into a located Error.
func (p *parser) yamlError(err error, ix *nodeIndex) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  ")
	e := &Error{File: p.file, Msg: msg}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
		if ix != nil {
			e.Path = ix.pathAt(e.Line)
		}
		if strings.HasPrefix(e.Msg, "did not find expected") {
			// The YAML parser names the line where the enclosing block or bracket
			// begins, not where the mistake is (an unclosed [ or { a few lines down).
			e.Msg += " (in the block or brackets that begin on this line: the mistake is here or below)"
		}
	}
	return e
}

func (p *parser) errf(path, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: p.ix.line(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) unit(path, err string) {
	if err != "" {
		p.errf(path, "%s", err)
	}
}

func (p *parser) resolve(c *Config, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(c.Dir, path)
}

func (p *parser) check(c *Config) {
	applyDefaults(c)
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	p.checkAddr("listen", c.Listen)
	p.checkAdmin(c)
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	c.StateDir = p.resolve(c, c.StateDir)
	if c.AccessLog.Path != "" && c.AccessLog.Path != "-" {
		c.AccessLog.Path = p.resolve(c, c.AccessLog.Path)
	}
	p.checkRegions(c)
	c.TrustedProxies = p.cidrs("client_ip.trusted_proxies", c.ClientIP.TrustedProxies)
	c.TrustedCallers = p.cidrs("internal.trusted_callers", c.Internal.TrustedCallers)
	p.checkStripHeaders(c.Internal.StripHeaders)
	c.SelfRegionID = NoRegion
	if c.SelfRegion != "" {
		if r, ok := c.Region(c.SelfRegion); ok {
			c.SelfRegionID = r.ID
		} else {
			p.errf("self_region", "unknown region %q (have %s)", c.SelfRegion, regionNames(c))
		}
	}
	p.checkTimeouts(c)
	p.checkRoutes(c)
	p.checkLevers(c)
	p.checkFleet(c)
	p.checkMirrorSettings(c)
	p.checkStats(c)
	p.checkTLS(c)
	p.checkClientConfig(c)
}

func (p *parser) checkAddr(path, addr string) {
	if msg := hostPortError(addr, true); msg != "" {
		p.errf(path, "%s", msg)
	}
}

// hostPortError says what is wrong with addr as a host:port, or "" when nothing is.
// The port must be a number from 1 to 65535; a listen address may also say 0 (any
// free port), an upstream may not: the operating system would refuse either only when
// the gateway starts or first dials, far from the line that is wrong.
func hostPortError(addr string, listen bool) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || strings.Contains(addr, "/") {
		return fmt.Sprintf("want host:port, got %q", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || port[0] == '+' || port[0] == '-' {
		return fmt.Sprintf("port %q of %q is not a number", port, addr)
	}
	lo := 1
	if listen {
		lo = 0
	}
	if n < lo || n > 65535 {
		return fmt.Sprintf("port %d of %q is out of range (%d..65535)", n, addr, lo)
	}
	if !listen && host == "" {
		return fmt.Sprintf("want host:port, got %q: the host is missing", addr)
	}
	return ""
}

func (p *parser) checkAdmin(c *Config) {
	a := &c.Admin
	if a.Listen == "" {
		a.Listen = DefaultAdminListen
	}
	p.checkAddr("admin.listen", a.Listen)
	if a.TokenFile != "" {
		b, err := os.ReadFile(p.resolve(c, a.TokenFile))
		if err != nil {
			p.errf("admin.token_file", "%v", err)
		} else if a.Token = strings.TrimSpace(string(b)); len(a.Token) < 16 {
			p.errf("admin.token_file", "token is shorter than 16 characters")
		}
	}
	if a.Token == "" && !IsLoopback(a.Listen) {
		p.errf("admin.listen", "%s is not a loopback address, so the admin API needs a bearer token: set admin.token_file", a.Listen)
	}
}

// IsLoopback reports whether a listen address binds only to loopback.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func regionNames(c *Config) string {
	names := make([]string, len(c.RegionList))
	for i, r := range c.RegionList {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}

func (p *parser) checkRegions(c *Config) {
	if len(c.Regions) == 0 {
		p.errf("regions", "at least one region is needed")
		return
	}
	if len(c.Regions) > MaxRegions {
		p.errf("regions", "at most %d regions, got %d", MaxRegions, len(c.Regions))
		return
	}
	names := make([]string, 0, len(c.Regions))
	for n := range c.Regions {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		r := c.Regions[n]
		path := "regions." + n
		r.Name, r.ID = n, RegionID(i)
		if !isToken(n) {
			p.errf(path, "region name %q must be a token (letters, digits, -_.)", n)
		}
		if len(r.Upstreams) == 0 {
			p.errf(path+".upstreams", "at least one upstream host:port is needed")
		}
		p.checkRegionTLS(c, path, &r)
		for j, u := range r.Upstreams {
			if msg := hostPortError(u, false); msg != "" {
				p.errf(fmt.Sprintf("%s.upstreams[%d]", path, j), "%s", msg)
			}
		}
		p.unit(path+".resolve_every", r.ResolveEvery.err)
		if r.PipelineConns < 0 || r.PipelineConns > 64 {
			p.errf(path+".pipeline_conns", "want 0..64, got %d", r.PipelineConns)
		}
		if r.MaxConnsPerUpstream < 0 {
			p.errf(path+".max_conns_per_upstream", "want >= 0, got %d", r.MaxConnsPerUpstream)
		}
		p.checkPublicURL(path+".public_url", &r)
		c.Regions[n] = r
		c.RegionList = append(c.RegionList, r)
	}
}

func (p *parser) cidrs(path string, in []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(in))
	for i, s := range in {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			// A bare address means just that address.
			if a, err2 := netip.ParseAddr(s); err2 == nil {
				pfx = netip.PrefixFrom(a, a.BitLen())
			} else {
				p.errf(fmt.Sprintf("%s[%d]", path, i), "want a CIDR such as 10.0.0.0/8 or an address, got %q", s)
				continue
			}
		}
		// Peers are compared unmapped, so an IPv4-mapped prefix becomes its IPv4 form.
		if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
		}
		out = append(out, pfx.Masked())
	}
	return out
}

func (p *parser) checkTimeouts(c *Config) {
	t := &c.Timeouts
	for _, u := range []struct {
		name string
		d    *Duration
	}{
		{"connect", &t.Connect}, {"response_header", &t.ResponseHeader}, {"idle", &t.Idle},
		{"request_head", &t.RequestHead}, {"upstream_idle", &t.UpstreamIdle}, {"body", &t.Body},
		{"shutdown", &t.Shutdown}, {"tunnel_grace", &t.TunnelGrace}, {"park_idle", &t.ParkIdle.Duration},
		{"shutdown_delay", &t.ShutdownDelay},
	} {
		p.unit("timeouts."+u.name, u.d.err)
	}
	if d := t.ShutdownDelay.D; d < 0 || d > MaxShutdownDelay {
		p.errf("timeouts.shutdown_delay", "want 0..%s, got %s", MaxShutdownDelay, d)
	}
	l := &c.Limits
	p.unit("limits.max_header_bytes", l.MaxHeaderBytes.err)
	p.unit("limits.max_body_bytes", l.MaxBodyBytes.err)
	p.unit("limits.max_pipelined_response_bytes", l.MaxPipelinedResponseBytes.err)
	if l.MaxHeaderBytes.N != 0 && (l.MaxHeaderBytes.N < 1024 || l.MaxHeaderBytes.N > 16<<20) {
		p.errf("limits.max_header_bytes", "want 1KiB..16MiB, got %d", l.MaxHeaderBytes.N)
	}
	if l.MaxConns < 0 {
		p.errf("limits.max_conns", "want >= 0, got %d", l.MaxConns)
	}
}

func (p *parser) region(c *Config, path, name string) RegionID {
	r, ok := c.Region(name)
	if !ok {
		if name == "" {
			p.errf(path, "a region is needed (set it here or in split)")
		} else {
			p.errf(path, "unknown region %q (have %s)", name, regionNames(c))
		}
		return NoRegion
	}
	return r.ID
}

func (p *parser) keys(path string, in []string) []KeySource {
	out := make([]KeySource, 0, len(in))
	seen := map[KeySource]bool{}
	for i, s := range in {
		k, err := ParseKeySource(s)
		if err != nil {
			p.errf(fmt.Sprintf("%s[%d]", path, i), "%v", err)
			continue
		}
		if seen[k] {
			p.errf(fmt.Sprintf("%s[%d]", path, i), "%s is listed twice", s)
		}
		seen[k] = true
		out = append(out, k)
	}
	return out
}

func (p *parser) checkRoutes(c *Config) {
	if len(c.Routes) == 0 {
		p.errf("routes", "at least one route is needed")
	}
	p.keys("split.keys", c.Split.Keys)
	names := map[string]int{}
	matches := map[Match]int{}
	for i := range c.Routes {
		r := &c.Routes[i]
		path := fmt.Sprintf("routes[%d]", i)
		r.Index = i
		r.Line = p.ix.line(path)
		switch {
		case r.Name == "":
			p.errf(path+".name", "every route needs a name")
		case !isToken(r.Name):
			p.errf(path+".name", "route name %q must be a token (letters, digits, -_.)", r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				p.errf(path+".name", "route %q is already defined at routes[%d]", r.Name, j)
			}
			names[r.Name] = i
		}
		p.checkMatch(path+".match", &r.Match)
		if j, dup := matches[r.Match]; dup {
			p.errf(path+".match", "unreachable: routes[%d] (%s) already matches host %q and path_prefix %q", j, c.Routes[j].Name, r.Match.Host, r.Match.PathPrefix)
		} else {
			matches[r.Match] = i
		}

		from, to := r.From, r.To
		fromPath, toPath := path+".from", path+".to"
		if from == "" {
			from, fromPath = c.Split.From, "split.from"
		}
		if to == "" {
			to, toPath = c.Split.To, "split.to"
		}
		r.FromID = p.region(c, fromPath, from)
		r.ToID = p.region(c, toPath, to)
		r.From, r.To = from, to

		switch {
		case r.Salt != nil:
			r.SaltValue = *r.Salt
		case c.Split.Salt != nil:
			r.SaltValue = *c.Split.Salt
		}
		keys, keysPath := r.Keys, path+".keys"
		if len(keys) == 0 {
			keys, keysPath = c.Split.Keys, "split.keys"
		}
		if len(keys) == 0 {
			keys = DefaultKeys
		}
		r.KeySources = p.keys(keysPath, keys)

		if r.Percent == nil {
			r.Percent = &Percent{}
		}
		p.unit(path+".percent", r.Percent.err)
		r.PercentBP = r.Percent.BP
		r.WritePercentBP = r.PercentBP
		if r.WritePercent != nil {
			p.unit(path+".write_percent", r.WritePercent.err)
			if r.WritePercent.err == "" {
				r.WritePercentBP = r.WritePercent.BP
				// A percent that did not parse has already been reported; comparing
				// with its zero would report the same mistake a second time.
				if r.WritePercentBP > r.PercentBP && r.Percent.err == "" {
					p.errf(path+".write_percent", "%s is above percent %s: a user's writes may not move before their reads",
						FormatBP(r.WritePercentBP), FormatBP(r.PercentBP))
				}
			}
		}
		if r.FromID == r.ToID && r.FromID != NoRegion && r.PercentBP > 0 {
			p.errf(path+".to", "from and to are both %q", from)
		}

		r.ForceIDs = map[string]RegionID{}
		regs := make([]string, 0, len(r.Force))
		for reg := range r.Force {
			regs = append(regs, reg)
		}
		sort.Strings(regs)
		for _, reg := range regs {
			fp := path + ".force." + reg
			id := p.region(c, fp, reg)
			if id != NoRegion && id != r.FromID && id != r.ToID {
				p.errf(fp, "region %q is neither this route's from (%s) nor its to (%s)", reg, from, to)
			}
			for j, k := range r.Force[reg] {
				if k == "" {
					p.errf(fmt.Sprintf("%s[%d]", fp, j), "empty key")
					continue
				}
				if prev, dup := r.ForceIDs[k]; dup && prev != id {
					p.errf(fmt.Sprintf("%s[%d]", fp, j), "key %q is pinned to two regions", k)
				}
				r.ForceIDs[k] = id
			}
		}

		switch r.Failover {
		case "", "none":
			r.Failover = "none"
		case "idempotent":
			r.FailoverIdempotent = true
		default:
			p.errf(path+".failover", "want none or idempotent, got %q", r.Failover)
		}
		p.checkBreaker(path+".breaker", &r.Breaker, r.FailoverIdempotent)
		p.checkMirror(c, path, r)
		p.checkPlan(c, path, r)
		p.checkFallback(c, path+".fallback", r)
	}
}

func (p *parser) checkMatch(path string, m *Match) {
	if m.PathPrefix == "" {
		m.PathPrefix = "/"
	}
	if !strings.HasPrefix(m.PathPrefix, "/") {
		p.errf(path+".path_prefix", "must start with /, got %q", m.PathPrefix)
	}
	for _, c := range []byte(m.PathPrefix) {
		if c <= ' ' || c >= 0x7f || c == '?' || c == '#' {
			p.errf(path+".path_prefix", "%q has a character that cannot appear in a request path", m.PathPrefix)
			break
		}
	}
	m.Host = strings.ToLower(m.Host)
	if m.Host != "" && (strings.ContainsAny(m.Host, "/ :@*") || !isToken(m.Host)) {
		p.errf(path+".host", "want a host name without port or wildcard, got %q", m.Host)
	}
}

// Breaker defaults, from the classic setting: 50 % of at least 20 requests in 10 s,
// open 5 s, then 3 probes.
const (
	DefaultMinRequests    = 20
	DefaultFailureRatio   = 0.5
	DefaultHalfOpenProbes = 3
	DefaultBreakerWindow  = 10 * time.Second
	DefaultBreakerOpenFor = 5 * time.Second
)

func (p *parser) checkBreaker(path string, b *Breaker, failover bool) {
	p.unit(path+".window", b.Window.err)
	p.unit(path+".open_for", b.OpenFor.err)
	if b.MinRequests == 0 {
		b.MinRequests = DefaultMinRequests
	}
	if b.MinRequests < 1 {
		p.errf(path+".min_requests", "want >= 1, got %d", b.MinRequests)
	}
	if b.FailureRatio == 0 {
		b.FailureRatio = DefaultFailureRatio
	}
	if b.FailureRatio <= 0 || b.FailureRatio > 1 {
		p.errf(path+".failure_ratio", "want a ratio in (0, 1], got %v", b.FailureRatio)
	}
	if b.HalfOpenProbes == 0 {
		b.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if b.HalfOpenProbes < 1 {
		p.errf(path+".half_open_probes", "want >= 1, got %d", b.HalfOpenProbes)
	}
	if len(b.FailureStatuses) == 0 {
		b.FailureStatuses = []string{"5xx"}
	}
	for i, s := range b.FailureStatuses {
		lo, hi, err := ParseStatusSpec(s)
		if err != nil {
			p.errf(fmt.Sprintf("%s.failure_statuses[%d]", path, i), "%v", err)
			continue
		}
		b.FailureRanges = append(b.FailureRanges, [2]int{lo, hi})
	}
	if b.Window.D == 0 {
		b.Window.D = DefaultBreakerWindow
	}
	if b.OpenFor.D == 0 {
		b.OpenFor.D = DefaultBreakerOpenFor
	}
	if b.ConsecutiveFailures < 0 {
		p.errf(path+".consecutive_failures", "want >= 0, got %d", b.ConsecutiveFailures)
	}
	if sc := b.SlowCall; sc != nil {
		p.unit(path+".slow_call.threshold", sc.Threshold.err)
		if sc.Threshold.D <= 0 && sc.Threshold.err == "" {
			p.errf(path+".slow_call.threshold", "want a duration such as 500ms")
		}
		if sc.Ratio == 0 {
			sc.Ratio = DefaultSlowCallRatio
		}
		if sc.Ratio <= 0 || sc.Ratio > 1 {
			p.errf(path+".slow_call.ratio", "want a ratio in (0, 1], got %v", sc.Ratio)
		}
		if sc.MinCalls == 0 {
			sc.MinCalls = DefaultSlowCallMin
		}
		if sc.MinCalls < 1 {
			p.errf(path+".slow_call.min_calls", "want >= 1, got %d", sc.MinCalls)
		}
		if sc.AbandonReads && !failover {
			p.errf(path+".slow_call.abandon_reads", "an abandoned read is sent to the other region: needs failover: idempotent on the route")
		}
	}
}

// Slow-call defaults.
const (
	DefaultSlowCallRatio = 0.5
	DefaultSlowCallMin   = 5
)

// ParseStatusSpec reads a status code ("503", 100..599) or class ("5xx", "1xx".."5xx",
// the x's in either case) into an inclusive range. It is the one grammar of statuses:
// the breaker takes the ranges it gives.
func ParseStatusSpec(s string) (lo, hi int, err error) {
	bad := fmt.Errorf("want a status code 100..599 (503) or a class 1xx..5xx (5xx), got %q", s)
	if len(s) != 3 {
		return 0, 0, bad
	}
	if (s[1] == 'x' || s[1] == 'X') && (s[2] == 'x' || s[2] == 'X') {
		if s[0] < '1' || s[0] > '5' {
			return 0, 0, bad
		}
		c := int(s[0]-'0') * 100
		return c, c + 99, nil
	}
	n := 0
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, 0, bad
		}
		n = n*10 + int(s[i]-'0')
	}
	if n < 100 || n > 599 {
		return 0, 0, bad
	}
	return n, n, nil
}

// Fallback defaults.
const (
	DefaultCacheTTL      = 10 * 60 // seconds
	DefaultCacheMaxBytes = 64 << 20
	DefaultEntryMaxBytes = 1 << 20
	DefaultLuaTimeoutMS  = 50
)

func (p *parser) checkFallback(c *Config, path string, r *Route) {
	f := &r.Fallback
	for i, m := range f.Methods {
		if !isMethod(m) {
			p.errf(fmt.Sprintf("%s.methods[%d]", path, i), "want an HTTP method in capitals such as GET or POST, got %q", m)
		}
	}
	if fc := f.Cache; fc != nil {
		p.unit(path+".cache.ttl", fc.TTL.err)
		p.unit(path+".cache.max_bytes", fc.MaxBytes.err)
		p.unit(path+".cache.max_entry_bytes", fc.MaxEntryBytes.err)
		fc.VarySources = p.keys(path+".cache.vary", fc.Vary)
		if fc.MaxEntryBytes.N > fc.MaxBytes.N {
			p.errf(path+".cache.max_entry_bytes", "is above max_bytes")
		}
	}
	if s := f.Static; s != nil {
		if s.Status == 0 {
			s.Status = 200
		}
		if s.Status < 200 || s.Status > 599 {
			p.errf(path+".static.status", "want 200..599, got %d", s.Status)
		}
		switch {
		case s.BodyFile != "" && s.Body != "":
			p.errf(path+".static", "set body or body_file, not both")
		case s.BodyFile != "":
			b, err := os.ReadFile(p.resolve(c, s.BodyFile))
			if err != nil {
				p.errf(path+".static.body_file", "%v", err)
			}
			s.Bytes = b
		default:
			s.Bytes = []byte(s.Body)
		}
	}
	if l := f.Lua; l != nil {
		p.unit(path+".lua.timeout", l.Timeout.err)
		switch {
		case l.File != "" && l.Source != "":
			p.errf(path+".lua", "set file or source, not both")
		case l.File != "":
			b, err := os.ReadFile(p.resolve(c, l.File))
			if err != nil {
				p.errf(path+".lua.file", "%v", err)
			}
			l.Code, l.Name = string(b), l.File
		case l.Source != "":
			l.Code, l.Name = l.Source, path+".lua.source"
		default:
			p.errf(path+".lua", "set file or source")
		}
	}
}

// isMethod reports whether m is a method name as requests spell it: a token of
// capital letters (methods are case-sensitive, and every registered one is capitals).
func isMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for _, c := range []byte(m) {
		if (c < 'A' || c > 'Z') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func (p *parser) checkFleet(c *Config) {
	e := c.Fleet.Etcd
	if e == nil {
		return
	}
	if len(e.Endpoints) == 0 {
		p.errf("fleet.etcd.endpoints", "at least one endpoint is needed")
	}
	switch e.OnDownAtStart {
	case "":
		e.OnDownAtStart = "rollback"
	case "rollback", "file":
	default:
		p.errf("fleet.etcd.on_down_at_start", "want rollback or file, got %q", e.OnDownAtStart)
	}
	if e.Prefix == "" || !strings.HasPrefix(e.Prefix, "/") {
		p.errf("fleet.etcd.prefix", "want a key prefix such as /shiftgate/prod/, got %q", e.Prefix)
	} else if !strings.HasSuffix(e.Prefix, "/") {
		e.Prefix += "/"
	}
	p.unit("fleet.etcd.dial_timeout", e.DialTimeout.err)
	for _, f := range []*string{&e.PasswordFile, &e.CAFile, &e.CertFile, &e.KeyFile} {
		*f = p.resolve(c, *f)
	}
}
