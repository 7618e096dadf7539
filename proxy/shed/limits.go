package shed

import (
	"fmt"
	"math"
	"time"
)

// Priority says which requests a cap or a budget sheds first. The zero value is Normal,
// the default of a route that names no priority.
type Priority uint8

// The priorities, from last shed to first shed.
const (
	Normal   Priority = iota // shed after Low, before Critical
	Critical                 // shed last
	Low                      // shed first
)

// String returns "normal", "critical" or "low": the config spelling.
func (p Priority) String() string {
	switch p {
	case Normal:
		return "normal"
	case Critical:
		return "critical"
	case Low:
		return "low"
	}
	return fmt.Sprintf("priority(%d)", uint8(p))
}

// ParsePriority reads the config spelling of a priority. The empty string is Normal.
func ParsePriority(s string) (Priority, error) {
	switch s {
	case "", "normal":
		return Normal, nil
	case "critical":
		return Critical, nil
	case "low":
		return Low, nil
	}
	return Normal, fmt.Errorf("want critical, normal or low, got %q", s)
}

// BudgetMode says what happens to a route's request that a byte budget sheds and that
// no cached fallback can answer. The zero value is BudgetRefuse.
type BudgetMode uint8

// The budget modes.
const (
	BudgetRefuse BudgetMode = iota // answer 503 with Retry-After
	BudgetPace                     // hold the request back, then forward it (see Gate.AdmitCross)
)

// String returns "refuse" or "pace": the config spelling.
func (m BudgetMode) String() string {
	switch m {
	case BudgetRefuse:
		return "refuse"
	case BudgetPace:
		return "pace"
	}
	return fmt.Sprintf("budgetmode(%d)", uint8(m))
}

// ParseBudgetMode reads the config spelling of a budget mode. The empty string is
// BudgetRefuse.
func ParseBudgetMode(s string) (BudgetMode, error) {
	switch s {
	case "", "refuse":
		return BudgetRefuse, nil
	case "pace":
		return BudgetPace, nil
	}
	return BudgetRefuse, fmt.Errorf("want refuse or pace, got %q", s)
}

// Limits is the plain configuration of the caps and budgets of one compiled config:
// the file's standing values with the command's overrides applied. It holds no state;
// a [Registry] turns it into a [Gate]. The zero value caps nothing.
//
// Rates are fleet-wide: each instance enforces its share of them (see Share). A zero
// rate is "off"; so are negative, NaN and infinite rates ([Limits.Validate] refuses
// them, [Registry.Gate] treats them as off).
type Limits struct {
	// SiteRPS caps the requests per second of all routes together. Zero is off.
	SiteRPS float64
	// SiteRamp, when SiteRPS is raised or lifted relative to the gate the registry
	// built before, is how long the rate in force takes to climb to the new value.
	// Zero applies the change at once. Lowering a cap always applies at once.
	SiteRamp time.Duration
	// SiteResume is the ramp to SiteRPS already under way when the registry holds no
	// bucket for the site cap yet (see Resume).
	SiteResume Resume

	// Routes are indexed like the compiled config's routes: the routeIdx that
	// [Gate.Admit] takes is an index into this slice. Route names are the identity
	// that keeps a route's bucket and counters across reloads, so they must be unique.
	Routes []Route

	// Regions name the region indexes that [Gate.Bytes] and [Gate.AdmitCross] take,
	// in the compiled config's order.
	Regions []string
	// Budgets are the cross-region byte budgets; From and To name Regions.
	Budgets []Budget

	// Share is this instance's fraction of every request cap: [FleetShare] of the
	// live instances, 1 without a fleet. Zero keeps the registry's current share
	// (1 at first), which [Registry.SetShare] changes between reloads.
	Share float64
	// BudgetShare is this instance's fraction of every byte budget: [FleetShare] of
	// the live instances in this instance's own region, which share the links out of
	// it. Zero keeps the registry's current budget share (1 at first).
	BudgetShare float64
}

// Route is the cap and the shedding settings of one route.
type Route struct {
	// Name is the route's stable identity across reloads.
	Name string
	// RPS caps the route's requests per second. Zero is off.
	RPS float64
	// Ramp is as SiteRamp, for RPS.
	Ramp time.Duration
	// Resume is as Limits.SiteResume, for RPS.
	Resume Resume
	// Priority orders the shedding under the site cap and the byte budgets.
	Priority Priority
	// BudgetMode says whether a request a byte budget sheds is refused or paced.
	BudgetMode BudgetMode
}

