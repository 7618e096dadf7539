package routing

import (
	"net/netip"
	"unsafe"
)

// prefixSet is a list of CIDRs. Lists in configs are short, so a scan beats a trie.
type prefixSet []netip.Prefix

func (s prefixSet) contains(a netip.Addr) bool {
	for _, p := range s {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the address of the client behind req: the TCP peer, unless the peer
// is a trusted proxy, in which case X-Forwarded-For is read from the right and the
// first element that is not itself a trusted proxy is the client. An element that
// does not parse stops the walk at the last trusted hop, so a client cannot choose its
// own address by writing garbage.
func ClientIP(req Request, trusted []netip.Prefix) netip.Addr {
	return clientIP(req, prefixSet(trusted))
}

func clientIP(req Request, trusted prefixSet) netip.Addr {
	peer := req.Peer().Unmap()
	if len(trusted) == 0 || !trusted.contains(peer) {
		return peer
	}
	client := peer
	hdrs := req.ForwardedFor()
	for h := len(hdrs) - 1; h >= 0; h-- {
		v := hdrs[h]
		end := len(v)
		for end > 0 {
			start := end - 1
			for start >= 0 && v[start] != ',' {
				start--
			}
			a, ok := parseAddr(v[start+1 : end])
			end = start
			if !ok {
				return client
			}
			client = a
			if !trusted.contains(a) {
				return a
			}
		}
	}
	return client
}

// parseAddr reads one X-Forwarded-For element: an address, optionally with a port
// ("1.2.3.4:5", "[::1]:5"), surrounded by optional spaces. It does not allocate.
func parseAddr(b []byte) (netip.Addr, bool) {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	if len(b) == 0 || len(b) > 64 {
		return netip.Addr{}, false
	}
	// A failed parse allocates its error, so only the one parser that can succeed is
	// tried, and only on bytes that can spell an address: an address or a port has
	// nothing but hex digits, '.', ':' and brackets before an IPv6 zone ('%').
	// Placeholders such as "unknown" are thus refused without allocating.
	colons := 0
	for _, c := range b {
		if c == '%' {
			break
		}
		if !isAddrByte(c) {
			return netip.Addr{}, false
		}
		if c == ':' {
			colons++
		}
	}
	// ParseAddr keeps no reference to its argument (a zone is copied when interned),
	// so a string view of the bytes is safe and saves the copy.
	s := unsafe.String(&b[0], len(b))
	// "[v6]:port" and "v4:port" (one colon) need ParseAddrPort; an IPv6 address has at
	// least two colons and ParseAddrPort refuses it unbracketed, so ParseAddr.
	if b[0] == '[' || colons == 1 {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().Unmap(), true
		}
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

func isAddrByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' ||
		c == '.' || c == ':' || c == '[' || c == ']'
}
