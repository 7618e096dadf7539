package conf

import (
	"fmt"
	"strings"
)

// KeyKind says where a routing key comes from.
type KeyKind uint8

// Key kinds, in the spelling of the config ("header:X-User-Id", "cookie:uid",
// "query:u", "ip").
const (
	KeyHeader KeyKind = iota + 1
	KeyCookie
	KeyQuery
	KeyIP
)

// String returns the kind as the config spells it.
func (k KeyKind) String() string {
	switch k {
	case KeyHeader:
		return "header"
	case KeyCookie:
		return "cookie"
	case KeyQuery:
		return "query"
	case KeyIP:
		return "ip"
	}
	return "none"
}

// KeySource is one entry of a key chain.
type KeySource struct {
	Kind KeyKind
	// Name is the header, cookie or query parameter name ("" for ip).
	Name string
}

// String returns the source as the config spells it.
func (k KeySource) String() string {
	if k.Kind == KeyIP {
		return "ip"
	}
	return k.Kind.String() + ":" + k.Name
}

// ParseKeySource reads "header:NAME", "cookie:NAME", "query:NAME" or "ip".
func ParseKeySource(s string) (KeySource, error) {
	if s == "ip" {
		return KeySource{Kind: KeyIP}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return KeySource{}, fmt.Errorf("want header:NAME, cookie:NAME, query:NAME or ip, got %q", s)
	}
	var k KeyKind
	switch kind {
	case "header":
		k = KeyHeader
		if !isToken(name) {
			return KeySource{}, fmt.Errorf("header name %q is not a valid HTTP token", name)
		}
	case "cookie":
		k = KeyCookie
		if !isToken(name) {
			return KeySource{}, fmt.Errorf("cookie name %q is not a valid cookie name", name)
		}
	case "query":
		k = KeyQuery
		if strings.ContainsAny(name, "&=#? ") {
			return KeySource{}, fmt.Errorf("query parameter name %q has a reserved character", name)
		}
	default:
		return KeySource{}, fmt.Errorf("unknown key source %q: want header, cookie, query or ip", kind)
	}
	return KeySource{Kind: k, Name: name}, nil
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// maxStripHeaderName bounds a name in internal.strip_headers (the data plane's
// filter keeps name lengths in one 64-bit mask).
const maxStripHeaderName = 63

// checkStripHeaders refuses internal.strip_headers entries that are not header names
// the gateway can strip: tokens of at most 63 bytes, and not the fields that frame
// the request (Host, Content-Length, Transfer-Encoding), which the gateway writes.
func (p *parser) checkStripHeaders(names []string) {
	for i, n := range names {
		path := fmt.Sprintf("internal.strip_headers[%d]", i)
		fold := strings.ReplaceAll(strings.ToLower(n), "_", "-")
		switch {
		case !isToken(n) || len(n) > maxStripHeaderName:
			p.errf(path, "want a header name (a token of at most %d characters), got %q", maxStripHeaderName, n)
		case fold == "host" || fold == "content-length" || fold == "transfer-encoding":
			p.errf(path, "%s frames the request and cannot be stripped", n)
		}
	}
}