// Budget caps the bytes per second that instances in region From exchange with
// upstreams in region To: request and response bytes both count. It is directed: a
// budget From→To binds only the instances whose own region is From.
type Budget struct {
	From, To string
	// BytesPerSec is the budget (conf.ParseRate reads one; see DeriveBudget). Zero is off.
	BytesPerSec float64
	// Ramp is as Limits.SiteRamp, for BytesPerSec.
	Ramp time.Duration
	// Resume is as Limits.SiteResume, for BytesPerSec.
	Resume Resume
}

// Resume is a ramp that began before this process held the cap: a raise (or a lift)
// made with a ramp at Start, climbing from the fleet-wide rate From. A registry that
// has a bucket for the cap follows its own ramp and ignores it; one that has none (the
// process started, or joined the fleet, during the ramp) resumes the ramp at the
// point it has reached instead of applying the new rate at once, which is the jump the
// ramp was there to prevent. The zero value resumes nothing; so does a ramp that has
// ended, or a change that lowers the rate (lowering applies at once). A From that is
// not a positive finite rate resumes nothing: Validate does not refuse it, so a bad
// value in the store can never keep a config from compiling.
type Resume struct {
	From  float64
	Start time.Time
}

// Validate returns an error naming the first field that is out of range: a rate that
// is negative or not finite, a negative ramp, a duplicate or empty route name, a
// budget naming an unknown region or the same region twice, a duplicate budget, or a
// share outside [0, 1].
func (l *Limits) Validate() error {
	if err := checkRate("site_rps", l.SiteRPS, l.SiteRamp); err != nil {
		return err
	}
	names := make(map[string]bool, len(l.Routes))
	for i, r := range l.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			return fmt.Errorf("%s.name: empty", p)
		}
		if names[r.Name] {
			return fmt.Errorf("%s.name: %q used twice", p, r.Name)
		}
		names[r.Name] = true
		if err := checkRate(p+".limit_rps", r.RPS, r.Ramp); err != nil {
			return err
		}
		if r.Priority > Low {
			return fmt.Errorf("%s.priority: %v", p, r.Priority)
		}
		if r.BudgetMode > BudgetPace {
			return fmt.Errorf("%s.budget_mode: %v", p, r.BudgetMode)
		}
	}
	regions := make(map[string]bool, len(l.Regions))
	for i, r := range l.Regions {
		if regions[r] {
			return fmt.Errorf("regions[%d]: %q used twice", i, r)
		}
		regions[r] = true
	}
	pairs := make(map[[2]string]bool, len(l.Budgets))
	for i, b := range l.Budgets {
		p := fmt.Sprintf("budgets[%d]", i)
		switch {
		case !regions[b.From]:
			return fmt.Errorf("%s.from: unknown region %q", p, b.From)
		case !regions[b.To]:
			return fmt.Errorf("%s.to: unknown region %q", p, b.To)
		case b.From == b.To:
			return fmt.Errorf("%s: from and to are both %q", p, b.From)
		case pairs[[2]string{b.From, b.To}]:
			return fmt.Errorf("%s: a second budget from %q to %q", p, b.From, b.To)
		}
		pairs[[2]string{b.From, b.To}] = true
		if err := checkRate(p+".rate", b.BytesPerSec, b.Ramp); err != nil {
			return err
		}
	}
	if !(l.Share >= 0 && l.Share <= 1) {
		return fmt.Errorf("share: want 0..1, got %v", l.Share)
	}
	if !(l.BudgetShare >= 0 && l.BudgetShare <= 1) {
		return fmt.Errorf("budget_share: want 0..1, got %v", l.BudgetShare)
	}
	return nil
}

func checkRate(path string, r float64, ramp time.Duration) error {
	if !(r >= 0) || math.IsInf(r, 0) {
		return fmt.Errorf("%s: want a finite rate >= 0, got %v", path, r)
	}
	if ramp < 0 {
		return fmt.Errorf("%s: negative ramp %v", path, ramp)
	}
	return nil
}

// rateOf is how Registry.Gate reads a rate it was not told was valid: anything but a
// positive finite number is off.
func rateOf(r float64) float64 {
	if r > 0 && !math.IsInf(r, 0) {
		return r
	}
	return 0
}
