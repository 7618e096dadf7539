package fallback

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// entryOfSize returns an entry whose Size under a 1-byte key is exactly size.
func entryOfSize(size int) Entry {
	return Entry{Status: 200, Body: bytes.Repeat([]byte{'x'}, size-entryOverhead-1)}
}

func TestCacheTTL(t *testing.T) {
	const ttl = time.Minute
	for _, tc := range []struct {
		age  time.Duration
		want bool
	}{
		{0, true},
		{ttl - time.Second, true},
		{ttl, false},
		{ttl + time.Hour, false},
	} {
		t.Run(tc.age.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := NewCache(CacheConfig{TTL: ttl})
				c.Put([]byte("/a"), Entry{Status: 200, Body: []byte("x")})
				time.Sleep(tc.age)
				_, ok := c.Get([]byte("/a"))
				if ok != tc.want {
					t.Fatalf("Get after %v: ok=%v, want %v", tc.age, ok, tc.want)
				}
				st := c.Stats()
				if !tc.want && (st.Entries != 0 || st.Bytes != 0 || st.Expired != 1) {
					t.Fatalf("expired entry not dropped: %+v", st)
				}
			})
		})
	}
}

func TestCacheSweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCache(CacheConfig{TTL: time.Minute})
		c.Put([]byte("old"), Entry{Status: 200})
		time.Sleep(30 * time.Second)
		c.Put([]byte("new"), Entry{Status: 200})
		time.Sleep(30 * time.Second)
		c.Sweep()
		if st := c.Stats(); st.Entries != 1 || st.Expired != 1 {
			t.Fatalf("after sweep: %+v, want 1 entry, 1 expired", st)
		}
		if _, ok := c.Get([]byte("new")); !ok {
			t.Fatal("fresh entry swept")
		}
	})
}

func TestCacheLRU(t *testing.T) {
	const size = 200
	for _, tc := range []struct {
		name string
		ops  string // space-separated: +k puts k, ?k gets k
		want string // keys present at the end, sorted
	}{
		{"fits", "+a +b +c", "abc"},
		{"evicts oldest", "+a +b +c +d", "bcd"},
		{"get promotes", "+a +b +c ?a +d", "acd"},
		{"put promotes", "+a +b +c +a +d", "acd"},
		{"miss does not promote", "+a +b +c ?z +d", "bcd"},
		{"evicts several", "+a +b +c +d +e +f", "def"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(CacheConfig{MaxBytes: 3 * size}, 1, time.Now)
			for _, op := range strings.Fields(tc.ops) {
				key := []byte(op[1:])
				switch op[0] {
				case '+':
					if !c.Put(key, entryOfSize(size)) {
						t.Fatalf("Put(%s) refused", key)
					}
				case '?':
					c.Get(key)
				}
			}
			var got []byte
			for k := byte('a'); k <= 'z'; k++ {
				if _, ok := c.Get([]byte{k}); ok {
					got = append(got, k)
				}
			}
			if string(got) != tc.want {
				t.Fatalf("present %q, want %q", got, tc.want)
			}
			if st := c.Stats(); st.Bytes != int64(len(tc.want)*size) || st.Bytes > 3*size {
				t.Fatalf("bytes %d, want %d", st.Bytes, len(tc.want)*size)
			}
		})
	}
}

