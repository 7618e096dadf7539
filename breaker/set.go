package breaker

import (
	"cmp"
	"slices"
	"sync"
)

// Key names the breaker of one region of one route.
type Key struct {
	Route, Region string
}

// Set keeps one breaker per Key across config reloads, so a reload that does not touch
// a route's breaker settings keeps its state and counts. It is safe for concurrent use,
// but meant for config-compile time: requests use the *Breaker that Get returned, never
// the Set.
type Set struct {
	notify func(k Key, from, to State)

	mu sync.Mutex
	m  map[Key]*Breaker
}

// NewSet returns an empty set. notify, if not nil, is called on every state change of
// every breaker in the set, under the same rules as New's notifier: it must not block.
func NewSet(notify func(k Key, from, to State)) *Set {
	return &Set{notify: notify, m: make(map[Key]*Breaker)}
}

// Get returns the breaker of (route, region). It is the breaker Get returned before
// for that key if its settings were Equal to s, else a new closed breaker that replaces
// it in the set. A replaced breaker keeps working for whoever still holds it.
func (s *Set) Get(route, region string, st Settings) *Breaker {
	k := Key{Route: route, Region: region}
	st = st.WithDefaults()

	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.m[k]; b != nil && b.settings == st {
		return b
	}
	var notify func(from, to State)
	if s.notify != nil {
		notify = func(from, to State) { s.notify(k, from, to) }
	}
	b := New(st, notify)
	s.m[k] = b
	return b
}

// Retain drops every breaker whose key is not in keep and returns how many it dropped.
// Call it once a new config is in service, with the keys that config uses: calling it
// before would lose the history of breakers that a refused config did not need.
func (s *Set) Retain(keep []Key) (dropped int) {
	want := make(map[Key]struct{}, len(keep))
	for _, k := range keep {
		want[k] = struct{}{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.m {
		if _, ok := want[k]; !ok {
			delete(s.m, k)
			dropped++
		}
	}
	return dropped
}

// Range calls fn for every breaker in the set, sorted by route then region. fn runs
// without the set's lock, on a copy, so it may call the set.
func (s *Set) Range(fn func(k Key, b *Breaker)) {
	type entry struct {
		k Key
		b *Breaker
	}
	s.mu.Lock()
	entries := make([]entry, 0, len(s.m))
	for k, b := range s.m {
		entries = append(entries, entry{k, b})
	}
	s.mu.Unlock()

	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.k.Route, b.k.Route), cmp.Compare(a.k.Region, b.k.Region))
	})
	for _, e := range entries {
		fn(e.k, e.b)
	}
}

// Len returns how many breakers the set holds.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
