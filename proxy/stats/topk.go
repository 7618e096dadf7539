package stats

import (
	"bytes"
	"cmp"
	"hash/maphash"
	"slices"
	"sync"
)

// KeyLen is the longest source key a TopK keeps; longer keys are cut to it. Keys are
// stored in fixed arrays so that counting, and replacing a key, never allocate.
const KeyLen = 32

// Source is one row of a top-K list: Count is an overestimate of the source's true
// count by at most Error (Count − Error ≤ true ≤ Count).
type Source struct {
	Source string `json:"source"`
	Count  uint64 `json:"count"`
	Error  uint64 `json:"error"`
}

// TopK finds the heaviest sources of a stream with the Space-Saving algorithm
// (Metwally et al., 2005): K counters; a new key takes over the smallest counter and
// inherits its count as its error. Every source seen more than total/K times is in the
// table, and each count overestimates by at most its error. Add takes a mutex, so the
// request path samples (Route.ObserveSource). Safe for concurrent use; a zero TopK is
// not usable, use NewTopK. Memory: about 80 bytes per counter.
type TopK struct {
	seed maphash.Seed

	mu    sync.Mutex
	ents  []topEntry // len ≤ cap = K; never reallocated
	heap  []int32    // entry numbers, a min-heap on count
	table []int32    // open addressing over ents: entry number + 1, 0 when free
	total uint64
}

type topEntry struct {
	hash, count, err uint64
	pos              int32 // in heap
	n                uint8
	key              [KeyLen]byte
}

// NewTopK returns an empty table of k counters (k ≥ 1).
func NewTopK(k int) *TopK {
	k = max(k, 1)
	size := 1
	for size < 2*k {
		size <<= 1
	}
	return &TopK{
		seed:  maphash.MakeSeed(),
		ents:  make([]topEntry, 0, k),
		heap:  make([]int32, 0, k),
		table: make([]int32, size),
	}
}

// Add counts key w times. key is copied (at most KeyLen bytes), never retained. It
// does not allocate.
func (t *TopK) Add(key []byte, w uint64) {
	if w == 0 {
		return
	}
	if len(key) > KeyLen {
		key = key[:KeyLen]
	}
	h := maphash.Bytes(t.seed, key)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += w
	if i, _ := t.find(h, key); i >= 0 {
		t.ents[i].count += w
		t.down(int(t.ents[i].pos))
		return
	}
	if len(t.ents) < cap(t.ents) {
		i := int32(len(t.ents))
		t.ents = append(t.ents, topEntry{hash: h, count: w, pos: int32(len(t.heap))})
		t.setKey(&t.ents[i], key)
		_, slot := t.find(h, key)
		t.table[slot] = i + 1
		t.heap = append(t.heap, i)
		t.up(len(t.heap) - 1)
		return
	}
	// Replace the smallest counter: the newcomer may have been counted up to its value
	// before, unseen, so that value becomes its error.
	m := t.heap[0]
	e := &t.ents[m]
	_, old := t.find(e.hash, e.key[:e.n])
	t.remove(old)
	e.hash, e.err = h, e.count
	e.count += w
	t.setKey(e, key)
	_, slot := t.find(h, key)
	t.table[slot] = m + 1
	t.down(0)
}

func (t *TopK) setKey(e *topEntry, key []byte) {
	e.n = uint8(copy(e.key[:], key))
}

// find returns the entry of key and its slot, or -1 and the free slot where it would
// go.
func (t *TopK) find(h uint64, key []byte) (int32, int) {
	mask := uint64(len(t.table) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		v := t.table[i]
		if v == 0 {
			return -1, int(i)
		}
		e := &t.ents[v-1]
		if e.hash == h && bytes.Equal(e.key[:e.n], key) {
			return v - 1, int(i)
		}
	}
}

// remove frees slot i, shifting later entries of its probe run back so that lookups
// never stop early at a hole (no tombstones: the table never fills up with them).
func (t *TopK) remove(i int) {
	mask := len(t.table) - 1
	j := i
	for {
		j = (j + 1) & mask
		v := t.table[j]
		if v == 0 {
			break
		}
		home := int(t.ents[v-1].hash) & mask
		// The entry at j may move to i only if its home is not cyclically in (i, j].
		if i <= j {
			if i < home && home <= j {
				continue
			}
		} else if i < home || home <= j {
			continue
		}
		t.table[i] = v
		i = j
	}
	t.table[i] = 0
}

func (t *TopK) less(a, b int) bool {
	return t.ents[t.heap[a]].count < t.ents[t.heap[b]].count
}

func (t *TopK) swap(a, b int) {
	t.heap[a], t.heap[b] = t.heap[b], t.heap[a]
	t.ents[t.heap[a]].pos = int32(a)
	t.ents[t.heap[b]].pos = int32(b)
}

func (t *TopK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.less(i, p) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *TopK) down(i int) {
	n := len(t.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.less(r, l) {
			m = r
		}
		if !t.less(m, i) {
			return
		}
		t.swap(i, m)
		i = m
	}
}

// Top returns up to n sources (all when n ≤ 0), heaviest first, and the table's floor:
// the smallest count when the table is full (any source not listed was seen at most
// that often), else 0.
func (t *TopK) Top(n int) (top []Source, floor uint64) {
	t.mu.Lock()
	top = make([]Source, len(t.ents))
	for i := range t.ents {
		e := &t.ents[i]
		top[i] = Source{Source: string(e.key[:e.n]), Count: e.count, Error: e.err}
	}
	if len(t.ents) == cap(t.ents) && len(t.heap) > 0 {
		floor = t.ents[t.heap[0]].count
	}
	t.mu.Unlock()
	sortSources(top)
	if n > 0 && len(top) > n {
		top = top[:n]
	}
	return top, floor
}

func sortSources(s []Source) {
	slices.SortFunc(s, func(a, b Source) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Source, b.Source)
	})
}

// Total returns the sum of all weights added since the last Reset.
func (t *TopK) Total() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// Reset empties the table, e.g. when a route's split goes back to 0 % and "still
// served by From" starts over.
func (t *TopK) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ents = t.ents[:0]
	t.heap = t.heap[:0]
	clear(t.table)
	t.total = 0
}
