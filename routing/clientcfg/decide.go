package clientcfg

import "strings"

// Request is what a client knows of a call it is about to make. The zero value is a
// GET of "/" with no key.
type Request struct {
	// Method is compared ASCII case-insensitively; "" means GET. GET, HEAD and OPTIONS
	// read, anything else writes.
	Method string `json:"method,omitempty"`
	// Host may carry a port and any case.
	Host string `json:"host,omitempty"`
	// Path is the URL path without the query string; "" means "/". It is decoded and
	// normalised as the gateway's does before it routes ("//a/./b/../c" is "/a/c").
	Path string `json:"path,omitempty"`
	// Headers are looked up by exact name first, then ASCII case-insensitively.
	// Spaces and tabs around a header or cookie value are dropped, as the gateway
	// drops them; a value of only those is empty. Query values are taken as they are.
	Headers map[string]string `json:"headers,omitempty"`
	// Cookies and Query are looked up by exact name. A cookie value is also taken
	// without one pair of enclosing double quotes (CookieValue).
	Cookies map[string]string `json:"cookies,omitempty"`
	Query   map[string]string `json:"query,omitempty"`
	// IP is the client's address as the gateway sees it, if the client knows it; any
	// form net/netip parses. Leave it empty when unknown: the ip source is skipped.
	IP string `json:"ip,omitempty"`
}

// Reason says why a Decision went where it did. The names are the gateway's.
type Reason string

// Reasons a client-side decision can have.
const (
	// ReasonNoConfig: Decide had no config; ask the gateway.
	ReasonNoConfig Reason = "no_config"
	// ReasonUnsupported: the config names another algorithm; ask the gateway.
	ReasonUnsupported Reason = "unsupported"
	// ReasonNoRoute: no route matched; the gateway will answer 404 or its default.
	ReasonNoRoute Reason = "no_route"
	// ReasonRollback: rollback is on, everything goes to From.
	ReasonRollback Reason = "rollback"
	// ReasonNoKey: no key source was present and non-empty; From.
	ReasonNoKey Reason = "no_key"
	// ReasonSplit: the key's bucket was compared with the threshold.
	ReasonSplit Reason = "split"
)

// Decision is a client-side decision. Its strings point into the Config, so keeping
// a Decision keeps those strings (not the Config) alive.
type Decision struct {
	// Route is the matched route's name, "" when none matched.
	Route string `json:"route"`
	// Region is where the request goes, "" when the client cannot tell (no config,
	// unsupported algorithm, no route): it should then call its default address.
	Region string `json:"region"`
	// URL is the Region's public_url, "" when the config has none for it.
	URL string `json:"url"`
	// Bucket is the key's bucket, -1 when no key was hashed.
	Bucket int `json:"bucket"`
	// Threshold is the basis-point threshold that applies to this request (write or
	// read), 0 when no route matched.
	Threshold int `json:"threshold"`
	// KeySource is the key source used, as the config spells it, "" when none.
	KeySource string `json:"key_source"`
	Reason    Reason `json:"reason"`
	// Cutoff asks the client not to call at all and to serve its local cache: the
	// site-wide cutoff or the route's.
	Cutoff bool `json:"cutoff"`
	// Write is set for methods other than GET, HEAD and OPTIONS.
	Write bool `json:"write"`
}

// Decide makes the gateway's decision on the client side: the route by host and
// longest path prefix; rollback sends to From; the key is the first present,
// non-empty source of the route's chain (header and cookie values without surrounding
// spaces and tabs); no key sends to From; writes compare with
// write_percent; bucket < round(percent × 100) goes to To. Forced keys are not in the
// client config, so the gateway may still send a forced key elsewhere.
//
// Decide is pure and safe for concurrent use. It allocates nothing unless it parses
// an IP that is not an address or carries a zone. It reads the public fields of cfg as they are, so
// a Config built in code needs no compiling, and cfg may be nil.
func Decide(cfg *Config, req Request) Decision {
	d := Decision{Bucket: -1}
	if cfg == nil {
		d.Reason = ReasonNoConfig
		return d
	}
	d.Cutoff = cfg.Cutoff
	if cfg.Algorithm != Algorithm {
		d.Reason = ReasonUnsupported
		return d
	}
	d.Write = isWrite(req.Method)
	path := req.Path
	if path == "" {
		path = "/"
	}
	idx := match(cfg.Routes, req.Host, normalizePath(path))
	if idx < 0 {
		d.Reason = ReasonNoRoute
		return d
	}
	r := &cfg.Routes[idx]
	d.Route = r.Name
	d.Cutoff = cfg.Cutoff || r.Cutoff
	if d.Write {
		d.Threshold = Threshold(r.WritePercent)
	} else {
		d.Threshold = Threshold(r.Percent)
	}
	if cfg.Rollback {
		return d.at(cfg, r.From, ReasonRollback)
	}
	var buf [64]byte
	src, key, keyb := findKey(r, &req, &buf)
	if src < 0 {
		return d.at(cfg, r.From, ReasonNoKey)
	}
	d.KeySource = r.Keys[src]
	d.Bucket = int(sum64(r.Salt, key, keyb) % Buckets)
	if d.Bucket < d.Threshold {
		return d.at(cfg, r.To, ReasonSplit)
	}
	return d.at(cfg, r.From, ReasonSplit)
}

