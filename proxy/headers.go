package proxy

import (
	"bytes"
	"iter"

	"github.com/valyala/fasthttp"
)

// hopByHop are the headers that describe one connection, not the message: RFC 9110
// section 7.6.1, plus the non-standard ones proxies are known to leak. They never cross
// the proxy in either direction. Connection is handled by stripHeaders; Transfer-Encoding
// is not listed: fasthttp parses it and writes its own framing. "Proxy" is not
// hop-by-hop, but no client has a reason to send it and CGI backends turn it into
// HTTP_PROXY, which their HTTP libraries take as the proxy to use ("httpoxy"). Lower
// case, for foldEqual.
var hopByHop = [...]string{
	"keep-alive", "proxy-connection", "te", "trailer", "upgrade",
	"proxy-authenticate", "proxy-authorization", "proxy",
}

// isRegionHeaderName reports whether name is any spelling of X-Shift-Region: any case,
// and '_' for '-', which CGI-style backends fold into the same variable.
func isRegionHeaderName(name []byte) bool { return foldEqual(name, "x-shift-region") }

var strConnection = []byte("Connection")

// headerFields is what stripHeaders needs of a request or response header.
type headerFields interface {
	All() iter.Seq2[[]byte, []byte]
	DelBytes(key []byte)
}

// mustStrip reports whether a field never crosses the proxy: hop-by-hop fields,
// Connection itself, and X-Shift-Region, each in any case and with '_' for '-' (a
// backend that folds names would read the '_' spelling as the real one). From a
// client, X_Forwarded_For goes too: the gateway writes X-Forwarded-For itself.
func mustStrip(k []byte, fromClient bool) bool {
	switch len(k) {
	case 2, 5, 7, 10, 16, 18, 19:
		for _, h := range hopByHop {
			if foldEqual(k, h) {
				return true
			}
		}
		return foldEqual(k, "connection")
	case 14:
		return isRegionHeaderName(k)
	case 15:
		return fromClient && bytes.IndexByte(k, '_') >= 0 && foldEqual(k, "x-forwarded-for")
	}
	return false
}

// framing are the fields a Connection token may not remove: the message's framing and
// its Host are the proxy's to write, not the peer's to delete.
func isFraming(k []byte) bool {
	return foldEqual(k, "content-length") || foldEqual(k, "transfer-encoding") || foldEqual(k, "host")
}

// stripHeaders removes from h every field mustStrip names and every field named in a
// Connection field (framing aside), matching names whatever their case, the way a
// peer reads them. The common message has none and costs one pass over its fields and
// no allocation.
func stripHeaders[H headerFields](h H, fromClient bool) {
	found := false
	for k := range h.All() {
		if mustStrip(k, fromClient) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	// Slow path: collect the exact stored names first (deleting while iterating
	// would move the fields under the iterator), then delete them one by one.
	var stack [512]byte
	names := stack[:0]
	for k := range h.All() {
		if mustStrip(k, fromClient) || (!isFraming(k) && namedInConnection(h, k)) {
			names = append(names, k...)
			names = append(names, 0)
		}
	}
	for len(names) > 0 {
		i := bytes.IndexByte(names, 0)
		h.DelBytes(names[:i])
		names = names[i+1:]
	}
}

// namedInConnection reports whether a Connection field of h lists k.
func namedInConnection[H headerFields](h H, k []byte) bool {
	named := false
	for ck, v := range h.All() {
		if len(ck) != len(strConnection) || !bytes.EqualFold(ck, strConnection) {
			continue
		}
		forEachToken(v, func(tok []byte) {
			named = named || bytes.EqualFold(tok, k)
		})
		if named {
			return true
		}
	}
	return false
}

// stripRequestHeaders removes hop-by-hop headers, the headers named in Connection and
// every spelling of X-Shift-Region and X_Forwarded_For from a request that is about to
// go upstream.
// The scan for anything to strip is written on the concrete type: through the
// generic stripHeaders the header iterator would be a heap-allocated closure on every
// request.
func stripRequestHeaders(h *fasthttp.RequestHeader) {
	for k := range h.All() {
		if mustStrip(k, true) {
			stripHeaders(h, true)
			return
		}
	}
}

// stripResponseHeaders is stripRequestHeaders for an upstream's response.
func stripResponseHeaders(h *fasthttp.ResponseHeader) {
	for k := range h.All() {
		if mustStrip(k, false) {
			stripHeaders(h, false)
			return
		}
	}
}

// forEachToken calls f for each comma-separated token of v, trimmed.
func forEachToken(v []byte, f func(tok []byte)) {
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		var tok []byte
		if i < 0 {
			tok, v = v, nil
		} else {
			tok, v = v[:i], v[i+1:]
		}
		tok = bytes.TrimSpace(tok)
		if len(tok) > 0 {
			f(tok)
		}
	}
}

// appendForwardedFor sets X-Forwarded-For to the values the client sent (joined, in
// order) followed by the peer's address.
func appendForwardedFor(h *fasthttp.RequestHeader, peer []byte) {
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
