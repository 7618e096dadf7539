package wire

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// hopByHop are the headers that describe one connection, not the message: RFC 9110
// section 7.6.1, plus the non-standard ones proxies are known to leak. They never cross
// the proxy in either direction. Connection is handled by stripHeaders; Transfer-Encoding
// is not listed: fasthttp parses it and writes its own framing. "Proxy" is not
// hop-by-hop, but no client has a reason to send it and CGI backends turn it into
// HTTP_PROXY, which their HTTP libraries take as the proxy to use ("httpoxy"). Lower
// case, for FoldEqual.
var hopByHop = [...]string{
	"keep-alive", "proxy-connection", "te", "trailer", "upgrade",
	"proxy-authenticate", "proxy-authorization", "proxy",
}

// isRegionHeaderName reports whether name is any spelling of X-Shift-Region: any case,
// and '_' for '-', which CGI-style backends fold into the same variable.
func isRegionHeaderName(name []byte) bool { return FoldEqual(name, "x-shift-region") }

var strConnection = []byte("Connection")

// IsGatewayAnswerField reports whether name is one of the fields with which the
// gateway says what it did (X-Shift-Region, X-Shift-Fallback, X-Shift-Shed,
// X-Shift-Config-Version), in any case and with '_' for '-': a backend's must not
// reach the client as the gateway's.
func IsGatewayAnswerField(name []byte) bool {
	switch len(name) {
	case 12:
		return FoldEqual(name, "x-shift-shed")
	case 14:
		return isRegionHeaderName(name)
	case 16:
		return FoldEqual(name, "x-shift-fallback")
	case 22:
		return FoldEqual(name, "x-shift-config-version")
	}
	return false
}

// mustStrip reports whether a field never crosses the proxy: hop-by-hop fields,
// Connection itself, and X-Shift-Region, each in any case and with '_' for '-' (a
// backend that folds names would read the '_' spelling as the real one). From a
// client, X_Forwarded_For and X_Forwarded_Proto go too (the gateway writes
// X-Forwarded-For and X-Forwarded-Proto itself), and X-Shift-Mirror in every spelling.
// From a backend, the gateway's own answer fields go too: X-Shift-Fallback,
// X-Shift-Shed and X-Shift-Config-Version say what this gateway did (a fallback
// answered, it refused, its client config), and a backend's, or an inner gateway's,
// would tell the client and the access log what did not happen here.
func mustStrip(k []byte, fromClient bool) bool {
	switch len(k) {
	case 2, 5, 7, 10, 16, 18, 19:
		for _, h := range hopByHop {
			if FoldEqual(k, h) {
				return true
			}
		}
		return FoldEqual(k, "connection") || (!fromClient && IsGatewayAnswerField(k))
	case 12, 22:
		return !fromClient && IsGatewayAnswerField(k)
	case 14:
		// X-Shift-Mirror marks the gateway's own copies (a backend suppresses side
		// effects for them): a client must not be able to mark a real request.
		return isRegionHeaderName(k) || (fromClient && FoldEqual(k, "x-shift-mirror"))
	case 15:
		return fromClient && bytes.IndexByte(k, '_') >= 0 && FoldEqual(k, "x-forwarded-for")
	case 17:
		return fromClient && bytes.IndexByte(k, '_') >= 0 && FoldEqual(k, "x-forwarded-proto")
	}
	return false
}

// isFraming reports whether k is a field a Connection token may not remove: the
// message's framing and its Host are the proxy's to write, not the peer's to delete.
func isFraming(k []byte) bool {
	return FoldEqual(k, "content-length") || FoldEqual(k, "transfer-encoding") || FoldEqual(k, "host")
}

// The strip functions below collect, in a first pass, whether anything must go and the
// tokens of the Connection fields; in a second, the names to delete (both lists
// NUL-separated, in stack arrays); then delete. They are written out per header type,
// with slices returned rather than stored, so the buffers stay on the stack: only a
// header with unusually many such names makes them grow on the heap.

// appendTokens appends the comma-separated tokens of a Connection value to toks.
func appendTokens(toks, v []byte) []byte {
	for len(v) > 0 {
		var tok []byte
		tok, v = nextToken(v)
		if len(tok) > 0 {
			toks = append(append(toks, tok...), 0)
		}
	}
	return toks
}

func isConnection(k []byte) bool {
	return len(k) == len(strConnection) && FoldEqual(k, "connection")
}

// appendIfStripped appends k to names if it must go: mustStrip, one of extra, or
// named by a token.
func appendIfStripped(names, toks, k []byte, fromClient bool, extra *StripNames) []byte {
	if mustStrip(k, fromClient) || extra.Has(k) || (!isFraming(k) && named(toks, k)) {
		names = append(append(names, k...), 0)
	}
	return names
}

// named reports whether toks lists k.
func named(toks, k []byte) bool {
	for len(toks) > 0 {
		i := bytes.IndexByte(toks, 0)
		if bytes.EqualFold(toks[:i], k) {
			return true
		}
		toks = toks[i+1:]
	}
	return false
}

// nextName splits the first NUL-terminated name off names.
func nextName(names []byte) (name, rest []byte) {
	i := bytes.IndexByte(names, 0)
	return names[:i], names[i+1:]
}

// nextRawField returns the next field of a raw header block (its value untrimmed) and
// the rest, or ok false at its end.
func nextRawField(raw []byte) (k, v, rest []byte, ok bool) {
	i := bytes.IndexByte(raw, '\n')
	if i < 0 {
		return nil, nil, nil, false
	}
	line, rest := raw[:i], raw[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) == 0 {
		return nil, nil, nil, false
	}
	c := bytes.IndexByte(line, ':')
	if c < 0 {
		return nil, nil, rest, true // not a field (a fold CheckHead refuses): skip it
	}
	return line[:c], line[c+1:], rest, true // the value untrimmed: tokens are trimmed
}

