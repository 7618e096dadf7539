package proxy

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
)

// An emergency lever must work when the disk does not: with state_dir full or
// read-only, a rollback (or a split change) is put in force in memory at once, said
// loudly to be unpersisted (the API's answer, the CLI's exit status 3, status's
// "unpersisted", the metric shiftgate_overrides_unpersisted, an ERROR log line), and
// written to the store as soon as it takes a write again.

// persistRetryEvery is how often unpersisted overrides are written again.
const persistRetryEvery = 2 * time.Second

// unpersisted is what serves in memory and is not in the store. Its methods are safe
// for concurrent use.
type unpersisted struct {
	mu       sync.Mutex
	keys     map[string]bool // "rollback", "routes/NAME"
	reason   string
	retrying bool
}

// list returns the unpersisted keys, sorted, and the last write error.
func (u *unpersisted) list() ([]string, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]string, 0, len(u.keys))
	for k := range u.keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, u.reason
}

// changedKeys names what differs between two overrides, as status lists it:
// "rollback", "routes/NAME", "site_limit", "route_limits/NAME", "budgets/FROM->TO",
// "cutoff", "plans/NAME".
func changedKeys(a, b conf.Overrides) []string {
	var out []string
	if a.Rollback != b.Rollback {
		out = append(out, "rollback")
	}
	if !reflect.DeepEqual(a.SiteLimit, b.SiteLimit) {
		out = append(out, "site_limit")
	}
	if !reflect.DeepEqual(a.Cutoff, b.Cutoff) {
		out = append(out, "cutoff")
	}
	out = appendChanged(out, "routes/", a.Routes, b.Routes)
	out = appendChanged(out, "route_limits/", a.RouteLimits, b.RouteLimits)
	out = appendChanged(out, "budgets/", a.Budgets, b.Budgets)
	out = appendChanged(out, "plans/", a.Plans, b.Plans)
	sort.Strings(out)
	return out
}

// appendChanged adds prefix+key for each key whose value differs between a and b,
// or that only one of them has.
func appendChanged[V any](out []string, prefix string, a, b map[string]V) []string {
	for k, v := range b {
		if was, ok := a[k]; !ok || !reflect.DeepEqual(was, v) {
			out = append(out, prefix+k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, prefix+k)
		}
	}
	return out
}

// applyUnpersisted puts change into force in memory after the store refused to
// write it (storeErr wraps store.ErrNotPersisted), and starts the retries. It returns
// the overrides now serving and an error that wraps store.ErrNotPersisted, which
// callers report as "in force, not persisted", not as a failure.
func (s *Server) applyUnpersisted(change func(*conf.Overrides) error, storeErr error) (conf.Overrides, error) {
	s.mu.Lock()
	cur := s.state.Load().ov
	next := cur.Clone()
	if err := change(&next); err != nil {
		s.mu.Unlock()
		return cur, err
	}
	next.Revision = cur.Revision + 1
	if err := s.putInService(s.state.Load().cfg, next, false); err != nil {
		s.mu.Unlock()
		return cur, err
	}
	s.mu.Unlock()
	keys := changedKeys(cur, next)
	u := &s.unpersisted
	u.mu.Lock()
	if u.keys == nil {
		u.keys = map[string]bool{}
	}
	for _, k := range keys {
		u.keys[k] = true
	}
	u.reason = storeErr.Error()
	start := !u.retrying
	u.retrying = true
	u.mu.Unlock()
	s.log.Error("override change IN FORCE IN MEMORY ONLY: the store did not take it; a restart would lose it; retrying the write every 2s",
		"keys", keys, "store", s.storeName(), "err", storeErr.Error())
	if start {
		go s.persistLoop()
	}
	return next, fmt.Errorf("%w: in force in memory, not persisted (%v); retrying", store.ErrNotPersisted, storeErr)
}

// persistLoop writes the serving overrides to the store until a write succeeds.
func (s *Server) persistLoop() {
	saver, ok := s.store.(interface{ Save(conf.Overrides) error })
	t := time.NewTicker(persistRetryEvery)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		if !ok {
			continue
		}
		if s.persistNow(saver) {
			return
		}
	}
}

// persistNow writes the serving overrides with saver; on success nothing is
// unpersisted any more (and the retry loop ends).
func (s *Server) persistNow(saver interface{ Save(conf.Overrides) error }) bool {
	s.mu.Lock()
	ov := s.state.Load().ov
	err := saver.Save(ov)
	s.mu.Unlock()
	u := &s.unpersisted
	u.mu.Lock()
	if err != nil {
		u.reason = err.Error()
		u.mu.Unlock()
		return false
	}
	keys := u.keys
	u.keys, u.reason, u.retrying = nil, "", false
	u.mu.Unlock()
	if len(keys) > 0 {
		s.log.Warn("unpersisted override change now PERSISTED", "store", s.storeName(), "revision", ov.Revision, "keys", len(keys))
	}
	return true
}

// changeOverMemory makes a change to a single-writer store (state_dir) while earlier
// changes serve in memory only: the file then holds an older state than the one in
// force, and a change judged on it would be judged on the past (a plan the file
// still shows rolled back could not be paused while it runs). The change is judged
// on what serves, put in force, and everything is written at once if the store
// takes a write again. ok is false when nothing is pending: the store's own Update
// applies.
func (s *Server) changeOverMemory(change func(*conf.Overrides) error) (ov conf.Overrides, unpersisted string, ok bool, err error) {
	saver, can := s.store.(interface{ Save(conf.Overrides) error })
	if !can || s.store.Fleet() != nil {
		return ov, "", false, nil
	}
	keys, reason := s.unpersisted.list()
	if len(keys) == 0 {
		return ov, "", false, nil
	}
	ov, err = s.applyUnpersisted(change, errors.New(reason))
	if !isUnpersisted(err) {
		return ov, "", true, err
	}
	if s.persistNow(saver) {
		return ov, "", true, nil
	}
	return ov, err.Error(), true, nil
}

// isUnpersisted reports whether err is a change in force but not persisted.
func isUnpersisted(err error) bool { return errors.Is(err, store.ErrNotPersisted) }

// storeWritable probes a store that writes files (the state_dir store), nil for others.
func (s *Server) storeWritable() error {
	if w, ok := s.store.(interface{ Writable() error }); ok {
		return w.Writable()
	}
	return nil
}
