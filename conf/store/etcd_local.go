package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/shiftgate/shiftgate/conf"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// pendingLocal is the change made on this instance only while etcd was away: the keys
// to write and to delete when it returns. It is kept in state_dir so that a restart
// during the outage keeps it (and still reconciles it).
type pendingLocal struct {
	Puts map[string]json.RawMessage `json:"puts,omitempty"`
	Dels []string                   `json:"dels,omitempty"`
	Who  string                     `json:"who,omitempty"`
	// At is when the first local change was made; Base the override revision then
	// served. A store key written after Base was changed by another writer during
	// the outage, and the reconciliation reports that it replaced it.
	At   time.Time `json:"at"`
	Base int64     `json:"base_revision"`
	// KeyAt is when each key was last changed here: against a value another writer
	// put in the store during the outage, the later change is the operator's latest
	// intent and wins (a pending file from before has none: its values' own "at",
	// else At, stand in).
	KeyAt map[string]time.Time `json:"key_at,omitempty"`
}

// changedAt is when key was last changed locally.
func (p *pendingLocal) changedAt(key string) time.Time {
	if t, ok := p.KeyAt[key]; ok {
		return t
	}
	if t := valueAt(p.Puts[key]); !t.IsZero() {
		return t
	}
	return p.At
}

// valueAt reads the "at" an override value carries (when its change was made), zero
// when it has none.
func valueAt(v []byte) time.Time {
	var w struct {
		At time.Time `json:"at"`
	}
	if len(v) == 0 || json.Unmarshal(v, &w) != nil {
		return time.Time{}
	}
	return w.At
}

func (p *pendingLocal) keys() []string {
	keys := slices.AppendSeq(slices.Clone(p.Dels), maps.Keys(p.Puts))
	slices.Sort(keys)
	return keys
}

// overlay returns kv with the local change on top; kv is not modified.
func (p *pendingLocal) overlay(kv map[string]kvEntry) map[string]kvEntry {
	out := maps.Clone(kv)
	for k, v := range p.Puts {
		out[k] = kvEntry{val: v}
	}
	for _, k := range p.Dels {
		delete(out, k)
	}
	return out
}

// add records a change of the keys puts and dels, made at.
func (p *pendingLocal) add(puts map[string][]byte, dels []string, at time.Time) {
	if p.Puts == nil {
		p.Puts = map[string]json.RawMessage{}
	}
	if p.KeyAt == nil {
		p.KeyAt = map[string]time.Time{}
	}
	for k := range puts {
		p.KeyAt[k] = at
	}
	for _, k := range dels {
		p.KeyAt[k] = at
	}
	for k, v := range puts {
		p.Puts[k] = v
		p.Dels = slices.DeleteFunc(p.Dels, func(d string) bool { return d == k })
	}
	for _, k := range dels {
		delete(p.Puts, k)
		if !slices.Contains(p.Dels, k) {
			p.Dels = append(p.Dels, k)
		}
	}
	slices.Sort(p.Dels)
}

func (s *Etcd) loadPending() (*pendingLocal, error) {
	if s.pendPath == "" {
		return nil, nil
	}
	b, err := os.ReadFile(s.pendPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p := &pendingLocal{}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("%s: %w", s.pendPath, err)
	}
	s.log.Warn("LOCAL override change pending from before the restart: it is written to etcd when etcd answers",
		"keys", p.keys(), "who", p.Who, "at", p.At)
	return p, nil
}

func (s *Etcd) savePending(p *pendingLocal) error {
	if s.pendPath == "" {
		return nil
	}
	if p == nil {
		err := os.Remove(s.pendPath)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.pendPath, append(b, '\n'))
}

