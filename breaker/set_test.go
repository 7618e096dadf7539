package breaker

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestSetCarriesOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []Key
		set := NewSet(func(k Key, from, to State) { events = append(events, k) })
		s := Settings{MinRequests: 2}

		feed := set.Get("feed", "cloud", s)
		pass(t, feed, Failure)
		pass(t, feed, Failure)
		if feed.State() != Open {
			t.Fatal("feed/cloud did not trip")
		}
		if len(events) != 1 || events[0] != (Key{"feed", "cloud"}) {
			t.Fatalf("notified %v, want one change of feed/cloud", events)
		}

		// A reload with equal settings (defaults spelled out) keeps the open breaker.
		same := s
		same.OpenFor = DefaultOpenFor
		if got := set.Get("feed", "cloud", same); got != feed || got.State() != Open {
			t.Fatalf("equal settings: got a new or reset breaker")
		}
		// Another region of the same route is another breaker.
		dc := set.Get("feed", "dc", s)
		if dc == feed || dc.State() != Closed {
			t.Fatalf("feed/dc shares feed/cloud's breaker")
		}

		// Changed settings: a new closed breaker; the old one still works for its holder.
		changed := set.Get("feed", "cloud", Settings{MinRequests: 3})
		if changed == feed || changed.State() != Closed {
			t.Fatalf("changed settings: got the old breaker back")
		}
		if got := set.Get("feed", "cloud", Settings{MinRequests: 3}); got != changed {
			t.Fatalf("Get after a change did not keep the new breaker")
		}
		reject(t, feed, ErrOpen)
		time.Sleep(DefaultOpenFor + time.Nanosecond)
		pass(t, feed, Success)

		set.Get("search", "dc", s)
		if set.Len() != 3 {
			t.Fatalf("Len = %d, want 3", set.Len())
		}
		var keys []Key
		set.Range(func(k Key, b *Breaker) { keys = append(keys, k) })
		want := []Key{{"feed", "cloud"}, {"feed", "dc"}, {"search", "dc"}}
		if len(keys) != len(want) || keys[0] != want[0] || keys[1] != want[1] || keys[2] != want[2] {
			t.Fatalf("Range order %v, want %v", keys, want)
		}

		// The next config drops feed/dc and search.
		if n := set.Retain([]Key{{"feed", "cloud"}}); n != 2 {
			t.Fatalf("Retain dropped %d, want 2", n)
		}
		if set.Len() != 1 || set.Get("feed", "cloud", Settings{MinRequests: 3}) != changed {
			t.Fatal("Retain dropped a kept breaker")
		}
		if set.Get("feed", "dc", s) == dc {
			t.Fatal("a dropped breaker came back")
		}
	})
}
