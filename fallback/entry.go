package fallback

import "time"

// entryOverhead approximates the memory a stored entry costs beyond its key, body and
// header bytes (node, Entry, map slot, slice headers), so that a cache of many tiny
// entries is bounded too.
const entryOverhead = 128

// Entry is one cached response.
//
// Entries handed to [Cache.Put] are copied; entries returned by [Cache.Get] are
// immutable and shared by concurrent readers and by the persistence flusher: callers
// must not modify an Entry, its Header slice or its Body after Get returns it.
type Entry struct {
	// Status is the response status code (the proxy stores 2xx responses only).
	Status int
	// Header holds the response headers the proxy chose to keep (Content-Type,
	// Cache-Control, ...), as name/value pairs in the order the proxy gave them.
	Header [][2]string
	// Body is the response body.
	Body []byte
	// Stored is when the response was received. Put sets it to the cache's clock
	// when it is zero; the TTL counts from it.
	Stored time.Time
}

// Size reports the bytes an entry stored under key counts against a cache's MaxBytes
// and MaxEntryBytes: key, body and header bytes plus a fixed per-entry overhead.
func (e *Entry) Size(key []byte) int64 { return e.size(len(key)) }

// size is Size for a key of keyLen bytes.
func (e *Entry) size(keyLen int) int64 {
	n := int64(keyLen + len(e.Body) + entryOverhead)
	for _, h := range e.Header {
		n += int64(len(h[0]) + len(h[1]))
	}
	return n
}

// clone returns a deep copy of e that shares no memory with the caller's slices.
func (e *Entry) clone(now time.Time) *Entry {
	c := &Entry{Status: e.Status, Stored: e.Stored}
	if c.Stored.IsZero() {
		c.Stored = now
	}
	if len(e.Header) > 0 {
		c.Header = append([][2]string(nil), e.Header...)
	}
	c.Body = append([]byte(nil), e.Body...)
	return c
}
