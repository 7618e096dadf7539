package wire

import (
	"fmt"
	"strings"
)

// maxStripName bounds the length of a name in a StripNames list; header names that
// long are not used by anyone's backends, and the bound keeps the length filter a
// single 64-bit mask.
const maxStripName = 63

// StripNames is a compiled list of header names removed from requests, matched the
// way X-Shift-Region is: any case, '_' read as '-'. It is built once per config
// (internal.strip_headers) and read by any number of requests; it is immutable. The
// nil *StripNames holds no name.
type StripNames struct {
	// lens has bit n set when some name is n bytes long: most fields of a request
	// are rejected by one mask test.
	lens  uint64
	names []string // lower case, '-' for '_'
}

// CompileStripNames folds names (any case, '_' or '-') into a StripNames. A name that
// is not an RFC 9110 token, is longer than 63 bytes, or frames the message (Host,
// Content-Length, Transfer-Encoding: the proxy writes those itself) is an error.
// No names give nil.
func CompileStripNames(names []string) (*StripNames, error) {
	if len(names) == 0 {
		return nil, nil
	}
	s := &StripNames{}
	for _, n := range names {
		if n == "" || len(n) > maxStripName || !isTokenString(n) {
			return nil, fmt.Errorf("header name %q: want a token of 1..%d letters, digits and !#$%%&'*+-.^_`|~", n, maxStripName)
		}
		f := strings.Map(func(r rune) rune {
			if r == '_' {
				return '-'
			}
			return r
		}, strings.ToLower(n))
		if isFraming([]byte(f)) {
			return nil, fmt.Errorf("header name %q frames the request: the gateway writes it itself and cannot strip it", n)
		}
		if !s.Has([]byte(f)) {
			s.names = append(s.names, f)
			s.lens |= 1 << len(f)
		}
	}
	return s, nil
}

// Has reports whether k is one of the names in any spelling. It does not allocate.
func (s *StripNames) Has(k []byte) bool {
	if s == nil || len(k) > maxStripName || s.lens&(1<<len(k)) == 0 {
		return false
	}
	for _, n := range s.names {
		if FoldEqual(k, n) {
			return true
		}
	}
	return false
}

// Len returns how many distinct names s holds.
func (s *StripNames) Len() int {
	if s == nil {
		return 0
	}
	return len(s.names)
}

func isTokenString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
