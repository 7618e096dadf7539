package stats

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

func itoa(i int) string { return strconv.Itoa(i) }

// zipfKeys returns n keys drawn from a Zipf law over distinct sources.
func zipfKeys(n int, distinct uint64) [][]byte {
	rng := rand.New(rand.NewPCG(11, 12))
	z := rand.NewZipf(rng, 1.1, 1, distinct-1)
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "10.%d.0.0/24", z.Uint64())
	}
	return keys
}

// checkTable verifies the table's internal invariants: every entry is found through
// the hash table, and the heap is a min-heap whose positions are right.
func checkTable(t *testing.T, tk *TopK) {
	t.Helper()
	used := 0
	for _, v := range tk.table {
		if v != 0 {
			used++
		}
	}
	if used != len(tk.ents) {
		t.Fatalf("%d slots used for %d entries", used, len(tk.ents))
	}
	for i := range tk.ents {
		e := &tk.ents[i]
		if got, _ := tk.find(e.hash, e.key[:e.n]); got != int32(i) {
			t.Fatalf("entry %d (%q) found as %d", i, e.key[:e.n], got)
		}
		if tk.heap[e.pos] != int32(i) {
			t.Fatalf("entry %d: heap position %d holds %d", i, e.pos, tk.heap[e.pos])
		}
	}
	for i := 1; i < len(tk.heap); i++ {
		if tk.less(i, (i-1)/2) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
}

func TestTopKFindsZipfHeavyHitters(t *testing.T) {
	const k, n = 64, 100_000
	keys := zipfKeys(n, 20_000)
	tk := NewTopK(k)
	truth := map[string]uint64{}
	for _, key := range keys {
		tk.Add(key, 1)
		truth[string(key)]++
	}
	checkTable(t, tk)
	top, floor := tk.Top(0)
	if len(top) != k || floor == 0 {
		t.Fatalf("got %d rows, floor %d; want a full table", len(top), floor)
	}
	if floor > n/k {
		t.Fatalf("floor %d above N/K = %d", floor, n/k)
	}
	listed := map[string]bool{}
	for _, row := range top {
		listed[row.Source] = true
		tr := truth[row.Source]
		if row.Count < tr || row.Count-row.Error > tr {
			t.Errorf("%s: count %d ± %d does not bound the true %d", row.Source, row.Count, row.Error, tr)
		}
		if row.Error > floor {
			t.Errorf("%s: error %d above the floor %d", row.Source, row.Error, floor)
		}
	}
	for key, c := range truth {
		if c > n/k && !listed[key] {
			t.Errorf("%s seen %d > N/K times is missing", key, c)
		}
		if !listed[key] && c > floor {
			t.Errorf("%s seen %d > floor %d times is missing", key, c, floor)
		}
	}
	// The ten heaviest true sources lead the list, in some order.
	type kv struct {
		k string
		c uint64
	}
	var all []kv
	for k, c := range truth {
		all = append(all, kv{k, c})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(b.c, a.c) })
	for _, x := range all[:10] {
		if !listed[x.k] {
			t.Errorf("true top-10 source %s (%d) not listed", x.k, x.c)
		}
	}
	if got := tk.Total(); got != n {
		t.Errorf("total %d, want %d", got, n)
	}
}

func TestTopKWorkedExample(t *testing.T) {
	tk := NewTopK(2)
	add := func(k string, w uint64) { tk.Add([]byte(k), w) }
	add("a", 5)
	add("b", 3)
	add("c", 1) // replaces b (3): c = 3+1 with error 3
	add("a", 1)
	top, floor := tk.Top(0)
	want := []Source{{"a", 6, 0}, {"c", 4, 3}}
	if fmt.Sprint(top) != fmt.Sprint(want) || floor != 4 {
		t.Fatalf("top %v floor %d, want %v floor 4", top, floor, want)
	}
	long := []byte("0123456789012345678901234567890123456789")
	add(string(long), 10) // replaces c (4), cut to KeyLen
	top, _ = tk.Top(1)
	if len(top) != 1 || top[0] != (Source{string(long[:KeyLen]), 14, 4}) {
		t.Fatalf("top(1) = %v", top)
	}
	tk.Add(long[:KeyLen], 1) // the same key as the cut one
	if top, _ = tk.Top(1); top[0].Count != 15 {
		t.Fatalf("cut key not matched: %v", top)
	}
	tk.Add([]byte("z"), 0) // weight 0 is nothing
	tk.Reset()
	if top, floor = tk.Top(0); len(top) != 0 || floor != 0 || tk.Total() != 0 {
		t.Fatalf("after Reset: %v %d %d", top, floor, tk.Total())
	}
	checkTable(t, tk)
}

func TestTopKAddDoesNotAllocate(t *testing.T) {
	tk := NewTopK(8)
	keys := zipfKeys(1024, 100) // mostly misses: replacements every few calls
	i := 0
	allocs := testing.AllocsPerRun(2000, func() {
		tk.Add(keys[i&1023], 1)
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Add, want 0", allocs)
	}
}

func FuzzTopK(f *testing.F) {
	f.Add([]byte("a\x00b\x00a\x00c\x00d\x00a"), uint8(2))
	f.Add([]byte(""), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, k uint8) {
		tk := NewTopK(int(k%16) + 1)
		truth := map[string]uint64{}
		start := 0
		for i := 0; i <= len(stream); i++ {
			if i < len(stream) && stream[i] != 0 {
				continue
			}
			key := stream[start:i]
			start = i + 1
			tk.Add(key, 1)
			if len(key) > KeyLen {
				key = key[:KeyLen]
			}
			truth[string(key)]++
		}
		checkTable(t, tk)
		top, floor := tk.Top(0)
		for _, row := range top {
			tr := truth[row.Source]
			if row.Count < tr || row.Count-row.Error > tr {
				t.Fatalf("%q: %d ± %d does not bound %d", row.Source, row.Count, row.Error, tr)
			}
		}
		listed := map[string]bool{}
		for _, row := range top {
			listed[row.Source] = true
		}
		for key, c := range truth {
			if !listed[key] && c > floor {
				t.Fatalf("%q seen %d > floor %d times is missing", key, c, floor)
			}
		}
	})
}

func BenchmarkTopKAdd(b *testing.B) {
	for _, k := range []int{64, 1024} {
		b.Run("K"+itoa(k), func(b *testing.B) {
			tk := NewTopK(k)
			keys := zipfKeys(4096, 10_000)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tk.Add(keys[i&4095], 1)
			}
		})
	}
}
