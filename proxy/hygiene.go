package proxy

import (
	"bytes"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// fasthttp refuses most malformed heads itself (handleParseError answers them). What it
// tolerates, and an edge proxy must not, is checked here, on the raw head bytes it kept:
// a tolerated oddity that a backend or another hop reads differently is how requests
// get smuggled.

var (
	strHTTP11 = []byte("HTTP/1.1")
	strHTTP10 = []byte("HTTP/1.0")
)

// checkHead returns why a parsed request head must be refused, or "". One pass over
// the raw header block, no allocation. It refuses:
//   - versions other than HTTP/1.0 and HTTP/1.1 (fasthttp accepts any HTTP/x.y and would
//     forward it as is);
//   - a missing or malformed Host, in any version (the Host routes the request and is
//     forwarded);
//   - lines ending in a bare LF, and obs-fold continuation lines (fasthttp joins them,
//     a peer may not);
//   - field names with a space, and Content_Length / Transfer_Encoding spellings;
//   - Content-Length together with Transfer-Encoding, and any Transfer-Encoding but
//     chunked (fasthttp lets chunked win, and reads "identity" as no body at all).
func checkHead(h *fasthttp.RequestHeader) string {
	if p := h.Protocol(); !bytes.Equal(p, strHTTP11) && !bytes.Equal(p, strHTTP10) {
		return "unsupported HTTP version"
	}
	if !validHost(h.Host()) {
		return "missing or malformed Host header"
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
			if foldEqual(name, "content-length") {
				if bytes.IndexByte(name, '_') >= 0 {
					return "Content-Length spelled with '_'"
				}
				cl = true
			}
		case 't':
			if foldEqual(name, "transfer-encoding") {
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

// lineListener wraps each accepted connection in a lineConn.
type lineListener struct{ net.Listener }

func (l lineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lineConn{Conn: c}, nil
}

// lineConn is a client connection that knows how many bytes it has read since the
// last LF. When a head overflows fasthttp's read buffer, the buffer holds exactly the
// last bytes read, from the start of the request; if none of them is an LF, the request
// line alone did not fit (414), else the fields did not (431). fasthttp resets the
// parsed head before its error handler runs, so this is the one place the difference
// survives. It costs a byte search per read and no allocation; it is used by one
// goroutine at a time.
type lineConn struct {
	net.Conn
	sinceLF int
}

func (c *lineConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		b := p[:n]
		// IndexByte is vectorised: bodies without LF cost little.
		if bytes.IndexByte(b, '\n') < 0 {
			c.sinceLF = min(c.sinceLF+n, 1<<30)
		} else {
			c.sinceLF = n - 1 - bytes.LastIndexByte(b, '\n')
		}
	}
	return n, err
}

// SetKeepAlive and SetKeepAlivePeriod pass fasthttp's TCP keep-alive settings on.
func (c *lineConn) SetKeepAlive(on bool) error {
	if k, ok := c.Conn.(interface{ SetKeepAlive(bool) error }); ok {
		return k.SetKeepAlive(on)
	}
	return nil
}

func (c *lineConn) SetKeepAlivePeriod(d time.Duration) error {
	if k, ok := c.Conn.(interface{ SetKeepAlivePeriod(time.Duration) error }); ok {
		return k.SetKeepAlivePeriod(d)
	}
	return nil
}

// CloseWrite half-closes the connection, for tunnels.
func (c *lineConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// requestLineTooLong reports whether the head of ctx overflowed a read buffer of size
// bytes before its request line ended.
func requestLineTooLong(ctx *fasthttp.RequestCtx, size int) bool {
	c, ok := ctx.Conn().(*lineConn)
	return ok && c.sinceLF >= size
}

// foldEqual reports whether name equals want (lower case, with '-') ignoring ASCII
// case and reading '_' as '-', the way CGI-style backends fold header names.
func foldEqual(name []byte, want string) bool {
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

// clientBody wraps a streamed request body so that a failure to read it (a broken
// chunk, a client that stops sending or goes away) is told apart from a failure of the
// upstream the body was being written to: the first is the client's fault, must not
// count against the region's breaker and is answered 400. Its read errors come out
// as *clientBodyError, through the upstream client's error.
type clientBody struct {
	r io.Reader
}

// clientBodyError is a read error of the client's request body.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "client request body: " + e.err.Error() }

// Unwrap is deliberately absent: fasthttp turns any error with a Timeout method into
// its own ErrTimeout, which would make a stalled client look like a stalled upstream.

var clientBodyPool = sync.Pool{New: func() any { return new(clientBody) }}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &clientBodyError{err}
	}
	return n, err
}

// watchClientBody puts a clientBody around the request's streamed body, if it has one,
// and returns it (or nil). The caller releases it once the request has been forwarded.
func watchClientBody(ctx *fasthttp.RequestCtx) *clientBody {
	r := ctx.Request.BodyStream()
	if r == nil {
		return nil
	}
	b := clientBodyPool.Get().(*clientBody)
	b.r = r
	// SetBodyStream keeps the length: Content-Length, or -1 for chunked.
	ctx.Request.SetBodyStream(b, ctx.Request.Header.ContentLength())
	return b
}

func (b *clientBody) release() {
	if b == nil {
		return
	}
	b.r = nil
	clientBodyPool.Put(b)
}
