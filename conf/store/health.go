package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

// ErrDown is wrapped by the error of a fleet write that the shared override
// store could not take: nothing was changed, on this instance or elsewhere.
var ErrDown = errors.New("the shared override store is unreachable")

// ErrOutcomeUnknown is wrapped by the error of a fleet write that was sent to the
// shared override store but whose answer did not come (a timeout, a connection lost
// after sending): the store may or may not have applied it, and other instances may
// already serve it. It is not ErrDown: "nothing was changed" would be a guess.
var ErrOutcomeUnknown = errors.New("the shared override store did not answer the write")

// ErrLocalWhileUp is wrapped by the error of a local-only write made while the shared
// store is up: a local write is for outages, a change made now goes to the fleet.
var ErrLocalWhileUp = errors.New("the shared override store is up: make a fleet write (without -local)")

// Health is an override store's state as status and metrics show it. The zero
// value is a store that is down and has applied nothing.
type Health struct {
	// Up is whether the store answered its last request.
	Up bool `json:"up"`
	// Error is the last failure while down ("" when up).
	Error string `json:"error,omitempty"`
	// Since is when Up last changed.
	Since time.Time `json:"since,omitzero"`
	// AppliedRevision is the override revision this instance serves.
	AppliedRevision int64 `json:"applied_revision"`
	// StoreRevision is the newest override revision seen in the store; above
	// AppliedRevision means a change is on its way.
	StoreRevision int64 `json:"store_revision"`
	// PendingLocal names the overrides changed on this instance only (during an
	// outage) that are not in the store yet: "routes/NAME" or "rollback".
	PendingLocal []string `json:"pending_local,omitempty"`
	// StartedWith says what this instance served at start when etcd did not answer:
	// "mirror" (the state_dir copy), or, with no mirror, "rollback" or "file"
	// (fleet.etcd.on_down_at_start); "" when etcd answered.
	StartedWith string `json:"started_with,omitempty"`
	// LastReconciled describes the last local change written to the store once it
	// came back, nil when there was none since start.
	LastReconciled *Reconciled `json:"last_reconciled,omitempty"`
	// Undecodable lists the override keys whose value in the store does not decode
	// (written by hand or by a broken tool). None of them changes what this instance
	// serves: each keeps the value served before. Empty when every key decodes.
	Undecodable []BadKey `json:"undecodable_keys,omitempty"`
}

// BadKey is an override key whose value in the store does not decode, and what this
// instance serves for it instead.
type BadKey struct {
	// Key is relative to the prefix's overrides/: "rollback", "routes/NAME".
	Key   string `json:"key"`
	Error string `json:"error"`
	// Revision is the store revision that wrote the bad value.
	Revision int64 `json:"revision"`
	// Kept says where the value served instead comes from: KeptServed, KeptMirror
	// or KeptFile.
	Kept string `json:"kept"`
	// Value is the value served instead, as the key's JSON; absent when it is no
	// override at all (the config file's split, rollback off, no cap).
	Value json.RawMessage `json:"value,omitempty"`
	// Since is when this instance first saw the key fail to decode.
	Since time.Time `json:"since"`
}

// Where the value kept for an undecodable key comes from.
const (
	// KeptServed: the value this instance served for the key before.
	KeptServed = "served"
	// KeptMirror: at start, the value of the state_dir mirror (what the instance
	// served before its restart).
	KeptMirror = "mirror"
	// KeptFile: at start with no mirror, nothing is known: no override, the config
	// file's value.
	KeptFile = "file"
)

// Reconciled reports a local change written to the shared store after an outage.
type Reconciled struct {
	Keys     []string  `json:"keys"`
	Who      string    `json:"who,omitempty"`
	LocalAt  time.Time `json:"local_at"`
	At       time.Time `json:"at"`
	Revision int64     `json:"revision"`
	// Overwrote names the keys whose store value had changed since the outage began
	// (another writer) and was replaced by the local intent.
	Overwrote []string `json:"overwrote,omitempty"`
	// NotApplied names the route splits of the local change that were not written:
	// another writer had raised them during the outage, and the local value would
	// have moved users back. The store's value stays; an operator decides.
	NotApplied []string `json:"not_applied,omitempty"`
	// Superseded names the keys of the local change that another writer changed
	// later, during the outage: the later change (the operator's latest intent)
	// stays.
	Superseded []string `json:"superseded,omitempty"`
}

// Fleet is what a store shared by several instances can do beyond Store: report its
// health, take a change on this instance alone during an outage, register this
// instance and list the others. Store.Fleet returns nil for a store that serves one
// instance, so callers ask once, explicitly, instead of probing types.
type Fleet interface {
	// Health is cheap and safe for concurrent use: it reads state kept by the store.
	Health() Health
	// UpdateLocal applies change on this instance only, for emergencies while the
	// shared store is unreachable; the change is kept (in the state_dir mirror) and
	// written to the shared store when it returns.
	UpdateLocal(ctx context.Context, change func(*conf.Overrides) error) (conf.Overrides, error)
	// Instances lists the instances registered in the store.
	Instances(ctx context.Context) (FleetStatus, error)
	// Register keeps this instance registered under a lease until ctx ends.
	Register(ctx context.Context, listen, admin string)
	// InstanceName is the name this instance registers under.
	InstanceName(listen string) string
}
