package fallback

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied to the zero fields of a CacheConfig.
const (
	DefaultTTL           = 10 * time.Minute
	DefaultMaxBytes      = 64 << 20
	DefaultMaxEntryBytes = 1 << 20
	DefaultRefreshEvery  = time.Second
)

const (
	// defaultShards splits a cache so that the per-response WantRefresh calls of many
	// cores do not meet on one lock. LRU order is exact within a shard only.
	defaultShards = 16
	// maxPendingPerShard bounds the refill claims for keys that have no entry yet,
	// so that a flood of distinct keys cannot grow the claim table without limit.
	maxPendingPerShard = 1024
)

// CacheConfig bounds one route's cache. The zero value of every field means its
// default; negative values are treated as zero.
type CacheConfig struct {
	// TTL is how long an entry may be served after it was stored (DefaultTTL).
	TTL time.Duration
	// MaxBytes bounds the sum of the entries' sizes (see Entry.Size); the least
	// recently used entries are evicted to stay under it (DefaultMaxBytes).
	MaxBytes int64
	// MaxEntryBytes bounds one entry's size; larger entries are not stored
	// (DefaultMaxEntryBytes, and never more than MaxBytes).
	MaxEntryBytes int64
	// RefreshEvery is how often WantRefresh grants one key a refresh
	// (DefaultRefreshEvery).
	RefreshEvery time.Duration
}