func TestCachePutRefusesUnpersistable(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Entry
		want bool
	}{
		{"ok", Entry{Status: 200}, true},
		{"status zero", Entry{}, false},
		{"status 99", Entry{Status: 99}, false},
		{"status 600", Entry{Status: 600}, false},
		{"1024 headers", Entry{Status: 200, Header: make([][2]string, maxHeaders)}, true},
		{"1025 headers", Entry{Status: 200, Header: make([][2]string, maxHeaders+1)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewCache(CacheConfig{}).Put([]byte("k"), tc.e); got != tc.want {
				t.Fatalf("Put = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCacheEntryBound(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  CacheConfig
		size int
		want bool
	}{
		{"under entry bound", CacheConfig{MaxEntryBytes: 1000}, 1000, true},
		{"over entry bound", CacheConfig{MaxEntryBytes: 1000}, 1001, false},
		{"entry bound clamped to total", CacheConfig{MaxBytes: 500, MaxEntryBytes: 1000}, 501, false},
		{"default entry bound", CacheConfig{}, DefaultMaxEntryBytes + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache(tc.cfg)
			if got := c.Put([]byte("k"), entryOfSize(tc.size)); got != tc.want {
				t.Fatalf("Put of %d bytes = %v, want %v", tc.size, got, tc.want)
			}
			if _, ok := c.Get([]byte("k")); ok != tc.want {
				t.Fatalf("stored = %v, want %v", ok, tc.want)
			}
		})
	}
}

// TestCacheBytesBoundSharded checks the bound holds across shards, where eviction is
// only approximately LRU.
func TestCacheBytesBoundSharded(t *testing.T) {
	const maxBytes = 50_000
	c := NewCache(CacheConfig{MaxBytes: maxBytes})
	for i := range 2000 {
		c.Put(fmt.Appendf(nil, "/k/%d", i), entryOfSize(200+i%700))
		st := c.Stats()
		if st.Bytes > maxBytes {
			t.Fatalf("after put %d: %d bytes > %d", i, st.Bytes, maxBytes)
		}
	}
	// The counters must agree with the content.
	var n, total int64
	for _, ke := range c.snapshot() {
		n++
		total += ke.e.size(len(ke.key))
	}
	if st := c.Stats(); st.Entries != n || st.Bytes != total || st.Evictions == 0 {
		t.Fatalf("stats %+v, content %d entries %d bytes", st, n, total)
	}
}

func TestCachePutCopies(t *testing.T) {
	c := NewCache(CacheConfig{})
	key := []byte("/k")
	e := Entry{Status: 200, Header: [][2]string{{"Content-Type", "text/plain"}}, Body: []byte("hello")}
	c.Put(key, e)
	key[1] = 'x'
	e.Body[0] = 'J'
	e.Header[0][1] = "changed"
	got, ok := c.Get([]byte("/k"))
	if !ok || string(got.Body) != "hello" || got.Header[0][1] != "text/plain" || got.Stored.IsZero() {
		t.Fatalf("entry shares caller memory or lost: %+v %v", got, ok)
	}
}

func TestCacheReplace(t *testing.T) {
	c := newCache(CacheConfig{}, 1, time.Now)
	c.Put([]byte("k"), entryOfSize(300))
	c.Put([]byte("k"), entryOfSize(500))
	if st := c.Stats(); st.Entries != 1 || st.Bytes != 500 {
		t.Fatalf("after replace: %+v", st)
	}
}

func TestCacheStatsHitsMisses(t *testing.T) {
	c := NewCache(CacheConfig{})
	c.Put([]byte("a"), Entry{Status: 200})
	for _, k := range []string{"a", "a", "b", "a", "c"} {
		c.Get([]byte(k))
	}
	if st := c.Stats(); st.Hits != 3 || st.Misses != 2 {
		t.Fatalf("hits %d misses %d, want 3 2", st.Hits, st.Misses)
	}
}

func TestCacheReconfigure(t *testing.T) {
	c := newCache(CacheConfig{MaxBytes: 1000}, 1, time.Now)
	for _, k := range []string{"a", "b", "c", "d"} {
		c.Put([]byte(k), entryOfSize(200))
	}
	if c.reconfigure(CacheConfig{MaxBytes: 1000}) {
		t.Fatal("unchanged config reported as changed")
	}
	if !c.reconfigure(CacheConfig{MaxBytes: 450}) {
		t.Fatal("changed config reported as unchanged")
	}
	if st := c.Stats(); st.Entries != 2 || st.Bytes != 400 {
		t.Fatalf("after shrinking: %+v", st)
	}
	for _, k := range []string{"c", "d"} {
		if _, ok := c.Get([]byte(k)); !ok {
			t.Fatalf("recent entry %s evicted", k)
		}
	}
}

func TestWantRefresh(t *testing.T) {
	const every = time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, stored := range []bool{false, true} {
		t.Run(fmt.Sprintf("stored=%v", stored), func(t *testing.T) {
			c := NewCache(CacheConfig{RefreshEvery: every})
			key := []byte("/feed?page=1")
			if stored {
				c.Put(key, Entry{Status: 200, Stored: t0.Add(-every)})
			}
			for _, step := range []struct {
				at   time.Duration
				want bool
			}{
				{0, true},
				{0, false},
				{every / 2, false},
				{every - 1, false},
				{every, true},
				{every, false},
				{3 * every, true},
			} {
				if got := c.WantRefresh(key, t0.Add(step.at)); got != step.want {
					t.Fatalf("WantRefresh at +%v = %v, want %v", step.at, got, step.want)
				}
			}
		})
	}
}

// TestWantRefreshClaimsOnce races many callers for one key: exactly one must win
// each refresh period, whether or not the key is stored.
func TestWantRefreshClaimsOnce(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, stored := range []bool{false, true} {
		t.Run(fmt.Sprintf("stored=%v", stored), func(t *testing.T) {
			c := NewCache(CacheConfig{RefreshEvery: time.Second})
			key := []byte("/hot")
			if stored {
				c.Put(key, Entry{Status: 200, Stored: t0.Add(-time.Hour)})
			}
			for round := range 3 {
				now := t0.Add(time.Duration(round) * time.Second)
				var wins atomic.Int32
				var wg sync.WaitGroup
				start := make(chan struct{})
				for range 64 {
					wg.Go(func() {
						<-start
						if c.WantRefresh(key, now) {
							wins.Add(1)
						}
					})
				}
				close(start)
				wg.Wait()
				if wins.Load() != 1 {
					t.Fatalf("round %d: %d callers won, want 1", round, wins.Load())
				}
			}
		})
	}
}

func TestWantRefreshPendingBound(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCache(CacheConfig{RefreshEvery: time.Second}, 1, time.Now)
	for i := range maxPendingPerShard {
		if !c.WantRefresh(fmt.Appendf(nil, "k%d", i), t0) {
			t.Fatalf("claim %d refused below the bound", i)
		}
	}
	if c.WantRefresh([]byte("one-too-many"), t0) {
		t.Fatal("claim granted past the pending bound")
	}
	// Lapsed claims make room again.
	if !c.WantRefresh([]byte("later"), t0.Add(time.Second)) {
		t.Fatal("claim refused after the others lapsed")
	}
	// Put clears the claim; the next refresh is due RefreshEvery after the store.
	c.Put([]byte("k1"), Entry{Status: 200, Stored: t0.Add(time.Second)})
	if c.WantRefresh([]byte("k1"), t0.Add(1500*time.Millisecond)) {
		t.Fatal("refresh granted too soon after Put")
	}
}

func TestCacheAllocs(t *testing.T) {
	c := NewCache(CacheConfig{})
	key := []byte("/api/feed?page=1")
	c.Put(key, Entry{Status: 200, Body: []byte("{}")})
	now := time.Now()
	c.WantRefresh(key, now)
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"Get hit", func() { c.Get(key) }},
		{"Get miss", func() { c.Get([]byte("/absent")) }},
		{"WantRefresh false", func() { c.WantRefresh(key, now) }},
	} {
		if n := testing.AllocsPerRun(1000, tc.fn); n != 0 {
			t.Errorf("%s: %v allocs, want 0", tc.name, n)
		}
	}
}

func BenchmarkCacheGetHit(b *testing.B) {
	c := NewCache(CacheConfig{})
	key := []byte("/api/feed?page=1&lang=en")
	c.Put(key, Entry{Status: 200, Body: make([]byte, 4096)})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := c.Get(key); !ok {
				b.Fatal("miss")
			}
		}
	})
}

func BenchmarkCacheWantRefresh(b *testing.B) {
	c := NewCache(CacheConfig{})
	keys := make([][]byte, 64)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "/api/feed?page=%d", i)
		c.Put(keys[i], Entry{Status: 200, Body: make([]byte, 1024)})
	}
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.WantRefresh(keys[i&63], now)
			i++
		}
	})
}

func BenchmarkCachePut(b *testing.B) {
	c := NewCache(CacheConfig{MaxBytes: 8 << 20})
	body := make([]byte, 4096)
	keys := make([][]byte, 4096)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "/api/feed?page=%d", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.Put(keys[i&4095], Entry{Status: 200, Body: body})
	}
}
