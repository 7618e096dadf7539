package fallback

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// openStore opens a store on dir whose problems are logged to t.
func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, StoreOptions{Logf: t.Logf})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cfg := CacheConfig{TTL: time.Hour}
	stored := time.Now().Add(-time.Minute).Truncate(0)
	want := map[string]Entry{
		"/api/feed?page=1": {Status: 200, Header: [][2]string{{"Content-Type", "application/json"}, {"Cache-Control", "max-age=5"}}, Body: []byte(`{"items":[1,2]}`), Stored: stored},
		"/api/feed?page=2": {Status: 203, Body: []byte("two"), Stored: stored.Add(time.Second)},
		"/empty":           {Status: 204, Stored: stored},
	}

	s := openStore(t, dir)
	c := s.Cache("feed", cfg)
	for k, e := range want {
		c.Put([]byte(k), e)
	}
	s.Cache("other route/with:odd chars", cfg).Put([]byte("k"), Entry{Status: 200, Body: []byte("o")})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2 := openStore(t, dir)
	if errs := s2.LoadErrors(); len(errs) != 0 {
		t.Fatalf("load errors: %v", errs)
	}
	c2 := s2.Cache("feed", cfg)
	if st := c2.Stats(); st.Entries != int64(len(want)) {
		t.Fatalf("restored %d entries, want %d", st.Entries, len(want))
	}
	for k, w := range want {
		got, ok := c2.Get([]byte(k))
		if !ok {
			t.Fatalf("%s not restored", k)
		}
		if got.Status != w.Status || !reflect.DeepEqual(got.Header, w.Header) ||
			!bytes.Equal(got.Body, w.Body) || !got.Stored.Equal(w.Stored) {
			t.Fatalf("%s restored as %+v, want %+v", k, got, w)
		}
	}
	if e, ok := s2.Cache("other route/with:odd chars", cfg).Get([]byte("k")); !ok || string(e.Body) != "o" {
		t.Fatalf("second route not restored: %v %v", e, ok)
	}
}

func TestStoreExpiredNotLoaded(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	long := s.Cache("feed", CacheConfig{TTL: 24 * time.Hour})
	now := time.Now()
	for _, tc := range []struct {
		key string
		age time.Duration
	}{
		{"fresh", time.Minute},
		{"stale", 2 * time.Hour},
		{"ancient", 48 * time.Hour},
	} {
		long.Put([]byte(tc.key), Entry{Status: 200, Stored: now.Add(-tc.age)})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The new config has a one-hour TTL: only "fresh" may come back.
	c := openStore(t, dir).Cache("feed", CacheConfig{TTL: time.Hour})
	if st := c.Stats(); st.Entries != 1 {
		t.Fatalf("loaded %d entries, want 1", st.Entries)
	}
	if _, ok := c.Get([]byte("fresh")); !ok {
		t.Fatal("fresh entry not loaded")
	}
}

func TestStoreCorruptFileIgnored(t *testing.T) {
	// A valid file to corrupt in various ways.
	var good bytes.Buffer
	entries := []keyedEntry{{"/k", &Entry{Status: 200, Body: []byte("body"), Stored: time.Now()}}}
	if err := encodeCache(&good, "feed", time.Now(), entries); err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good.Bytes())
		b[i] ^= 0x40
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("this is not a cache file at all")},
		{"bad magic", flip(0)},
		{"unknown version", flip(4)},
		{"flipped body byte", flip(good.Len() - 6)},
		{"flipped checksum", flip(good.Len() - 1)},
		{"truncated", good.Bytes()[:good.Len()-3]},
		{"appended", append(bytes.Clone(good.Bytes()), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, fileName("feed"))
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			// A healthy neighbour must still load.
			if err := os.WriteFile(filepath.Join(dir, fileName("other")), encoded(t, "other"), 0o644); err != nil {
				t.Fatal(err)
			}
			s := openStore(t, dir)
			errs := s.LoadErrors()
			if len(errs) != 1 || !errors.Is(errs[0], ErrCorrupt) {
				t.Fatalf("load errors %v, want one ErrCorrupt", errs)
			}
			if st := s.Cache("feed", CacheConfig{}).Stats(); st.Entries != 0 {
				t.Fatalf("corrupt file yielded %d entries", st.Entries)
			}
			if _, ok := s.Cache("other", CacheConfig{}).Get([]byte("k")); !ok {
				t.Fatal("healthy file not loaded next to a corrupt one")
			}
			if _, err := os.Stat(path + ".corrupt"); err != nil {
				t.Fatalf("corrupt file not set aside: %v", err)
			}
		})
	}
}

// encoded returns a valid cache file for route holding one entry under "k".
func encoded(t *testing.T, route string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := encodeCache(&b, route, time.Now(), []keyedEntry{{"k", &Entry{Status: 200, Stored: time.Now()}}}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestStoreFileNameMismatch(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, fileName("feed")), encoded(t, "other"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	if errs := s.LoadErrors(); len(errs) != 1 || !errors.Is(errs[0], ErrCorrupt) {
		t.Fatalf("load errors %v, want one ErrCorrupt", errs)
	}
}

func TestStoreRemovesLeftoverTempFiles(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, tmpPrefix+fileName("feed")+"-123")
	if err := os.WriteFile(tmp, []byte("half written"), 0o644); err != nil {
		t.Fatal(err)
	}
	openStore(t, dir)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover temp file still there: %v", err)
	}
}

