package conf

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// SplitBP is a route's effective split in basis points (0..10000): Read for GET, HEAD
// and OPTIONS, Write for every other method. Write never exceeds Read.
type SplitBP struct {
	Read, Write int
}

// Overrides are the runtime knobs the admin API and CLI change on top of the file's
// config: per-route split, the rollback switch, request caps and byte budgets, and
// the client cut-off. They persist in an OverrideStore and survive restarts and file
// reloads. The zero value overrides nothing.
type Overrides struct {
	// Revision increases with every change; fleets use the store's revision.
	Revision int64                    `json:"revision"`
	Routes   map[string]RouteOverride `json:"routes,omitempty"`
	Rollback Rollback                 `json:"rollback"`
	// SiteLimit, RouteLimits (by route name) and Budgets (by BudgetKey) replace the
	// file's caps and budgets (see levers_overrides.go).
	SiteLimit   *LimitOverride            `json:"site_limit,omitempty"`
	RouteLimits map[string]LimitOverride  `json:"route_limits,omitempty"`
	Budgets     map[string]BudgetOverride `json:"budgets,omitempty"`
	// Cutoff is the client cut-off (see Cutoff): it changes the client config only.
	Cutoff Cutoff `json:"cutoff,omitzero"`
	// Plans hold each started ramp plan's progress, by route name.
	Plans map[string]PlanProgress `json:"plans,omitempty"`
}

// RouteOverride replaces a route's percent and write_percent.
type RouteOverride struct {
	PercentBP      int       `json:"percent_bp"`
	WritePercentBP int       `json:"write_percent_bp"`
	Who            string    `json:"who,omitempty"`
	At             time.Time `json:"at,omitempty"`
	// Ramp, when set, brings the split to this override gradually instead of at
	// once: a ramp plan's rollback lowers a route to 0 this way, so the old region
	// warms up instead of taking everyone back at once.
	Ramp SplitRamp `json:"ramp,omitzero"`
}

// SplitRamp moves a route's split linearly from FromBP/FromWriteBP to its override's
// over For, starting at Start.
type SplitRamp struct {
	FromBP      int           `json:"from_bp"`
	FromWriteBP int           `json:"from_write_bp"`
	Start       time.Time     `json:"start"`
	For         time.Duration `json:"for"`
}

// Ramping reports whether r is still ramping at now.
func (r RouteOverride) Ramping(now time.Time) bool {
	return r.Ramp.For > 0 && now.Before(r.Ramp.Start.Add(r.Ramp.For))
}

// SplitAt is the split r sets at now, along its ramp.
func (r RouteOverride) SplitAt(now time.Time) SplitBP {
	s := SplitBP{Read: r.PercentBP, Write: r.WritePercentBP}
	if !r.Ramping(now) {
		return s
	}
	step := min(max(int64(now.Sub(r.Ramp.Start))*rampSteps/int64(r.Ramp.For), 0), rampSteps)
	lerp := func(from, to int) int { return from + int(int64(to-from)*step/rampSteps) }
	out := SplitBP{Read: lerp(r.Ramp.FromBP, s.Read), Write: lerp(r.Ramp.FromWriteBP, s.Write)}
	out.Write = min(out.Write, out.Read)
	return out
}

// Rollback is the emergency switch: On sends every route to its from region. When it
// is turned off with a ramp, the split comes back linearly from 0 over RampFor,
// starting at RampFrom.
type Rollback struct {
	On       bool          `json:"on"`
	RampFrom time.Time     `json:"ramp_from,omitempty"`
	RampFor  time.Duration `json:"ramp_for,omitempty"`
	Who      string        `json:"who,omitempty"`
	At       time.Time     `json:"at,omitempty"`
}

