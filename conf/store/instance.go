package store

import "time"

// Instance is one gateway of a fleet as it registers itself in the shared store.
type Instance struct {
	Instance string `json:"instance"`
	Listen   string `json:"listen"`
	Admin    string `json:"admin"`
	// Region is the instance's self_region ("" when unset): the instances of one
	// region share the byte budgets of the links out of it.
	Region string `json:"region,omitempty"`
	// AppliedRevision is the override revision the instance serves.
	AppliedRevision int64 `json:"applied_revision"`
	// PendingLocal is whether it serves a local change the store does not have yet.
	PendingLocal bool      `json:"pending_local,omitempty"`
	Started      time.Time `json:"started"`
	Updated      time.Time `json:"updated"`
}

// FleetStatus lists the instances registered in a fleet store and the newest
// override revision in it.
type FleetStatus struct {
	Store            string     `json:"store"`
	OverrideRevision int64      `json:"override_revision"`
	Instances        []Instance `json:"instances"`
	// Left are instances that left the list without a clean stop in the last
	// LeftKept (their lease ran out: cut off from etcd, or killed), as they last
	// reported: one cut off may still serve that revision.
	Left []Instance `json:"left,omitempty"`
}

// Behind reports whether i has not applied the store's newest overrides yet.
func (f FleetStatus) Behind(i Instance) bool { return i.AppliedRevision < f.OverrideRevision }
