package conf

import (
	"maps"
	"sort"
	"time"
)

// LimitOverride replaces a request cap, the site's or a route's, at run time.
type LimitOverride struct {
	// RPS is the fleet-wide cap in requests per second; 0 lifts the cap (no cap,
	// whatever the file says) until the override is cleared.
	RPS float64 `json:"rps"`
	// Ramp, when the change raises or lifts the cap in force, is how long the cap
	// takes to climb (0: at once). Lowering applies at once.
	Ramp time.Duration `json:"ramp,omitempty"`
	// From is the fleet-wide rate in force when a ramp up began at At (0 when the
	// change does not ramp up): an instance that starts during the ramp resumes it
	// there instead of jumping to RPS.
	From float64   `json:"from,omitempty"`
	Who  string    `json:"who,omitempty"`
	At   time.Time `json:"at,omitzero"`
}

// BudgetOverride replaces the byte budget of a region pair at run time.
type BudgetOverride struct {
	// BytesPerSec is the budget; 0 turns it off until the override is cleared.
	BytesPerSec float64 `json:"bytes_per_sec"`
	// Ramp and From are as LimitOverride's, for BytesPerSec.
	Ramp time.Duration `json:"ramp,omitempty"`
	From float64       `json:"from,omitempty"`
	Who  string        `json:"who,omitempty"`
	At   time.Time     `json:"at,omitzero"`
}

// cloneLevers deep-copies the lever overrides of o into c.
func (c *Overrides) cloneLevers(o Overrides) {
	if o.SiteLimit != nil {
		v := *o.SiteLimit
		c.SiteLimit = &v
	}
	c.RouteLimits = make(map[string]LimitOverride, len(o.RouteLimits))
	maps.Copy(c.RouteLimits, o.RouteLimits)
	c.Budgets = make(map[string]BudgetOverride, len(o.Budgets))
	maps.Copy(c.Budgets, o.Budgets)
}

// EffectiveLimit is a request cap as it is in force: the file's value, or the
// override's.
type EffectiveLimit struct {
	RPS  float64
	Ramp time.Duration
	// Override is the override that sets it, nil when the file's value applies.
	Override *LimitOverride
}

// SiteLimitOf returns the site cap in force: the override's, else the file's.
func (o Overrides) SiteLimitOf(c *Config) EffectiveLimit {
	if ov := o.SiteLimit; ov != nil {
		v := *ov
		return EffectiveLimit{RPS: v.RPS, Ramp: v.Ramp, Override: &v}
	}
	return EffectiveLimit{RPS: c.Limits.SiteRPS, Ramp: c.Limits.Ramp.D}
}

// RouteLimitOf returns the cap in force for route r: the override's, else the file's.
func (o Overrides) RouteLimitOf(c *Config, r *Route) EffectiveLimit {
	if ov, ok := o.RouteLimits[r.Name]; ok {
		return EffectiveLimit{RPS: ov.RPS, Ramp: ov.Ramp, Override: &ov}
	}
	return EffectiveLimit{RPS: r.LimitRPS, Ramp: c.Limits.Ramp.D}
}

// EffectiveBudget is a byte budget as it is in force.
type EffectiveBudget struct {
	From, To    string
	BytesPerSec float64
	Ramp        time.Duration
	// FileBytesPerSec is the file's budget for the pair (0: none).
	FileBytesPerSec float64
	// Override is the override that sets it, nil when the file's value applies.
	Override *BudgetOverride
}

// BudgetsOf returns every budget the file or an override names, for pairs of regions
// that c has, sorted by pair. A budget turned off by an override is listed with 0
// bytes per second; overrides for regions c does not have are left out (Stale).
func (o Overrides) BudgetsOf(c *Config) []EffectiveBudget {
	byKey := map[string]*EffectiveBudget{}
	for _, b := range c.Budgets {
		byKey[BudgetKey(b.From, b.To)] = &EffectiveBudget{From: b.From, To: b.To,
			BytesPerSec: b.Rate.BytesPerSec, Ramp: c.Limits.Ramp.D, FileBytesPerSec: b.Rate.BytesPerSec}
	}
	for k, ov := range o.Budgets {
		from, to, ok := SplitBudgetKey(k)
		if !ok {
			continue
		}
		if _, ok := c.Region(from); !ok {
			continue
		}
		if _, ok := c.Region(to); !ok || from == to {
			continue
		}
		e := byKey[k]
		if e == nil {
			e = &EffectiveBudget{From: from, To: to}
			byKey[k] = e
		}
		v := ov
		e.BytesPerSec, e.Ramp, e.Override = v.BytesPerSec, v.Ramp, &v
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]EffectiveBudget, 0, len(keys))
	for _, k := range keys {
		out = append(out, *byKey[k])
	}
	return out
}

// StaleLevers lists the lever overrides that name routes or regions c does not have
// ("limits/routes/NAME", "budgets/FROM/TO"): kept in the store, applied to nothing.
func (o Overrides) StaleLevers(c *Config) []string {
	var out []string
	for name := range o.RouteLimits {
		if _, ok := c.Route(name); !ok {
			out = append(out, "limits/routes/"+name)
		}
	}
	for k := range o.Budgets {
		from, to, ok := SplitBudgetKey(k)
		_, okf := c.Region(from)
		_, okt := c.Region(to)
		if !ok || !okf || !okt || from == to {
			out = append(out, "budgets/"+k)
		}
	}
	sort.Strings(out)
	return out
}