// UpdateLocal implements Fleet: while etcd is down it applies change to this
// instance's overrides only, keeps it in state_dir, and writes it to etcd when etcd
// returns (the operator's latest intent wins, and the reconciliation is logged and
// shown in Health). While etcd is up it refuses with ErrLocalWhileUp.
func (s *Etcd) UpdateLocal(_ context.Context, change func(*conf.Overrides) error) (conf.Overrides, error) {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	s.mu.Lock()
	cur := s.effectiveLocked()
	if s.health.Up {
		s.mu.Unlock()
		return cur, ErrLocalWhileUp
	}
	next := cur.Clone()
	if err := change(&next); err != nil {
		s.mu.Unlock()
		return cur, err
	}
	puts, dels := diffOverrides(cur, next)
	if len(puts)+len(dels) == 0 {
		s.mu.Unlock()
		return cur, nil
	}
	now := time.Now().UTC()
	p := &pendingLocal{At: now, Base: s.rev}
	if s.pending != nil {
		c := *s.pending
		c.Puts, c.Dels, c.KeyAt = maps.Clone(c.Puts), slices.Clone(c.Dels), maps.Clone(c.KeyAt)
		p = &c
	}
	p.add(puts, dels, now)
	if who := whoChanged(next, changedKeys(puts, dels)); who != "" {
		p.Who = who
	}
	if err := s.savePending(p); err != nil {
		s.mu.Unlock()
		return cur, fmt.Errorf("local change not kept: %w", err)
	}
	s.pending = p
	s.mu.Unlock()
	s.handOut(next)
	s.saveMirror(next)
	s.log.Warn("LOCAL override change: applied on THIS INSTANCE ONLY while etcd is down; other instances still serve the old value; it is written to etcd when etcd returns",
		"keys", changedKeys(puts, dels), "who", p.Who, "store", s.Describe())
	return next, nil
}

// reconcile writes a pending local change to etcd: it is the operator's latest
// intent. It reports (logs, and keeps in Health) which keys another writer had changed
// during the outage and were replaced, with one exception: a route split that
// another writer raised meanwhile is not lowered by the local value, since that would
// move users back, which no split change does without -force. Those keys keep the
// store's value and are reported as not applied.
func (s *Etcd) reconcile(ctx context.Context, cli *clientv3.Client) error {
	s.mu.Lock()
	p := s.pending
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	// What is written depends on what the store holds (a raise by another writer is
	// not undone), so the write is guarded: when another instance reconciles at the
	// same moment, the store is read again and the decision made afresh.
	var (
		puts                                             map[string][]byte
		dels, written, overwrote, notApplied, superseded []string
		rev                                              int64
	)
	for attempt := 0; ; attempt++ {
		if attempt == reconcileAttempts {
			return fmt.Errorf("local change not reconciled: the store changed under it %d times in a row", attempt)
		}
		kv, _, err := s.list(ctx, cli)
		if err != nil {
			return err
		}
		puts, dels, written, overwrote, notApplied, superseded = p.against(kv)
		s.mu.Lock()
		rev = s.rev
		s.mu.Unlock()
		if len(written) == 0 {
			break
		}
		rec := lastChange{Who: p.Who, At: time.Now().UTC(), Instance: s.instanceName(), Keys: written, Local: true, LocalAt: p.At}
		var ok bool
		if rev, ok, _, err = s.commit(ctx, cli, kv, puts, dels, rec, true); err != nil {
			return err
		}
		if ok {
			break
		}
	}
	s.mu.Lock()
	// Until the watch brings them, the written keys stand in the view, so that
	// clearing the local change does not flip this instance back for a moment.
	for k, v := range puts {
		s.kv[k] = kvEntry{val: v, mod: rev}
	}
	for _, k := range dels {
		delete(s.kv, k)
	}
	s.rev = max(s.rev, rev)
	if s.pending == p { // not when a newer local change replaced it meanwhile
		s.pending = nil
		if err := s.savePending(nil); err != nil {
			s.log.Error("reconciled local change still on disk: it will be written again after a restart", "err", err.Error())
		}
	}
	s.health.LastReconciled = &Reconciled{Keys: written, Who: p.Who, LocalAt: p.At, At: time.Now().UTC(), Revision: rev,
		Overwrote: overwrote, NotApplied: notApplied, Superseded: superseded}
	s.mu.Unlock()
	if len(superseded) > 0 {
		s.log.Warn("LOCAL override change SUPERSEDED for some keys: another writer changed them later during the outage; the later change stands",
			"superseded", superseded, "who", p.Who, "made_at", p.At)
	}
	if len(notApplied) > 0 {
		s.log.Error("LOCAL override change NOT APPLIED for some routes: another writer raised them while etcd was down, and the local value would move users back; the fleet keeps the store's value (use split -force to lower it)",
			"not_applied", notApplied, "who", p.Who, "made_at", p.At)
	}
	s.log.Warn("LOCAL override change RECONCILED: written to etcd for the whole fleet",
		"keys", written, "who", p.Who, "made_at", p.At, "revision", rev, "replaced_changes_of_others", overwrote)
	return nil
}

