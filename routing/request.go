package routing

import "net/netip"

// Request is the part of an HTTP request that Decide reads. The proxy implements it on
// its request context without copying; tests and other services implement it on
// whatever they hold. Methods are called only during Decide, and Decide keeps none of
// the returned slices.
type Request interface {
	// Method returns the request method (GET, POST, ...).
	Method() []byte
	// Header returns the first value of the named header, or nil. name is spelled as in
	// the config; matching is case-insensitive.
	Header(name string) []byte
	// Cookie returns the named cookie's value, or nil.
	Cookie(name string) []byte
	// Query returns the named query parameter's first value, or nil.
	Query(name string) []byte
	// Peer returns the address of the TCP peer.
	Peer() netip.Addr
	// ForwardedFor returns the X-Forwarded-For header values in the order received
	// (nil when there are none).
	ForwardedFor() [][]byte
}

// StaticRequest is a Request built from plain values, for the CLI, the admin API's
// decide endpoint and tests. Header names are matched case-insensitively.
type StaticRequest struct {
	MethodName string
	Headers    [][2]string
	Cookies    map[string]string
	QueryArgs  map[string]string
	PeerAddr   netip.Addr
}

// Method implements Request.
func (r *StaticRequest) Method() []byte { return []byte(r.MethodName) }

// Header implements Request.
func (r *StaticRequest) Header(name string) []byte {
	for _, h := range r.Headers {
		if equalFold(h[0], name) {
			return []byte(h[1])
		}
	}
	return nil
}

// Cookie implements Request.
func (r *StaticRequest) Cookie(name string) []byte {
	if v, ok := r.Cookies[name]; ok {
		return []byte(v)
	}
	return nil
}

// Query implements Request.
func (r *StaticRequest) Query(name string) []byte {
	if v, ok := r.QueryArgs[name]; ok {
		return []byte(v)
	}
	return nil
}

// Peer implements Request.
func (r *StaticRequest) Peer() netip.Addr { return r.PeerAddr }

// ForwardedFor implements Request.
func (r *StaticRequest) ForwardedFor() [][]byte {
	var out [][]byte
	for _, h := range r.Headers {
		if equalFold(h[0], "X-Forwarded-For") {
			out = append(out, []byte(h[1]))
		}
	}
	return out
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