func (d Decision) at(cfg *Config, region string, why Reason) Decision {
	d.Region, d.Reason = region, why
	d.URL = cfg.Regions[region].PublicURL
	return d
}

// ClientHeader is the X-Shift-Client value that tells the gateway what the client
// decided: "REGION;v=VERSION". It returns "" when d has no region.
func ClientHeader(cfg *Config, d Decision) string {
	if d.Region == "" || cfg == nil {
		return ""
	}
	return d.Region + ";v=" + cfg.Version
}

// match returns the index of the route for host and path, or -1, with the gateway's
// rules: a route whose host matches wins over routes without a host; among those, the
// longest path prefix; on a tie, the first.
func match(routes []Route, host, path string) int {
	host = stripPort(host)
	best, bestLen, bestHost := -1, -1, false
	for i := range routes {
		m := &routes[i].Match
		if !strings.HasPrefix(path, m.PathPrefix) {
			continue
		}
		if m.Host != "" {
			if !equalFoldASCII(m.Host, host) {
				continue
			}
			if !bestHost || len(m.PathPrefix) > bestLen {
				best, bestLen, bestHost = i, len(m.PathPrefix), true
			}
		} else if !bestHost && len(m.PathPrefix) > bestLen {
			best, bestLen = i, len(m.PathPrefix)
		}
	}
	return best
}

// stripPort drops a trailing ":port", but not the colons of a bracketed IPv6 literal
// without one, as the gateway's host normalization does.
func stripPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.LastIndexByte(host, ']') < i {
		return host[:i]
	}
	return host
}

// findKey returns the index of the first present, non-empty key source of r and its
// value, as a string or (for ip) as bytes in buf; -1 when there is none.
func findKey(r *Route, req *Request, buf *[64]byte) (int, string, []byte) {
	for i, k := range r.Keys {
		kind, name, ok := parseKey(k)
		if !ok {
			continue
		}
		var v string
		switch kind {
		case keyHeader:
			v = header(req.Headers, name)
		case keyCookie:
			v = CookieValue(req.Cookies[name])
		case keyQuery:
			v = req.Query[name]
		case keyIP:
			if req.IP == "" {
				continue
			}
			if b, ok := appendIPKey(buf[:0], req.IP); ok {
				return i, "", b
			}
			continue
		}
		if v != "" {
			return i, v, nil
		}
	}
	return -1, "", nil
}

// header returns the named header's value without its surrounding optional
// whitespace, "" when absent or blank: exact name first, then ASCII
// case-insensitively.
func header(h map[string]string, name string) string {
	if v := trimOWS(h[name]); v != "" {
		return v
	}
	for k, v := range h {
		if v = trimOWS(v); v != "" && equalFoldASCII(k, name) {
			return v
		}
	}
	return ""
}

// CookieValue is a cookie's value as the gateway's parser reads it from a Cookie
// header: without the spaces and tabs around it, then without one pair of enclosing
// double quotes (RFC 6265's quoted cookie-value; document.cookie and some servers'
// parsers keep them), so "u-1" and u-1 are one key. A value that still holds a
// double quote, a semicolon or a backslash is dropped by the gateway's parser as if
// the cookie were absent: "" here, and the next key source applies.
func CookieValue(v string) string {
	v = trimOWS(v)
	if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if strings.ContainsAny(v, "\";\\") {
		return ""
	}
	return v
}

// trimOWS drops leading and trailing spaces and horizontal tabs. HTTP's optional
// whitespace around a field value is not part of the value (RFC 9110, 5.5): the
// gateway's parser trims it, so " 1 " is the key "1", and a value of only
// whitespace is empty, so the next key source applies. Nothing else is trimmed
// (not CR, LF, VT, FF or U+00A0), unlike strings.TrimSpace.
func trimOWS(s string) string {
	i, j := 0, len(s)
	for i < j && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	for j > i && (s[j-1] == ' ' || s[j-1] == '\t') {
		j--
	}
	return s[i:j]
}

// isWrite reports whether a method may change state: anything but GET, HEAD and
// OPTIONS, in any case; "" is GET.
func isWrite(m string) bool {
	return !(m == "" || equalFoldASCII(m, "GET") || equalFoldASCII(m, "HEAD") || equalFoldASCII(m, "OPTIONS"))
}

// equalFoldASCII compares ASCII case-insensitively; other bytes must be equal, as in
// the gateway (strings.EqualFold would also fold non-ASCII letters).
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
