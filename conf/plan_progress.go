package conf

import (
	"slices"
	"time"
)

// PlanState is where a route's ramp plan stands.
type PlanState string

// The plan states. Idle is a configured plan never started; the others are what
// CONTRACT.md lists for /v1/plans.
const (
	PlanIdle       PlanState = "idle"
	PlanRunning    PlanState = "running"
	PlanPaused     PlanState = "paused"
	PlanHalted     PlanState = "halted"
	PlanRolledBack PlanState = "rolled_back"
	PlanDone       PlanState = "done"
)

// PlanProgress is a route's ramp plan as it stands: an override, persisted in the
// override store (etcd key overrides/plans/ROUTE in a fleet), so that a restart or a
// new leader continues from the step in force, neither repeating nor skipping one.
// It is plain data; a value is never modified once published (History is copied).
type PlanProgress struct {
	State PlanState `json:"state"`
	// Step is the index in the plan's steps of the step in force.
	Step int `json:"step"`
	// StepAt is when the step went into force: its gates read the window since.
	StepAt time.Time `json:"step_at"`
	// PercentBP and WritePercentBP are the split the plan set for the step; a split
	// found otherwise was changed by someone else, which pauses the plan.
	PercentBP      int `json:"percent_bp"`
	WritePercentBP int `json:"write_percent_bp"`
	// Fingerprint is the route's Route.PlanFingerprint when the step began.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Reason says why the plan is in its state, for status and the audit log.
	Reason string `json:"reason,omitempty"`
	// Who made the last change ("plan" and the leading instance for the plan's
	// own) and when.
	Who string    `json:"who,omitempty"`
	At  time.Time `json:"at,omitzero"`
	// History lists what the plan did, oldest first, at most PlanHistoryMax entries.
	History []PlanEvent `json:"history,omitempty"`
}

// PlanHistoryMax bounds PlanProgress.History.
const PlanHistoryMax = 64

// PlanEvent is one entry of a plan's history: a start, an advance, a pause, a
// failure acted on.
type PlanEvent struct {
	Event          string    `json:"event"`
	Step           int       `json:"step"`
	PercentBP      int       `json:"percent_bp"`
	WritePercentBP int       `json:"write_percent_bp"`
	At             time.Time `json:"at"`
	By             string    `json:"by,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	// Gates are the readings that decided an advance or a failure, and Readings how
	// many readings of the step its driver took until then.
	Gates    []PlanGateRecord `json:"gates,omitempty"`
	Readings int              `json:"readings,omitempty"`
}

// PlanGateRecord is a gate reading as a plan's history keeps it.
type PlanGateRecord struct {
	Name    string  `json:"name"`
	Outcome string  `json:"outcome"`
	Moved   float64 `json:"moved"`
	Stayed  float64 `json:"stayed"`
	MovedN  uint64  `json:"moved_n"`
	StayedN uint64  `json:"stayed_n"`
}

// WithEvent returns p with e appended to a copy of its history, trimmed to
// PlanHistoryMax.
func (p PlanProgress) WithEvent(e PlanEvent) PlanProgress {
	h := make([]PlanEvent, 0, len(p.History)+1)
	h = append(h, p.History...)
	h = append(h, e)
	if len(h) > PlanHistoryMax {
		h = h[len(h)-PlanHistoryMax:]
	}
	p.History = h
	return p
}

// SameStep reports whether p and o stand at the same step of the same run: the
// check a plan's driver makes before writing, so that a driver that lost its lead
// cannot step a plan a second time.
func (p PlanProgress) SameStep(o PlanProgress) bool {
	return p.State == o.State && p.Step == o.Step && p.StepAt.Equal(o.StepAt)
}

// Clone returns a deep copy.
func (p PlanProgress) Clone() PlanProgress {
	p.History = slices.Clone(p.History)
	return p
}

// Paused returns p paused at now by who, for reason, with the event in its history:
// what a human's own change (a split, a rollback, a reload) does to a running plan.
func (p PlanProgress) Paused(now time.Time, who, reason string) PlanProgress {
	p.State, p.Reason, p.Who, p.At = PlanPaused, reason, who, now
	return p.WithEvent(PlanEvent{Event: "paused", Step: p.Step, PercentBP: p.PercentBP, WritePercentBP: p.WritePercentBP,
		At: now, By: who, Reason: reason})
}