// Clone returns a deep copy, so a change can be built without touching a published
// value.
func (o Overrides) Clone() Overrides {
	c := o
	c.Routes = make(map[string]RouteOverride, len(o.Routes))
	for k, v := range o.Routes {
		c.Routes[k] = v
	}
	c.cloneLevers(o)
	c.Cutoff.Routes = slices.Clone(o.Cutoff.Routes)
	if o.Plans != nil {
		c.Plans = make(map[string]PlanProgress, len(o.Plans))
		for k, v := range o.Plans {
			c.Plans[k] = v.Clone()
		}
	}
	return c
}

// Ramping reports whether a rollback ramp is still in progress at now.
func (o Overrides) Ramping(now time.Time) bool {
	return !o.Rollback.On && o.Rollback.RampFor > 0 && now.Before(o.Rollback.RampFrom.Add(o.Rollback.RampFor))
}

// RampingAny reports whether the rollback switch or any route's split is ramping at
// now: while it is, the split is recompiled every moment.
func (o Overrides) RampingAny(now time.Time) bool {
	if o.Ramping(now) {
		return true
	}
	for _, r := range o.Routes {
		if r.Ramping(now) {
			return true
		}
	}
	return false
}

// rampSteps is how many steps a ramp takes at most; the split moves in steps of at
// least 1/rampSteps of its target.
const rampSteps = 1000

// Effective returns every route's split (in route order) and whether rollback is on,
// applying overrides for routes that exist and the ramp at now. Overrides for routes
// the config no longer has are ignored (and reported by Stale).
func (o Overrides) Effective(c *Config, now time.Time) ([]SplitBP, bool, error) {
	out := make([]SplitBP, len(c.Routes))
	for i := range c.Routes {
		r := &c.Routes[i]
		s := SplitBP{Read: r.PercentBP, Write: r.WritePercentBP}
		if ro, ok := o.Routes[r.Name]; ok {
			s = ro.SplitAt(now)
		}
		if s.Read < 0 || s.Read > 10000 || s.Write < 0 || s.Write > s.Read {
			return nil, false, fmt.Errorf("route %s: override %s/%s is not a valid split", r.Name, FormatBP(s.Read), FormatBP(s.Write))
		}
		out[i] = s
	}
	if o.Rollback.On {
		return out, true, nil
	}
	if o.Ramping(now) {
		step := int64(now.Sub(o.Rollback.RampFrom)) * rampSteps / int64(o.Rollback.RampFor)
		if step < 0 {
			step = 0
		}
		for i := range out {
			out[i].Read = int(int64(out[i].Read) * step / rampSteps)
			out[i].Write = int(int64(out[i].Write) * step / rampSteps)
		}
	}
	return out, false, nil
}

// Shadowed lists the routes of c whose split in the file is not what serves because
// an override sets it: an edit of the file's percent does nothing until the override
// is cleared.
func (o Overrides) Shadowed(c *Config) []string {
	var out []string
	for i := range c.Routes {
		r := &c.Routes[i]
		if ro, ok := o.Routes[r.Name]; ok && (ro.PercentBP != r.PercentBP || ro.WritePercentBP != r.WritePercentBP) {
			out = append(out, r.Name)
		}
	}
	return out
}

// Stale lists the overridden routes the config does not have.
func (o Overrides) Stale(c *Config) []string {
	var out []string
	for name := range o.Routes {
		if _, ok := c.Route(name); !ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// NextSplit is the split a change asks for, from the split before it: read is the new
// read split; write, when writeSet, the new write split, else the write split stays
// where it was, capped at read, so writes keep lagging reads. It refuses a write split
// above the read split.
func NextSplit(before SplitBP, read, write int, writeSet bool) (SplitBP, error) {
	if !writeSet {
		write = min(before.Write, read)
	}
	if write > read {
		return SplitBP{}, fmt.Errorf("write_percent %s is above percent %s: a user's writes may not move before their reads", FormatBP(write), FormatBP(read))
	}
	return SplitBP{Read: read, Write: write}, nil
}

// MovesBack reports whether going from before to after sends some users (their reads
// or their writes) back to the route's from region.
func (after SplitBP) MovesBack(before SplitBP) bool {
	return after.Read < before.Read || after.Write < before.Write
}
