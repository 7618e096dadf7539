package routing

import (
	"net/netip"

	"github.com/shiftgate/shiftgate/conf"
)

// RegionHeader carries the region the edge chose: set on upstream requests and
// responses, and believed from trusted internal callers (region affinity).
const RegionHeader = "X-Shift-Region"

// Reason says why a Decision went where it did.
type Reason uint8

// Reasons, in the order Decide considers them.
const (
	ReasonNoRoute    Reason = iota // no route matched
	ReasonRollback                 // rollback is on: everything to from
	ReasonAffinity                 // a trusted internal caller named the region
	ReasonForce                    // the key is pinned by the route's force list
	ReasonSplit                    // the key's bucket against the threshold
	ReasonSelfRegion               // an internal call without key stays in this instance's region
	ReasonNoKey                    // no key source present: from
)

var reasonNames = [...]string{"no_route", "rollback", "affinity", "force", "split", "self_region", "no_key"}

// String returns the reason's name as the CLI, the admin API and metrics print it.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}

// NoSource marks a Decision made without a key.
const NoSource = -1

// Decision is the outcome of Decide: a small value with no pointers, so it costs
// nothing to return and keep.
type Decision struct {
	// Route is the matched route's index, or -1 with ReasonNoRoute.
	Route int32
	// Bucket is the key's bucket (0..9999), or -1 when no key was hashed.
	Bucket int32
	// Threshold is the basis-point threshold the bucket was compared with (read or
	// write split), or the route's read split when no key was hashed.
	Threshold int32
	// Source is the index of the key source used in the route's key chain, or NoSource.
	Source int8
	// Region is where the request goes.
	Region conf.RegionID
	// Other is the route's other region (failover candidate), or conf.NoRegion.
	Other  conf.RegionID
	Reason Reason
	// Write is set for methods other than GET, HEAD and OPTIONS.
	Write bool
	// Internal is set when the peer is a trusted internal caller.
	Internal bool
}

// Decide routes one request. It is pure: no I/O, no locks, no allocation.
func (t *Table) Decide(host, path []byte, req Request) Decision {
	var buf [64]byte
	d, _ := t.decide(host, path, req, &buf)
	return d
}

// decide returns the decision and the key it hashed (nil when none), which may point
// into buf.
func (t *Table) decide(host, path []byte, req Request, buf *[64]byte) (Decision, []byte) {
	d := Decision{Route: -1, Bucket: -1, Source: NoSource, Region: conf.NoRegion, Other: conf.NoRegion}
	idx := t.Match(host, path)
	if idx < 0 {
		return d, nil
	}
	r := &t.routes[idx]
	d.Route = int32(idx)
	d.Write = isWrite(req.Method())
	d.Threshold = int32(r.readBP)
	if d.Write {
		d.Threshold = int32(r.writeBP)
	}
	if t.rollback {
		return d.to(r, r.from, ReasonRollback), nil
	}
	peer := req.Peer().Unmap()
	d.Internal = t.trustedCall.contains(peer)
	if d.Internal {
		if name := req.Header(RegionHeader); len(name) > 0 {
			if id, ok := t.RegionID(name); ok && (id == r.from || id == r.to) {
				return d.to(r, id, ReasonAffinity), nil
			}
		}
	}
	key, src := t.key(r, req, peer, buf)
	if src == NoSource {
		if d.Internal && t.selfRegion != conf.NoRegion && (t.selfRegion == r.from || t.selfRegion == r.to) {
			return d.to(r, t.selfRegion, ReasonSelfRegion), nil
		}
		return d.to(r, r.from, ReasonNoKey), nil
	}
	d.Source = int8(src)
	if r.forceLens&(1<<min(len(key), 63)) != 0 {
		// The string conversion in a map index does not allocate.
		if id, ok := r.force[string(key)]; ok {
			return d.to(r, id, ReasonForce), key
		}
	}
	d.Bucket = int32(r.seed.bucket(key))
	if d.Bucket < d.Threshold {
		return d.to(r, r.to, ReasonSplit), key
	}
	return d.to(r, r.from, ReasonSplit), key
}

func (d Decision) to(r *route, region conf.RegionID, why Reason) Decision {
	d.Region, d.Reason = region, why
	switch {
	case r.from == r.to:
	case region == r.from:
		d.Other = r.to
	default:
		d.Other = r.from
	}
	return d
}

// Key returns the key d was made with: the value of the one key source d.Source
// names, read from req again (an ip key is printed into buf). It decides nothing: a
// later step that needs the key (a Lua fallback, a log) reads it from the decision
// instead of routing the request a second time. It returns nil when d used no key.
func (t *Table) Key(d Decision, req Request, buf *[64]byte) []byte {
	if d.Source == NoSource || d.Route < 0 || int(d.Route) >= len(t.routes) {
		return nil
	}
	r := &t.routes[d.Route]
	if int(d.Source) >= len(r.keys) {
		return nil
	}
	switch k := r.keys[d.Source]; k.Kind {
	case conf.KeyHeader:
		return req.Header(k.Name)
	case conf.KeyCookie:
		return req.Cookie(k.Name)
	case conf.KeyQuery:
		return req.Query(k.Name)
	case conf.KeyIP:
		a := req.Peer().Unmap()
		if len(t.trustedIP) > 0 {
			a = clientIP(req, t.trustedIP)
		}
		if a.IsValid() {
			return a.AppendTo(buf[:0])
		}
	}
	return nil
}

// key returns the value of the first present, non-empty key source and its index.
// For the ip source the address is printed into buf.
func (t *Table) key(r *route, req Request, peer netip.Addr, buf *[64]byte) ([]byte, int) {
	for i, k := range r.keys {
		var v []byte
		switch k.Kind {
		case conf.KeyHeader:
			v = req.Header(k.Name)
		case conf.KeyCookie:
			v = req.Cookie(k.Name)
		case conf.KeyQuery:
			v = req.Query(k.Name)
		case conf.KeyIP:
			a := peer
			if len(t.trustedIP) > 0 {
				a = clientIP(req, t.trustedIP)
			}
			if !a.IsValid() {
				continue
			}
			return a.AppendTo(buf[:0]), i
		}
		if len(v) > 0 {
			return v, i
		}
	}
	return nil, NoSource
}

// isWrite reports whether a method may change state: anything but GET, HEAD, OPTIONS.
func isWrite(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS":
		return false
	}
	return true
}

func equalFoldBytes(a string, b []byte) bool {
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