// reconcileAttempts bounds the guarded writes of one reconciliation that lose a race
// with another writer; the next probe tries again.
const reconcileAttempts = 10

// against decides, given what the store holds (kv), what of p to write: puts and
// dels, the keys written, those that replace another writer's change made during the
// outage (overwrote), those left as the store has them because writing them would
// move users back (notApplied), and those another writer changed later than this
// instance did (superseded: the operator's latest intent wins, whichever instance
// reconnects last), except a route split this instance raised above the store's,
// which is written (neither order may move users back). A plan's key and its route's
// split go together: when one is kept as the store has it, so is the other.
func (p *pendingLocal) against(kv map[string]kvEntry) (puts map[string][]byte, dels, written, overwrote, notApplied, superseded []string) {
	puts = make(map[string][]byte, len(p.Puts))
	for k, v := range p.Puts {
		puts[k] = v
	}
	keys := p.keys()
	for _, k := range keys {
		if kv[k].mod <= p.Base {
			continue
		}
		if movesUsersBack(k, kv[k].val, p.Puts[k]) {
			notApplied = append(notApplied, k)
			delete(puts, k)
			continue
		}
		// A split this instance raised above the store's is written whatever the
		// times: keeping the store's lower one would move back the users this
		// instance served at its split (splits only ever go up without -force).
		raises := movesUsersBack(k, p.Puts[k], kv[k].val)
		if at := valueAt(kv[k].val); !raises && !at.IsZero() && at.After(p.changedAt(k)) {
			superseded = append(superseded, k)
			delete(puts, k)
			continue
		}
		overwrote = append(overwrote, k)
	}
	kept := func(k string) bool { return slices.Contains(notApplied, k) || slices.Contains(superseded, k) }
	// A plan's progress and its route's split are made in one write (a plan's step
	// or rollback): both are written or neither, so the store never says a plan
	// rolled back while its split stays raised by the driver, or the reverse (an
	// instance cut off from etcd alone rolled back while the driver went on).
	for _, k := range keys {
		name, ok := strings.CutPrefix(k, keyPlans)
		rk := keyRoutes + name
		if !ok || !slices.Contains(keys, rk) || kept(k) == kept(rk) {
			continue
		}
		drop := k
		if kept(k) {
			drop = rk
		}
		notApplied = append(notApplied, drop)
		overwrote = slices.DeleteFunc(overwrote, func(o string) bool { return o == drop })
		delete(puts, drop)
	}
	slices.Sort(notApplied)
	written = slices.DeleteFunc(keys, kept)
	dels = slices.DeleteFunc(slices.Clone(p.Dels), kept)
	return puts, dels, written, overwrote, notApplied, superseded
}

// movesUsersBack reports whether writing next over cur, both values of key, lowers a
// route's split (reads or writes): a move back of users. A clear (next nil) of a
// route's split may too: the file's split then applies, which the store does not
// know, so it counts as one.
func movesUsersBack(key string, cur, next []byte) bool {
	if !strings.HasPrefix(key, keyRoutes) || cur == nil {
		return false
	}
	if next == nil {
		return true
	}
	var a, b conf.RouteOverride
	if json.Unmarshal(cur, &a) != nil || json.Unmarshal(next, &b) != nil {
		return false
	}
	return conf.SplitBP{Read: b.PercentBP, Write: b.WritePercentBP}.MovesBack(conf.SplitBP{Read: a.PercentBP, Write: a.WritePercentBP})
}
