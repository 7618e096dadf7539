package wire

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// fasthttp refuses most malformed heads itself (handleParseError answers them). What it
// tolerates, and an edge proxy must not, is checked here, on the raw head bytes it kept:
// a tolerated oddity that a backend or another hop reads differently is how requests
// get smuggled.

var (
	StrHTTP11 = []byte("HTTP/1.1")
	strHTTP10 = []byte("HTTP/1.0")
)

// CheckHead returns why a parsed request head must be refused, or "". One pass over
// the raw header block, no allocation. It refuses:
//   - versions other than HTTP/1.0 and HTTP/1.1 (fasthttp accepts any HTTP/x.y and would
//     forward it as is);
//   - a missing or malformed Host, in any version (the Host routes the request and is
//     forwarded);
//   - a '%' in the target not followed by two hex digits (fasthttp forwards it as is;
//     backends refuse or decode it each their own way);
//   - lines ending in a bare LF, and obs-fold continuation lines (fasthttp joins them,
//     a peer may not);
//   - field names with a space, and Content_Length / Transfer_Encoding spellings;
//   - Content-Length together with Transfer-Encoding, and any Transfer-Encoding but
//     chunked (fasthttp lets chunked win, and reads "identity" as no body at all).
func CheckHead(h *fasthttp.RequestHeader) string {
	if p := h.Protocol(); !bytes.Equal(p, StrHTTP11) && !bytes.Equal(p, strHTTP10) {
		return "unsupported HTTP version"
	}
	if !validHost(h.Host()) {
		return "missing or malformed Host header"
	}
	if !validEscapes(h.RequestURI()) {
		return "malformed percent-encoding in request target"
	}
	raw := h.RawHeaders()
	var cl, te bool
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			break
		}
		line := raw[:i]
		raw = raw[i+1:]
		if len(line) == 0 || line[len(line)-1] != '\r' {
			return "bare LF in request head"
		}
		line = line[:len(line)-1]
		if len(line) == 0 {
			break // the blank line ending the head
		}
		if line[0] == ' ' || line[0] == '\t' {
			return "folded header line (obs-fold)"
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return "malformed header line"
		}
		name := line[:colon]
		if bytes.IndexByte(name, ' ') >= 0 {
			return "space in header name"
		}
		switch name[0] | 0x20 {
		case 'c':
			if FoldEqual(name, "content-length") {
				if bytes.IndexByte(name, '_') >= 0 {
					return "Content-Length spelled with '_'"
				}
				cl = true
			}
		case 't':
			if FoldEqual(name, "transfer-encoding") {
				if bytes.IndexByte(name, '_') >= 0 {
					return "Transfer-Encoding spelled with '_'"
				}
				te = true
			}
		}
	}
	if te {
		if cl {
			return "both Content-Length and Transfer-Encoding"
		}
		if h.ContentLength() != -1 {
			// fasthttp refused every coding but chunked and identity.
			return "unsupported Transfer-Encoding"
		}
	}
	return ""
}

// FoldEqual reports whether name equals want (lower case, with '-') ignoring ASCII
// case and reading '_' as '-', the way CGI-style backends fold header names.
func FoldEqual(name []byte, want string) bool {
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

// validEscapes reports whether every '%' in b starts a %XX escape.
func validEscapes(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '%')
		if i < 0 {
			return true
		}
		if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
			return false
		}
		b = b[i+3:]
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// hostByte marks the bytes a Host value may hold: those of a reg-name, an IPv4
// address or an IP literal, and a port (RFC 3986 section 3.2.2, without userinfo).
var hostByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range []byte("-._~!$&'()*+,;=%:[]") {
		t[c] = true
	}
	return t
}()

func validHost(host []byte) bool {
	if len(host) == 0 {
		return false
	}
	for _, c := range host {
		if !hostByte[c] {
			return false
		}
	}
	return true
}
