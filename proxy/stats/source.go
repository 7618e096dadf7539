package stats

import (
	"bytes"
	"net/netip"
)

// The user agent families UAFamily returns.
const (
	UACurl           = "curl"
	UAOkHTTP         = "okhttp"
	UAGo             = "Go-http-client"
	UAChrome         = "Chrome"
	UAFirefox        = "Firefox"
	UASafari         = "Safari"
	UAJava           = "Java"
	UAPythonRequests = "python-requests"
	UAOther          = "other"
)

// UAFamily maps a User-Agent header to one of a small fixed set of families (the UA
// constants), for a top-K key that does not explode into every version string. It
// reads the product tokens ("name/version") in one pass: the first library or browser
// token decides, except Safari, which Chrome's and Firefox's iOS agents also name after
// their own token, so it decides only if nothing else does. Edge and Opera name Chrome.
// It does not allocate and does not retain ua.
func UAFamily(ua []byte) string {
	family := UAOther
	for i := bytes.IndexByte(ua, '/'); i >= 0; {
		start := i
		for start > 0 && !isUASep(ua[start-1]) {
			start--
		}
		switch string(ua[start:i]) { // a switch on string(bytes) does not allocate
		case "curl":
			return UACurl
		case "okhttp":
			return UAOkHTTP
		case "Go-http-client":
			return UAGo
		case "python-requests":
			return UAPythonRequests
		case "Java", "Apache-HttpClient":
			return UAJava
		case "Firefox", "FxiOS":
			return UAFirefox
		case "Chrome", "CriOS", "Chromium":
			return UAChrome
		case "Safari":
			family = UASafari
		}
		j := bytes.IndexByte(ua[i+1:], '/')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return family
}

func isUASep(c byte) bool {
	return c == ' ' || c == '(' || c == ')' || c == ';' || c == ',' || c == '\t'
}

// AppendClientPrefix appends the network of a client address to dst, as a top-K key:
// its /24 for IPv4 (and IPv4-mapped IPv6), its /48 for IPv6, e.g. "198.51.100.0/24".
// An invalid address appends "invalid". It allocates only if dst lacks capacity.
func AppendClientPrefix(dst []byte, addr netip.Addr) []byte {
	if !addr.IsValid() {
		return append(dst, "invalid"...)
	}
	addr = addr.Unmap()
	bits := 48
	if addr.Is4() {
		bits = 24
	}
	p, err := addr.WithZone("").Prefix(bits)
	if err != nil {
		return append(dst, "invalid"...)
	}
	return p.AppendTo(dst)
}
