package proxy

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/shiftgate/shiftgate/breaker"
	"github.com/shiftgate/shiftgate/conf"
)

// The kinds of Event.
const (
	EventStart         = "start"          // the server put its first config into service
	EventReload        = "reload"         // a new config file went into service
	EventReloadRefused = "reload_refused" // a config file was refused; the old one serves
	EventSplit         = "split"          // a route's override was set or changed
	EventClear         = "clear"          // a route's override was dropped
	EventRollback      = "rollback"       // the rollback switch changed
	EventBreaker       = "breaker"        // a breaker changed state
)

// EventLogSize is how many events the Server keeps; older ones are dropped.
const EventLogSize = 200

// Event is one change a running gateway went through, as the migration dashboard marks
// it on its time axis. Seq numbers events from 1 in the order they happened on this
// instance; a caller polls with the last Seq it saw.
type Event struct {
	Seq    uint64    `json:"seq"`
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Route  string    `json:"route,omitempty"`
	Region string    `json:"region,omitempty"`
	Who    string    `json:"who,omitempty"`
	Detail string    `json:"detail"`
}

// eventLog keeps the last EventLogSize events in a ring. Its lock is held only to copy
// an event in or out (no I/O, no allocation under it), so a breaker's state-change
// callback, which runs under the breaker's own lock, may add to it.
type eventLog struct {
	mu   sync.Mutex
	ring [EventLogSize]Event
	last uint64 // Seq of the newest event; 0 before the first
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.last++
	e.Seq = l.last
	l.ring[(l.last-1)%EventLogSize] = e
	l.mu.Unlock()
}

// since returns the kept events with a Seq above seq, oldest first.
func (l *eventLog) since(seq uint64) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := uint64(1)
	if l.last > EventLogSize {
		first = l.last - EventLogSize + 1
	}
	first = max(first, seq+1)
	out := make([]Event, 0, l.last+1-min(first, l.last+1))
	for s := first; s <= l.last; s++ {
		out = append(out, l.ring[(s-1)%EventLogSize])
	}
	return out
}

// Events returns the events after seq (0 for all that are kept, at most EventLogSize),
// oldest first: config loads and reloads, refused reloads, split overrides set and
// cleared, rollback switched, breaker transitions. Changes made on another instance of
// a fleet appear here too, when this instance applies them from the store. The slice is
// the caller's. Safe for concurrent use.
func (s *Server) Events(seq uint64) []Event { return s.events.since(seq) }

func (s *Server) addEvent(e Event) {
	e.At = s.now().UTC()
	s.events.add(e)
}

// noteSwap records what changed when cur replaced old (nil at start): a new config, and
// the overrides that differ, whoever made them (this instance's control API, or another
// instance through the store). Ramp steps change neither and leave no event.
func (s *Server) noteSwap(old, cur *state, newConfig bool) {
	if old == nil {
		s.addEvent(Event{Kind: EventStart, Detail: fmt.Sprintf("config version %d (%016x)", cur.version, cur.cfg.Hash)})
		return
	}
	if newConfig {
		s.addEvent(Event{Kind: EventReload, Detail: fmt.Sprintf("config version %d (%016x)", cur.version, cur.cfg.Hash)})
	}
	for _, name := range sortedKeys(cur.ov.Routes) {
		o := cur.ov.Routes[name]
		was, had := old.ov.Routes[name]
		if had && was.PercentBP == o.PercentBP && was.WritePercentBP == o.WritePercentBP {
			continue
		}
		before := "file"
		if r, ok := old.cfg.Route(name); ok {
			before = splitText(r.PercentBP, r.WritePercentBP)
		}
		if had {
			before = splitText(was.PercentBP, was.WritePercentBP)
		}
		s.addEvent(Event{Kind: EventSplit, Route: name, Who: o.Who,
			Detail: before + " -> " + splitText(o.PercentBP, o.WritePercentBP)})
	}
	for _, name := range sortedKeys(old.ov.Routes) {
		was := old.ov.Routes[name]
		if _, ok := cur.ov.Routes[name]; ok {
			continue
		}
		detail := "override " + splitText(was.PercentBP, was.WritePercentBP) + " cleared"
		if r, ok := cur.cfg.Route(name); ok {
			detail += ": the file's " + splitText(r.PercentBP, r.WritePercentBP) + " applies"
		}
		s.addEvent(Event{Kind: EventClear, Route: name, Detail: detail})
	}
	if rb, was := cur.ov.Rollback, old.ov.Rollback; rb.On != was.On || !rb.RampFrom.Equal(was.RampFrom) {
		detail := "off"
		switch {
		case rb.On:
			detail = "on: every route to its from"
		case rb.RampFor > 0:
			detail = "off, ramping back over " + rb.RampFor.String()
		}
		s.addEvent(Event{Kind: EventRollback, Who: rb.Who, Detail: detail})
	}
}

func sortedKeys(m map[string]conf.RouteOverride) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// splitText writes a read/write split as "25/5" (percent).
func splitText(read, write int) string { return conf.FormatBP(read) + "/" + conf.FormatBP(write) }

// noteBreaker records a breaker transition. It runs under the breaker's lock: the event
// log's lock is the only one it takes.
func (s *Server) noteBreaker(k breaker.Key, from, to breaker.State) {
	s.addEvent(Event{Kind: EventBreaker, Route: k.Route, Region: k.Region, Detail: from.String() + " -> " + to.String()})
}
