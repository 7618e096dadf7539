package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// hopByHop are the headers that describe one connection, not the message: RFC 9110
// section 7.6.1, plus the non-standard ones proxies are known to leak. They never cross
// the proxy in either direction. Connection and Transfer-Encoding are not listed:
// fasthttp parses them into flags and writes its own framing.
var hopByHop = [...]string{
	"Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade",
	"Proxy-Authenticate", "Proxy-Authorization",
}

// isRegionHeaderName reports whether name is any spelling of X-Shift-Region: any case,
// and '_' for '-', which CGI-style backends fold into the same variable.
func isRegionHeaderName(name []byte) bool {
	const want = "x-shift-region"
	if len(name) != len(want) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		} else if c == '_' {
			c = '-'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// headerScan is what one pass over a header block found.
type headerScan struct {
	hop        bool // a hop-by-hop header is present
	region     int  // spellings of X-Shift-Region present
	connection bool // a Connection header with tokens other than close
}

var (
	strConnection = []byte("Connection")
	strClose      = []byte("close")
	strKeepAlive  = []byte("keep-alive")
)

func scanHeader(all func(yield func(k, v []byte) bool)) headerScan {
	var s headerScan
	all(func(k, v []byte) bool {
		switch {
		case isRegionHeaderName(k):
			s.region++
		case len(k) == len(strConnection) && bytes.EqualFold(k, strConnection):
			s.connection = true
		default:
			for _, h := range hopByHop {
				if len(k) == len(h) && bytes.EqualFold(k, []byte(h)) {
					s.hop = true
					break
				}
			}
		}
		return true
	})
	return s
}

// stripRequestHeaders removes hop-by-hop headers, the headers named in Connection and
// every spelling of X-Shift-Region from a request that is about to go upstream. The
// common request has none of them and costs one pass over its headers.
func stripRequestHeaders(h *fasthttp.RequestHeader) {
	s := scanHeader(func(yield func(k, v []byte) bool) {
		for k, v := range h.All() {
			if !yield(k, v) {
				return
			}
		}
	})
	if s.connection {
		for _, v := range h.PeekAll(fasthttp.HeaderConnection) {
			forEachToken(v, func(tok []byte) {
				if !bytes.EqualFold(tok, strClose) && !bytes.EqualFold(tok, strKeepAlive) {
					h.DelBytes(tok)
				}
			})
		}
		h.Del(fasthttp.HeaderConnection)
	}
	if s.hop {
		for _, name := range hopByHop {
			h.Del(name)
		}
	}
	if s.region > 0 {
		h.Del("X-Shift-Region")
		h.Del("X_Shift_Region")
	}
}

// stripResponseHeaders is stripRequestHeaders for an upstream's response.
func stripResponseHeaders(h *fasthttp.ResponseHeader) {
	s := scanHeader(func(yield func(k, v []byte) bool) {
		for k, v := range h.All() {
			if !yield(k, v) {
				return
			}
		}
	})
	if s.connection {
		for _, v := range h.PeekAll(fasthttp.HeaderConnection) {
			forEachToken(v, func(tok []byte) {
				if !bytes.EqualFold(tok, strClose) && !bytes.EqualFold(tok, strKeepAlive) {
					h.DelBytes(tok)
				}
			})
		}
		h.Del(fasthttp.HeaderConnection)
	}
	if s.hop {
		for _, name := range hopByHop {
			h.Del(name)
		}
	}
	if s.region > 0 {
		h.Del("X-Shift-Region")
		h.Del("X_Shift_Region")
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