// withDefaults returns c with every zero or negative field replaced by its default.
func (c CacheConfig) withDefaults() CacheConfig {
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxEntryBytes <= 0 {
		c.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if c.MaxEntryBytes > c.MaxBytes {
		c.MaxEntryBytes = c.MaxBytes
	}
	if c.RefreshEvery <= 0 {
		c.RefreshEvery = DefaultRefreshEvery
	}
	return c
}

// CacheStats is a point-in-time view of a cache's counters, for metrics.
type CacheStats struct {
	Entries   int64  // entries held now, expired ones included until swept
	Bytes     int64  // sum of the held entries' sizes
	Hits      uint64 // Get calls that returned an entry
	Misses    uint64 // Get calls that did not (absent or expired)
	Evictions uint64 // entries removed to stay under MaxBytes
	Expired   uint64 // entries removed because they outlived the TTL
}

// Cache holds the last good responses of one route, keyed by bytes the proxy builds
// (path, query, vary values). It is bounded by bytes and by age; see CacheConfig.
//
// All methods are safe for concurrent use. A Cache is created by NewCache or by
// Store.Cache; the zero Cache is not usable.
type Cache struct {
	shards []*shard
	mask   uint64
	seed   maphash.Seed
	now    func() time.Time

	// Limits, read on every call without a lock; changed by reconfigure.
	ttl          atomic.Int64 // nanoseconds
	refreshEvery atomic.Int64 // nanoseconds
	maxBytes     atomic.Int64
	maxEntry     atomic.Int64
	cfgMu        sync.Mutex // serializes reconfigure
	cfg          CacheConfig

	bytes     atomic.Int64
	entries   atomic.Int64
	evictions atomic.Uint64
	expired   atomic.Uint64
	// dirty is set by every change and cleared by the flusher that persists it.
	dirty atomic.Bool
}

// shard is one lock's worth of a Cache: a map and an LRU list.
type shard struct {
	mu      sync.RWMutex
	items   map[string]*node
	pending map[string]int64 // refill claims (unix ns) for keys with no entry
	lru     node             // sentinel: lru.next is the most recently used
	hits    atomic.Uint64
	misses  atomic.Uint64
}

// node is a stored entry in its shard's map and LRU list.
type node struct {
	key        string
	e          *Entry
	size       int64
	stored     int64        // e.Stored in unix ns, to check the TTL cheaply
	claimed    atomic.Int64 // unix ns of the last refresh granted (or of the store)
	prev, next *node
}

// NewCache returns an empty cache bounded by cfg, using time.Now as its clock. It is
// not persisted; use Store.Cache for a cache that survives restarts and reloads.
func NewCache(cfg CacheConfig) *Cache {
	return newCache(cfg, defaultShards, time.Now)
}

// newCache builds a cache of n shards (a power of two) reading time from now.
func newCache(cfg CacheConfig, n int, now func() time.Time) *Cache {
	c := &Cache{
		shards: make([]*shard, n),
		mask:   uint64(n - 1),
		seed:   maphash.MakeSeed(),
		now:    now,
	}
	for i := range c.shards {
		s := &shard{items: make(map[string]*node), pending: make(map[string]int64)}
		s.lru.next, s.lru.prev = &s.lru, &s.lru
		c.shards[i] = s
	}
	c.setLimits(cfg.withDefaults())
	return c
}

// setLimits publishes the limits of cfg, which has its defaults applied.
func (c *Cache) setLimits(cfg CacheConfig) {
	c.cfg = cfg
	c.ttl.Store(int64(cfg.TTL))
	c.refreshEvery.Store(int64(cfg.RefreshEvery))
	c.maxBytes.Store(cfg.MaxBytes)
	c.maxEntry.Store(cfg.MaxEntryBytes)
}

// Config returns the cache's limits, with defaults applied.
func (c *Cache) Config() CacheConfig {
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	return c.cfg
}

// reconfigure applies new limits in place, so the entries survive a config reload:
// a smaller MaxBytes evicts least recently used entries, a shorter TTL drops the
// entries it expires. It reports whether anything changed.
func (c *Cache) reconfigure(cfg CacheConfig) bool {
	cfg = cfg.withDefaults()
	c.cfgMu.Lock()
	defer c.cfgMu.Unlock()
	if cfg == c.cfg {
		return false
	}
	c.setLimits(cfg)
	c.Sweep()
	c.evict(0, nil)
	return true
}

// shardOf returns the shard that owns key.
func (c *Cache) shardOf(key []byte) *shard {
	return c.shards[maphash.Bytes(c.seed, key)&c.mask]
}

// Get returns the entry stored under key if it is younger than the TTL, and marks it
// most recently used. The entry is shared: see Entry. Get does not allocate.
func (c *Cache) Get(key []byte) (*Entry, bool) {
	s := c.shardOf(key)
	now := c.now().UnixNano()
	ttl := c.ttl.Load()

	// Fast path: the entry is fresh and already the most recently used of its
	// shard, as a hot key is during an outage; a read lock suffices.
	s.mu.RLock()
	n := s.items[string(key)]
	if n != nil && now-n.stored < ttl && s.lru.next == n {
		e := n.e
		s.mu.RUnlock()
		s.hits.Add(1)
		return e, true
	}
	s.mu.RUnlock()
	if n == nil {
		s.misses.Add(1)
		return nil, false
	}

	// Slow path: promote the entry, or drop it if it expired.
	s.mu.Lock()
	n = s.items[string(key)]
	if n == nil {
		s.mu.Unlock()
		s.misses.Add(1)
		return nil, false
	}
	if now-n.stored >= ttl {
		c.remove(s, n)
		s.mu.Unlock()
		c.expired.Add(1)
		s.misses.Add(1)
		return nil, false
	}
	s.moveToFront(n)
	e := n.e
	s.mu.Unlock()
	s.hits.Add(1)
	return e, true
}

// WantRefresh reports whether the caller, holding a fresh successful response for
// key, should copy it into the cache with Put. It grants each key at most one refresh
// per RefreshEvery, atomically: of concurrent callers for one key, one gets true, so a
// key is refilled once however many responses for it arrive at the same time. This
// also guards warm-up fills of keys that have no entry yet.
//
// now is the caller's clock (a coarse clock is fine). A caller that gets true and
// then decides not to Put (the response is too large, say) simply lets the claim
// lapse; the key can be claimed again after RefreshEvery. WantRefresh does not
// allocate when it returns false for a stored key.
func (c *Cache) WantRefresh(key []byte, now time.Time) bool {
	s := c.shardOf(key)
	t := now.UnixNano()
	every := c.refreshEvery.Load()

	// Fast path: the key is stored; claim with a compare-and-swap under the read lock.
	s.mu.RLock()
	if n := s.items[string(key)]; n != nil {
		last := n.claimed.Load()
		ok := t-last >= every && n.claimed.CompareAndSwap(last, t)
		s.mu.RUnlock()
		return ok
	}
	s.mu.RUnlock()

	// Slow path: no entry; claim in the pending table.
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.items[string(key)]; n != nil { // stored meanwhile
		last := n.claimed.Load()
		return t-last >= every && n.claimed.CompareAndSwap(last, t)
	}
	if last, ok := s.pending[string(key)]; ok {
		if t-last < every {
			return false
		}
		s.pending[string(key)] = t
		return true
	}
	if len(s.pending) >= maxPendingPerShard {
		for k, last := range s.pending {
			if t-last >= every {
				delete(s.pending, k)
			}
		}
		if len(s.pending) >= maxPendingPerShard {
			return false
		}
	}
	s.pending[string(key)] = t
	return true
}

// Put stores a copy of e under a copy of key, replacing any entry for key, and evicts
// least recently used entries to stay under MaxBytes. A zero e.Stored is set to the
// cache's clock. Put reports false, storing nothing, when the entry is larger than
// MaxEntryBytes, its Status is not an HTTP status (100..599) or it has more than 1024
// headers (such entries could not be persisted). The caller keeps ownership of key
// and e.
func (c *Cache) Put(key []byte, e Entry) bool {
	size := e.Size(key)
	if size > c.maxEntry.Load() || e.Status < 100 || e.Status > 599 || len(e.Header) > maxHeaders {
		return false
	}
	stored := e.clone(c.now())
	c.insert(string(key), stored, size)
	return true
}

// insert adds or replaces the entry for key (already copied) and restores the bound.
func (c *Cache) insert(key string, e *Entry, size int64) {
	idx := int(maphash.String(c.seed, key) & c.mask)
	s := c.shards[idx]
	s.mu.Lock()
	n := s.items[key]
	if n != nil {
		c.bytes.Add(size - n.size)
		n.e, n.size = e, size
		s.moveToFront(n)
	} else {
		n = &node{key: key, e: e, size: size}
		s.items[key] = n
		s.pushFront(n)
		c.bytes.Add(size)
		c.entries.Add(1)
	}
	n.stored = e.Stored.UnixNano()
	n.claimed.Store(n.stored)
	delete(s.pending, key)
	s.mu.Unlock()
	c.dirty.Store(true)
	c.evict(idx, n)
}

// evict removes least recently used entries until the cache is within MaxBytes,
// starting with shard start (the one just written) and never removing keep.
func (c *Cache) evict(start int, keep *node) {
	for i := 0; i < len(c.shards) && c.bytes.Load() > c.maxBytes.Load(); i++ {
		s := c.shards[(start+i)&int(c.mask)]
		s.mu.Lock()
		for c.bytes.Load() > c.maxBytes.Load() {
			t := s.lru.prev
			if t == &s.lru || t == keep {
				break
			}
			c.remove(s, t)
			c.evictions.Add(1)
		}
		s.mu.Unlock()
	}
}

// remove unlinks n from s; the caller holds s.mu for writing.
func (c *Cache) remove(s *shard, n *node) {
	delete(s.items, n.key)
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
	c.bytes.Add(-n.size)
	c.entries.Add(-1)
	c.dirty.Store(true)
}

// pushFront links n as the most recently used; the caller holds s.mu for writing.
func (s *shard) pushFront(n *node) {
	n.prev, n.next = &s.lru, s.lru.next
	s.lru.next.prev = n
	s.lru.next = n
}

// moveToFront marks n most recently used; the caller holds s.mu for writing.
func (s *shard) moveToFront(n *node) {
	if s.lru.next == n {
		return
	}
	n.prev.next, n.next.prev = n.next, n.prev
	s.pushFront(n)
}

// Sweep drops the entries that outlived the TTL and the refill claims that lapsed.
// Get drops expired entries lazily; Sweep frees the memory of keys no longer asked
// for. A Store sweeps its caches periodically.
func (c *Cache) Sweep() {
	now := c.now().UnixNano()
	ttl, every := c.ttl.Load(), c.refreshEvery.Load()
	for _, s := range c.shards {
		s.mu.Lock()
		for n := s.lru.prev; n != &s.lru; {
			prev := n.prev
			if now-n.stored >= ttl {
				c.remove(s, n)
				c.expired.Add(1)
			}
			n = prev
		}
		for k, last := range s.pending {
			if now-last >= every {
				delete(s.pending, k)
			}
		}
		s.mu.Unlock()
	}
}

// Stats returns the cache's counters. It does not lock.
func (c *Cache) Stats() CacheStats {
	st := CacheStats{
		Entries:   c.entries.Load(),
		Bytes:     c.bytes.Load(),
		Evictions: c.evictions.Load(),
		Expired:   c.expired.Load(),
	}
	for _, s := range c.shards {
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
	}
	return st
}

// keyedEntry is an entry with its key, as persisted.
type keyedEntry struct {
	key string
	e   *Entry
}

// snapshot returns the entries, least recently used first within each shard, so
// that inserting them in order restores the recency.
func (c *Cache) snapshot() []keyedEntry {
	out := make([]keyedEntry, 0, c.entries.Load())
	for _, s := range c.shards {
		s.mu.RLock()
		for n := s.lru.prev; n != &s.lru; n = n.prev {
			out = append(out, keyedEntry{n.key, n.e})
		}
		s.mu.RUnlock()
	}
	return out
}

// load inserts persisted entries, oldest use first, skipping those past the TTL or
// over MaxEntryBytes. Restoring an on-disk copy does not mark the cache dirty.
func (c *Cache) load(entries []keyedEntry) {
	now := c.now().UnixNano()
	ttl, maxEntry := c.ttl.Load(), c.maxEntry.Load()
	for _, ke := range entries {
		if now-ke.e.Stored.UnixNano() >= ttl {
			continue
		}
		size := ke.e.size(len(ke.key))
		if size > maxEntry {
			continue
		}
		c.insert(ke.key, ke.e, size)
	}
	c.dirty.Store(false)
}
