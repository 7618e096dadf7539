package conf

import (
	"fmt"
	"math"
	"strings"
)

// The emergency levers' keys: request caps (limits.site_rps, routes[i].limit_rps), the
// route's priority and budget mode, and cross-region byte budgets (budgets). The file
// gives their standing values; `shiftgate limit` and `shiftgate budget` override them
// at run time (Overrides.SiteLimit, RouteLimits, Budgets), as splits are overridden.

// The priorities a route may name, from shed last to shed first.
const (
	PriorityCritical = "critical"
	PriorityNormal   = "normal"
	PriorityLow      = "low"
)

// The budget modes a route may name.
const (
	BudgetRefuse = "refuse"
	BudgetPace   = "pace"
)

// Budget caps the bytes per second that instances in region From exchange with
// upstreams in region To (request and response bytes both count). It binds the
// instances whose self_region is From.
type Budget struct {
	From string `yaml:"from"`
	To   string `yaml:"to"`
	Rate Rate   `yaml:"rate"`
}

// BudgetKey names the region pair of a budget: "FROM/TO". Region names are tokens
// without a slash, so the key splits back unambiguously (SplitBudgetKey).
func BudgetKey(from, to string) string { return from + "/" + to }

// SplitBudgetKey reads a BudgetKey; ok is false unless k is two non-empty names
// joined by one slash.
func SplitBudgetKey(k string) (from, to string, ok bool) {
	from, to, ok = strings.Cut(k, "/")
	if !ok || from == "" || to == "" || strings.Contains(to, "/") {
		return "", "", false
	}
	return from, to, true
}

// MaxRPS bounds a request cap: far above any site, and small enough that a token
// bucket's arithmetic in float64 stays exact to the request.
const MaxRPS = 1e9

// CheckRPS validates a request cap: 0 (no cap) or a finite number in (0, MaxRPS].
func CheckRPS(v float64) error {
	if math.IsNaN(v) || v < 0 || v > MaxRPS {
		return fmt.Errorf("want a request rate in 0..%g (0: no cap), got %v", float64(MaxRPS), v)
	}
	return nil
}

func (p *parser) checkLevers(c *Config) {
	l := &c.Limits
	p.unit("limits.ramp", l.Ramp.err)
	if err := CheckRPS(l.SiteRPS); err != nil {
		p.errf("limits.site_rps", "%v", err)
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		path := fmt.Sprintf("routes[%d]", i)
		if err := CheckRPS(r.LimitRPS); err != nil {
			p.errf(path+".limit_rps", "%v", err)
		}
		switch r.Priority {
		case PriorityCritical, PriorityNormal, PriorityLow:
		default:
			p.errf(path+".priority", "want critical, normal or low, got %q", r.Priority)
		}
		switch r.BudgetMode {
		case BudgetRefuse, BudgetPace:
		default:
			p.errf(path+".budget_mode", "want refuse or pace, got %q", r.BudgetMode)
		}
	}
	seen := map[string]int{}
	for i := range c.Budgets {
		b := &c.Budgets[i]
		path := fmt.Sprintf("budgets[%d]", i)
		if c.SelfRegion == "" && i == 0 {
			p.errf(path, "a byte budget needs self_region: the region this instance runs in, so it knows which upstreams are across a link")
		}
		from := p.budgetRegion(c, path+".from", b.From)
		to := p.budgetRegion(c, path+".to", b.To)
		if from != NoRegion && from == to {
			p.errf(path+".to", "from and to are both %q: a budget caps the traffic between two regions", b.From)
		}
		p.unit(path+".rate", b.Rate.err)
		if b.Rate.err == "" && !(b.Rate.BytesPerSec > 0) {
			p.errf(path+".rate", "a rate is needed, such as 800Mbit")
		}
		k := BudgetKey(b.From, b.To)
		if j, dup := seen[k]; dup {
			p.errf(path, "the budget %s -> %s is already set at budgets[%d]", b.From, b.To, j)
		} else {
			seen[k] = i
		}
	}
}

func (p *parser) budgetRegion(c *Config, path, name string) RegionID {
	if name == "" {
		p.errf(path, "a region is needed")
		return NoRegion
	}
	return p.region(c, path, name)
}

// FileBudget returns the file's budget for the pair from → to.
func (c *Config) FileBudget(from, to string) (Budget, bool) {
	for _, b := range c.Budgets {
		if b.From == from && b.To == to {
			return b, true
		}
	}
	return Budget{}, false
}