// StripRequestHeaders removes hop-by-hop headers, the headers named in Connection
// (framing and Host aside) and every spelling of X-Shift-Region, X_Forwarded_For
// and X_Forwarded_Proto from a request that is about to go upstream, matching names
// whatever their case, the way a peer reads them. It reads the raw head fasthttp kept, which is cheaper than
// its field iterator (that serialises cookies on every call); deleting by the names as
// sent works because fasthttp normalises both sides alike. No allocation.
func StripRequestHeaders(h *fasthttp.RequestHeader) { StripRequestHeadersNamed(h, nil) }

// StripRequestHeadersNamed is StripRequestHeaders that also removes every field named
// in extra, in any spelling (nil: none). The proxy passes the config's
// internal.strip_headers for a peer that is not a trusted caller. No allocation.
func StripRequestHeadersNamed(h *fasthttp.RequestHeader, extra *StripNames) {
	raw := h.RawHeaders()
	if len(raw) == 0 {
		// A header built in code, not parsed: the slower iterator.
		stripRequestFields(h, extra)
		return
	}
	var tb [256]byte
	var nb [512]byte
	toks, names := tb[:0], nb[:0]
	need := false
	for r := raw; ; {
		k, v, rest, ok := nextRawField(r)
		if !ok {
			break
		}
		if mustStrip(k, true) {
			need = true
			if isConnection(k) {
				toks = appendTokens(toks, v)
			}
		} else if extra.Has(k) {
			need = true
		}
		r = rest
	}
	if !need {
		return
	}
	for r := raw; ; {
		k, _, rest, ok := nextRawField(r)
		if !ok {
			break
		}
		names = appendIfStripped(names, toks, k, true, extra)
		r = rest
	}
	for len(names) > 0 {
		var k []byte
		k, names = nextName(names)
		h.DelBytes(k)
	}
}

func stripRequestFields(h *fasthttp.RequestHeader, extra *StripNames) {
	var tb [256]byte
	var nb [512]byte
	toks, names := tb[:0], nb[:0]
	need := false
	for k, v := range h.All() {
		if mustStrip(k, true) {
			need = true
			if isConnection(k) {
				toks = appendTokens(toks, v)
			}
		} else if extra.Has(k) {
			need = true
		}
	}
	if !need {
		return
	}
	for k := range h.All() {
		names = appendIfStripped(names, toks, k, true, extra)
	}
	for len(names) > 0 {
		var k []byte
		k, names = nextName(names)
		h.DelBytes(k)
	}
}

// StripResponseHeaders is StripRequestHeaders for an upstream's response, whose
// names are kept as the upstream spelled them.
func StripResponseHeaders(h *fasthttp.ResponseHeader) {
	var tb [256]byte
	var nb [512]byte
	toks, names := tb[:0], nb[:0]
	need := false
	for k, v := range h.All() {
		if mustStrip(k, false) {
			need = true
			if isConnection(k) {
				toks = appendTokens(toks, v)
			}
		}
	}
	if !need {
		return
	}
	for k := range h.All() {
		names = appendIfStripped(names, toks, k, false, nil)
	}
	for len(names) > 0 {
		var k []byte
		k, names = nextName(names)
		h.DelBytes(k)
	}
}

// nextToken returns the first comma-separated token of v, trimmed, and the rest.
func nextToken(v []byte) (tok, rest []byte) {
	i := bytes.IndexByte(v, ',')
	if i < 0 {
		return bytes.TrimSpace(v), nil
	}
	return bytes.TrimSpace(v[:i]), v[i+1:]
}

// AppendForwardedFor sets X-Forwarded-For to the values the client sent (joined, in
// order) followed by the peer's address.
func AppendForwardedFor(h *fasthttp.RequestHeader, peer []byte) {
	prev := h.PeekAll(fasthttp.HeaderXForwardedFor)
	if len(prev) == 0 {
		h.SetBytesV(fasthttp.HeaderXForwardedFor, peer)
		return
	}
	var stack [256]byte
	buf := stack[:0]
	for _, v := range prev {
		buf = append(buf, v...)
		buf = append(buf, ", "...)
	}
	buf = append(buf, peer...)
	h.Del(fasthttp.HeaderXForwardedFor)
	h.SetBytesV(fasthttp.HeaderXForwardedFor, buf)
}

var (
	// StrXForwardedProto is the name the gateway writes; fasthttp normalises the
	// client's spellings of it (any case) to this one.
	StrXForwardedProto = []byte("X-Forwarded-Proto")
	strHTTP            = []byte("http")
	strHTTPS           = []byte("https")
)

// SetForwardedProto sets X-Forwarded-Proto to "https" when the client's connection
// is TLS and "http" otherwise, replacing every value the client sent, unless keep
// is set and the client sent one: a trusted proxy in front says what its own client
// used. The '_' spellings are gone already (StripRequestHeaders). No allocation.
func SetForwardedProto(h *fasthttp.RequestHeader, tls, keep bool) {
	if keep && len(h.PeekBytes(StrXForwardedProto)) > 0 {
		return
	}
	v := strHTTP
	if tls {
		v = strHTTPS
	}
	h.DelBytes(StrXForwardedProto)
	h.SetBytesKV(StrXForwardedProto, v)
}