func TestStoreCacheSurvivesReconfigure(t *testing.T) {
	s := openStore(t, "")
	c := s.Cache("feed", CacheConfig{MaxBytes: 1000})
	for _, k := range []string{"a", "b", "c", "d"} {
		c.Put([]byte(k), entryOfSize(200))
	}
	if again := s.Cache("feed", CacheConfig{MaxBytes: 1000}); again != c {
		t.Fatal("unchanged config returned a new cache")
	}
	if again := s.Cache("feed", CacheConfig{MaxBytes: 450}); again != c {
		t.Fatal("changed config returned a new cache")
	}
	if st := c.Stats(); st.Bytes > 450 || st.Entries != 2 {
		t.Fatalf("after shrinking MaxBytes: %+v", st)
	}
	if got := c.Config().MaxBytes; got != 450 {
		t.Fatalf("MaxBytes %d, want 450", got)
	}
}

func TestStoreRetain(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	for _, r := range []string{"feed", "search", "profile"} {
		s.Cache(r, CacheConfig{}).Put([]byte("k"), Entry{Status: 200})
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Retain([]string{"feed", "profile"})
	var routes []string
	s.Range(func(r string, _ *Cache) { routes = append(routes, r) })
	if strings.Join(routes, ",") != "feed,profile" {
		t.Fatalf("routes after Retain: %v", routes)
	}
	if _, err := os.Stat(filepath.Join(dir, fileName("search"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dropped route's file still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, fileName("feed"))); err != nil {
		t.Fatalf("kept route's file gone: %v", err)
	}
	if s.Cache("search", CacheConfig{}).Stats().Entries != 0 {
		t.Fatal("dropped route came back with entries")
	}
}

// TestStoreFlusher checks the background flusher writes a changed cache, and only a
// changed one, using fake time.
func TestStoreFlusher(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		s, err := Open(dir, StoreOptions{FlushEvery: 10 * time.Second, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		path := filepath.Join(dir, fileName("feed"))
		c := s.Cache("feed", CacheConfig{})

		c.Put([]byte("k"), Entry{Status: 200, Body: []byte("v1")})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("written before the first tick: %v", err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		first, err := os.Stat(path)
		if err != nil {
			t.Fatalf("not written after a tick: %v", err)
		}

		// No change: the next tick leaves the file alone.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if again, err := os.Stat(path); err != nil || !os.SameFile(first, again) {
			t.Fatalf("clean cache rewritten (%v)", err)
		}

		// A change is written at the next tick.
		c.Put([]byte("k2"), Entry{Status: 200})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if again, err := os.Stat(path); err != nil || os.SameFile(first, again) {
			t.Fatalf("changed cache not rewritten (%v)", err)
		}
	})
}

func TestStoreNothingPersistedAfterClose(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	c := s.Cache("feed", CacheConfig{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c.Put([]byte("k"), Entry{Status: 200})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, fileName("feed"))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("persisted after Close: %v", err)
	}
}

func TestStoreOpenFailsOnUnusableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file, StoreOptions{}); err == nil {
		t.Fatal("Open on a plain file succeeded")
	}
}

func TestFileName(t *testing.T) {
	for _, tc := range []struct{ route, want string }{
		{"feed", "feed.fallback"},
		{"api_v2-feed", "api_v2-feed.fallback"},
		{"../etc/passwd", "%2E%2E%2Fetc%2Fpasswd.fallback"},
		{"a b", "a%20b.fallback"},
		{"", ".fallback"},
	} {
		if got := fileName(tc.route); got != tc.want {
			t.Errorf("fileName(%q) = %q, want %q", tc.route, got, tc.want)
		}
	}
}

func FuzzDecodeCache(f *testing.F) {
	var b bytes.Buffer
	encodeCache(&b, "feed", time.Unix(1, 0), []keyedEntry{
		{"/k", &Entry{Status: 200, Header: [][2]string{{"A", "b"}}, Body: []byte("body"), Stored: time.Unix(2, 0)}},
	})
	f.Add(b.Bytes()[:b.Len()-4])
	f.Add([]byte("SGFB\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// As given, and with a valid checksum appended so that the fuzzer reaches
		// the structure behind it.
		sum := crc32.Checksum(data, crcTable)
		for _, in := range [][]byte{data, binary.LittleEndian.AppendUint32(bytes.Clone(data), sum)} {
			route, entries, err := decodeCache(in)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v does not wrap ErrCorrupt", err)
				}
				continue
			}
			// What decodes must survive another round trip unchanged.
			var out bytes.Buffer
			if err := encodeCache(&out, route, time.Unix(0, 0), entries); err != nil {
				t.Fatal(err)
			}
			route2, entries2, err := decodeCache(out.Bytes())
			if err != nil || route2 != route || !reflect.DeepEqual(entries2, entries) {
				t.Fatalf("round trip changed the content: %v", err)
			}
		}
	})
}
