package clientcfg

import "strings"

// normalizePath is the path as the gateway routes it: fasthttp decodes a request
// line's path (%XX, '+' kept) and then removes duplicate slashes, "." segments and
// ".." segments with the one before them. The steps, and their order, are fasthttp's
// (uri.go normalizePath), so that "//api/feed", "/api/x/../feed" and "/api/%66eed"
// match the route of "/api/feed" here as they do there. A path with none of '%',
// "//" and '.' is already normal and is returned as it is, without allocating.
func normalizePath(p string) string {
	if p == "/" || (strings.IndexByte(p, '%') < 0 && !strings.Contains(p, "//") && strings.IndexByte(p, '.') < 0 && strings.HasPrefix(p, "/")) {
		return p
	}
	b := make([]byte, 0, len(p)+1)
	if len(p) == 0 || p[0] != '/' {
		b = append(b, '/')
	}
	b = decodePercent(b, p)
	b = removeSegments(b, "//", false)
	if !strings.Contains(string(b), ".") {
		return string(b)
	}
	b = removeSegments(b, "/./", false)
	b = removeSegments(b, "/../", true)
	if n := strings.LastIndex(string(b), "/.."); n >= 0 && n+3 == len(b) {
		nn := strings.LastIndexByte(string(b[:n]), '/')
		if nn < 0 {
			return "/"
		}
		b = b[:nn+1]
	}
	if strings.HasSuffix(string(b), "/.") {
		b = b[:len(b)-1]
	}
	return string(b)
}

// decodePercent appends src to dst with each %XX decoded; a '%' not followed by two
// hex digits is kept, and a '%' in the last two bytes ends the decoding.
func decodePercent(dst []byte, src string) []byte {
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+3 > len(src) {
			return append(dst, src[i:]...)
		}
		x1, x2 := unhex(src[i+1]), unhex(src[i+2])
		if x1 > 15 || x2 > 15 {
			dst = append(dst, '%')
			continue
		}
		dst = append(dst, x1<<4|x2)
		i += 2
	}
	return dst
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 16
}

// removeSegments removes every occurrence of p from b, in one pass, as each removal
// can make another ("///" becomes "/", "/././" becomes "/"); with parent, the segment
// before each p goes too, a '/' left where it began ("/x/../" removed).
func removeSegments(b []byte, p string, parent bool) []byte {
	n := strings.Index(string(b), p)
	if n < 0 {
		return b
	}
	last := p[len(p)-1]
	w := n
	for r := n; r < len(b); r++ {
		b[w] = b[r]
		w++
		for w >= len(p) && b[w-1] == last && string(b[w-len(p):w]) == p {
			if !parent {
				w -= len(p) - 1
				continue
			}
			w = max(strings.LastIndexByte(string(b[:w-len(p)]), '/'), 0)
			b[w] = '/'
			w++
		}
	}
	return b[:w]
}
