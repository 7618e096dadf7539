package store

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

// The layout of a fleet under its prefix. Every override is one key, so a change to
// one route conflicts with nothing else, and its value carries who made it and when.
// Keys under overrides/ that this version does not know are ignored, so a newer
// instance can add kinds of override without breaking older ones mid-upgrade.
const (
	keyOverrides  = "overrides/"
	keyRoutes     = "routes/"     // overrides/routes/NAME: a RouteOverride
	keyRollback   = "rollback"    // overrides/rollback: the rollback switch
	keyPlans      = "plans/"      // overrides/plans/NAME: a ramp plan's PlanProgress
	keyLastChange = "last-change" // overrides/last-change: who changed what, last
	keyInstances  = "instances/"  // instances/NAME: an Instance, under a lease
	pendingFile   = "overrides-pending.json"
)

// keyCutoff is overrides/cutoff: the client cut-off (conf.Cutoff), absent when zero.
const keyCutoff = "cutoff"

// kvEntry is one override key as the store holds it: its value and the revision that
// last wrote it.
type kvEntry struct {
	val []byte
	mod int64
}

// lastChange is the value of overrides/last-change, written by every change in the
// same transaction: an audit record, and the guard that makes concurrent writers
// conflict.
type lastChange struct {
	Who      string    `json:"who,omitempty"`
	At       time.Time `json:"at"`
	Instance string    `json:"instance,omitempty"`
	Keys     []string  `json:"keys"`
	// Local marks a change made on one instance during an outage and written on
	// its return; LocalAt is when it was made.
	Local   bool      `json:"local,omitempty"`
	LocalAt time.Time `json:"local_at,omitzero"`
}

// encodeOverrides returns the values of o's keys (relative to overrides/). A route
// without an override and an unset rollback have no key.
func encodeOverrides(o conf.Overrides) map[string][]byte {
	out := make(map[string][]byte, len(o.Routes)+1)
	for name, r := range o.Routes {
		b, _ := json.Marshal(r) // plain data: cannot fail
		out[keyRoutes+name] = b
	}
	if o.Rollback != (conf.Rollback{}) {
		b, _ := json.Marshal(o.Rollback)
		out[keyRollback] = b
	}
	encodeLevers(o, out)
	if !o.Cutoff.IsZero() {
		b, _ := json.Marshal(o.Cutoff)
		out[keyCutoff] = b
	}
	for name, p := range o.Plans {
		b, _ := json.Marshal(p)
		out[keyPlans+name] = b
	}
	return out
}

// keyError is the error of one override key whose value does not decode.
type keyError struct {
	key string // relative to overrides/
	err error
}

func (e *keyError) Error() string { return keyOverrides + e.key + ": " + e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// decodeOverrides builds conf.Overrides from override keys. A value that does not decode
// is left out and reported (a *keyError), so one bad key written by hand does not stop
// the rest; the store then keeps the value it served for that key (decodeKeepingLocked).
// Revision is left to the caller.
func decodeOverrides(kv map[string]kvEntry) (conf.Overrides, []error) {
	var o conf.Overrides
	var errs []error
	for k, e := range kv {
		switch {
		case strings.HasPrefix(k, keyRoutes) && len(k) > len(keyRoutes):
			var r conf.RouteOverride
			if err := json.Unmarshal(e.val, &r); err != nil {
				errs = append(errs, &keyError{key: k, err: err})
				continue
			}
			if o.Routes == nil {
				o.Routes = map[string]conf.RouteOverride{}
			}
			o.Routes[k[len(keyRoutes):]] = r
		case strings.HasPrefix(k, keyPlans) && len(k) > len(keyPlans):
			// Unknown fields are ignored, so a newer instance may add to a plan's
			// progress without breaking older ones mid-upgrade.
			var p conf.PlanProgress
			if err := json.Unmarshal(e.val, &p); err != nil {
				errs = append(errs, &keyError{key: k, err: err})
				continue
			}
			if o.Plans == nil {
				o.Plans = map[string]conf.PlanProgress{}
			}
			o.Plans[k[len(keyPlans):]] = p
		case k == keyRollback:
			if err := json.Unmarshal(e.val, &o.Rollback); err != nil {
				errs = append(errs, &keyError{key: k, err: err})
				o.Rollback = conf.Rollback{}
			}
		default:
			if err := decodeLever(&o, k, e.val); err != nil {
				errs = append(errs, &keyError{key: k, err: err})
			}
		case k == keyCutoff:
			// A cut-off that does not decode is left out (no cut-off), like a bad
			// rollback; the store keeps the value it served (decodeKeepingLocked).
			var c conf.Cutoff
			if err := json.Unmarshal(e.val, &c); err != nil {
				errs = append(errs, &keyError{key: k, err: err})
				continue
			}
			slices.Sort(c.Routes)
			c.Routes = slices.Compact(c.Routes)
			o.Cutoff = c
		}
	}
	return o, errs
}

// diffOverrides returns the keys to write and to delete to turn a into b.
func diffOverrides(a, b conf.Overrides) (puts map[string][]byte, dels []string) {
	ea, eb := encodeOverrides(a), encodeOverrides(b)
	puts = map[string][]byte{}
	for k, v := range eb {
		if !bytes.Equal(ea[k], v) {
			puts[k] = v
		}
	}
	for k := range ea {
		if _, ok := eb[k]; !ok {
			dels = append(dels, k)
		}
	}
	slices.Sort(dels)
	return puts, dels
}

// changedKeys lists puts and dels together, sorted.
func changedKeys(puts map[string][]byte, dels []string) []string {
	keys := slices.AppendSeq(slices.Clone(dels), maps.Keys(puts))
	slices.Sort(keys)
	return keys
}

// whoChanged returns the author recorded in the changed values of b, for the audit
// record of a change.
func whoChanged(b conf.Overrides, keys []string) string {
	for _, k := range keys {
		if k == keyRollback && b.Rollback.Who != "" {
			return b.Rollback.Who
		}
		if k == keyCutoff && b.Cutoff.Who != "" {
			return b.Cutoff.Who
		}
		if name, ok := strings.CutPrefix(k, keyRoutes); ok && b.Routes[name].Who != "" {
			return b.Routes[name].Who
		}
		if who := leverWho(b, k); who != "" {
			return who
		}
		if name, ok := strings.CutPrefix(k, keyPlans); ok && b.Plans[name].Who != "" {
			return b.Plans[name].Who
		}
	}
	return ""
}

// maxMod is the newest revision that wrote any of kv's keys: the override revision.
// Every change writes last-change, so a deletion moves it too.
func maxMod(kv map[string]kvEntry) int64 {
	var m int64
	for _, e := range kv {
		m = max(m, e.mod)
	}
	return m
}
