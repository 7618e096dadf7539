package conf

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.yaml.in/yaml/v3"
)

// Plan is a route's guarded ramp: the gateway raises the route's split itself, step by
// step, holding each step until gates comparing the moved cohort (in to) with the
// stayed cohort (in from) over the same window pass, and halts or rolls the route back
// when they fail. The plan is config; where it stands is an override (PlanProgress).
type Plan struct {
	// Steps are the splits the plan walks through, rising: a percent, or
	// {percent, write_percent} (write_percent defaults to percent).
	Steps []PlanStep `yaml:"steps"`
	// Hold is the minimum time each step is held before it may advance. Required.
	Hold Duration `yaml:"hold"`
	// MinRequests is how many requests each cohort (moved and stayed) needs in a
	// step's window before its gates may pass or fail; below, they are inconclusive
	// and the step holds. Default 1000.
	MinRequests int `yaml:"min_requests"`
	// Interval is how often the gates are read. Default hold/10, within 1s..30s.
	Interval Duration `yaml:"interval"`
	// Failures is how many consecutive failing readings act (on_fail). Default 2.
	Failures int `yaml:"failures"`
	// OnFail is "rollback" (default: the route's split ramps down to 0 over
	// rollback_ramp) or "halt" (the split stays; a human decides).
	OnFail string `yaml:"on_fail"`
	// RollbackRamp is how long a rollback takes to bring the split down to 0, so the
	// old region warms up instead of taking everyone at once. Default 5m.
	RollbackRamp Duration `yaml:"rollback_ramp"`
	// Gates configure what is compared; error_ratio and latency are on unless off.
	Gates PlanGates `yaml:"gates"`

	// Normalised fields, filled by Parse.

	// Splits are the steps in basis points.
	Splits []SplitBP `yaml:"-"`
	// RollbackOnFail is OnFail == "rollback".
	RollbackOnFail bool `yaml:"-"`
}

// PlanStep is one step of a plan: a YAML scalar (the percent) or a mapping with percent
// and write_percent.
type PlanStep struct {
	Percent      Percent
	WritePercent *Percent
	err          string
}

// UnmarshalYAML implements yaml.Unmarshaler; a problem is kept and reported by
// validation with its line.
func (s *PlanStep) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		return s.Percent.UnmarshalYAML(n)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			switch k {
			case "percent":
				s.Percent.UnmarshalYAML(v) //nolint:errcheck // keeps its error
			case "write_percent":
				s.WritePercent = &Percent{}
				s.WritePercent.UnmarshalYAML(v) //nolint:errcheck // keeps its error
			default:
				s.err = fmt.Sprintf("unknown key %q (known here: percent, write_percent)", k)
			}
		}
		if !hasKey(n, "percent") && s.err == "" {
			s.err = "a step needs a percent"
		}
	default:
		s.err = "want a percent such as 25, or {percent: 25, write_percent: 5}"
	}
	return nil
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// PlanGates configure a plan's gates. Each compares the step's window only.
type PlanGates struct {
	// ErrorRatio: moved's error ratio against stayed's (a one-sided two-proportion
	// test that must also clear a practical floor). On unless off.
	ErrorRatio *PlanErrorGate `yaml:"error_ratio"`
	// Latency: moved's latency quantile against stayed's, with a tolerance. On
	// unless off.
	Latency *PlanLatencyGate `yaml:"latency"`
	// Fallbacks, when set: the share of the route's requests answered by a fallback
	// during the step may not exceed max_percent.
	Fallbacks *PlanFallbackGate `yaml:"fallbacks"`
	// BreakerOpens, when set: the to region's breaker of the route may open at most
	// max times during the step (counted on the instance driving the plan).
	BreakerOpens *PlanBreakerGate `yaml:"breaker_opens"`
}

// PlanErrorGate tunes the error ratio gate; zero fields take the statistics' defaults
// (floor +0.5 points and ×1.5, confidence 0.95).
type PlanErrorGate struct {
	Off         bool    `yaml:"off"`
	FloorPoints float64 `yaml:"floor_points"`
	FloorRatio  float64 `yaml:"floor_ratio"`
	Confidence  float64 `yaml:"confidence"`
}

// PlanLatencyGate tunes the latency gate; zero fields take the statistics' defaults
// (p99, ×1.25, no slack, confidence 0.95).
type PlanLatencyGate struct {
	Off        bool     `yaml:"off"`
	Quantile   float64  `yaml:"quantile"`
	Tolerance  float64  `yaml:"tolerance"`
	Slack      Duration `yaml:"slack"`
	Confidence float64  `yaml:"confidence"`
}

// PlanFallbackGate bounds the fallbacks served during a step.
type PlanFallbackGate struct {
	// MaxPercent of the route's requests in the step (default 1).
	MaxPercent *Percent `yaml:"max_percent"`
	// MaxBP is MaxPercent in basis points, filled by Parse.
	MaxBP int `yaml:"-"`
}

// PlanBreakerGate bounds the breaker opens during a step.
type PlanBreakerGate struct {
	Max int `yaml:"max"`
}

// Plan defaults.
const (
	DefaultPlanMinRequests  = 1000
	DefaultPlanFailures     = 2
	DefaultPlanRollbackRamp = 5 * time.Minute
	DefaultPlanFallbackBP   = 100
	minPlanInterval         = time.Second
	maxPlanInterval         = 30 * time.Second
)

func (p *parser) checkPlan(c *Config, path string, r *Route) {
	pl := r.Plan
	if pl == nil {
		return
	}
	path += ".plan"
	if c.Stats.Off {
		p.errf(path, "a plan is judged from the per-cohort statistics, and stats.off is set")
	}
	if r.FromID == r.ToID && r.FromID != NoRegion {
		p.errf(path, "from and to are both %q: there is nothing to ramp", r.From)
	}
	p.checkPlanSteps(path, r)
	p.unit(path+".hold", pl.Hold.err)
	if pl.Hold.err == "" && pl.Hold.D <= 0 {
		p.errf(path+".hold", "a plan needs a positive hold per step, such as 10m")
	}
	if pl.MinRequests == 0 {
		pl.MinRequests = DefaultPlanMinRequests
	}
	if pl.MinRequests < 1 {
		p.errf(path+".min_requests", "want >= 1 request per cohort, got %d", pl.MinRequests)
	}
	p.unit(path+".interval", pl.Interval.err)
	if pl.Interval.D == 0 {
		pl.Interval.D = min(max(pl.Hold.D/10, minPlanInterval), maxPlanInterval)
	}
	if pl.Interval.D < 100*time.Millisecond {
		p.errf(path+".interval", "want at least 100ms between gate readings, got %s", pl.Interval.D)
	}
	if pl.Failures == 0 {
		pl.Failures = DefaultPlanFailures
	}
	if pl.Failures < 1 || pl.Failures > 100 {
		p.errf(path+".failures", "want 1..100 consecutive failing readings, got %d", pl.Failures)
	}
	switch pl.OnFail {
	case "", "rollback":
		pl.OnFail, pl.RollbackOnFail = "rollback", true
	case "halt":
	default:
		p.errf(path+".on_fail", "want halt or rollback, got %q", pl.OnFail)
	}
	p.unit(path+".rollback_ramp", pl.RollbackRamp.err)
	if pl.RollbackRamp.D == 0 {
		pl.RollbackRamp.D = DefaultPlanRollbackRamp
	}
	if pl.RollbackRamp.D > 24*time.Hour {
		p.errf(path+".rollback_ramp", "want at most 24h, got %s", pl.RollbackRamp.D)
	}
	p.checkPlanGates(path+".gates", &pl.Gates)
}

// checkPlanSteps checks that the steps rise within 0..100, that writes never lead
// reads, and that the last step is above the route's own split: a plan whose steps
// all lie at or below it could never move anyone.
func (p *parser) checkPlanSteps(path string, r *Route) {
	pl := r.Plan
	if len(pl.Steps) == 0 {
		p.errf(path+".steps", "a plan needs at least one step, such as [1, 5, 25, 50, 100]")
		return
	}
	if len(pl.Steps) > 100 {
		p.errf(path+".steps", "at most 100 steps, got %d", len(pl.Steps))
		return
	}
	prev := SplitBP{}
	pl.Splits = make([]SplitBP, 0, len(pl.Steps))
	for i, s := range pl.Steps {
		sp := fmt.Sprintf("%s.steps[%d]", path, i)
		if s.err != "" {
			p.errf(sp, "%s", s.err)
			return
		}
		if s.Percent.err != "" {
			p.errf(sp, "%s", s.Percent.err)
			return
		}
		bp := SplitBP{Read: s.Percent.BP, Write: s.Percent.BP}
		if s.WritePercent != nil {
			if s.WritePercent.err != "" {
				p.errf(sp+".write_percent", "%s", s.WritePercent.err)
				return
			}
			bp.Write = s.WritePercent.BP
		}
		switch {
		case bp.Read <= 0:
			p.errf(sp, "a step must move someone: want 0.01..100, got 0")
		case i > 0 && bp.Read <= prev.Read:
			p.errf(sp, "steps must rise: %s%% does not rise above the step before (%s%%)", FormatBP(bp.Read), FormatBP(prev.Read))
		case bp.Write > bp.Read:
			p.errf(sp, "write_percent %s is above percent %s: a user's writes may not move before their reads", FormatBP(bp.Write), FormatBP(bp.Read))
		case bp.Write < prev.Write:
			p.errf(sp, "write_percent %s falls below the step before (%s%%): a plan never moves writes back", FormatBP(bp.Write), FormatBP(prev.Write))
		}
		prev = bp
		pl.Splits = append(pl.Splits, bp)
	}
	if last := pl.Splits[len(pl.Splits)-1]; last.Read <= r.PercentBP {
		p.errf(fmt.Sprintf("%s.steps[%d]", path, len(pl.Steps)-1),
			"the last step (%s%%) is not above the route's percent (%s%%): the plan could never move anyone", FormatBP(last.Read), FormatBP(r.PercentBP))
	}
}

func (p *parser) checkPlanGates(path string, g *PlanGates) {
	if g.ErrorRatio == nil {
		g.ErrorRatio = &PlanErrorGate{}
	}
	if e := g.ErrorRatio; e.FloorPoints < 0 || e.FloorRatio < 0 || e.Confidence < 0 || e.Confidence >= 1 {
		p.errf(path+".error_ratio", "floor_points and floor_ratio must be >= 0, confidence in (0, 1)")
	}
	if g.Latency == nil {
		g.Latency = &PlanLatencyGate{}
	}
	l := g.Latency
	p.unit(path+".latency.slack", l.Slack.err)
	if l.Quantile < 0 || l.Quantile >= 1 || l.Tolerance < 0 || l.Confidence < 0 || l.Confidence >= 1 {
		p.errf(path+".latency", "quantile and confidence in (0, 1), tolerance >= 0")
	}
	if f := g.Fallbacks; f != nil {
		f.MaxBP = DefaultPlanFallbackBP
		if f.MaxPercent != nil {
			p.unit(path+".fallbacks.max_percent", f.MaxPercent.err)
			f.MaxBP = f.MaxPercent.BP
		}
	}
	if b := g.BreakerOpens; b != nil && b.Max < 0 {
		p.errf(path+".breaker_opens.max", "want >= 0, got %d", b.Max)
	}
	if g.ErrorRatio.Off && g.Latency.Off && g.Fallbacks == nil && g.BreakerOpens == nil {
		p.errf(path, "every gate is off: a plan needs at least one gate to judge its steps by")
	}
}

// PlanFingerprint identifies what a running plan depends on in r: its regions, salt,
// keys, file split and the plan itself. A reload that changes it pauses the plan
// (the human wins); an unchanged restart resumes it.
func (r *Route) PlanFingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s|%s|%s|%q|%d/%d|", r.From, r.To, r.Match.Host+r.Match.PathPrefix, r.SaltValue, r.PercentBP, r.WritePercentBP)
	for _, k := range r.KeySources {
		b.WriteString(k.String())
		b.WriteByte(',')
	}
	if pl := r.Plan; pl != nil {
		fmt.Fprintf(&b, "|%v|%s|%d|%s|%d|%s|%s|%+v|%+v", pl.Splits, pl.Hold.D, pl.MinRequests, pl.Interval.D,
			pl.Failures, pl.OnFail, pl.RollbackRamp.D, *pl.Gates.ErrorRatio, *pl.Gates.Latency)
		if f := pl.Gates.Fallbacks; f != nil {
			fmt.Fprintf(&b, "|fb%d", f.MaxBP)
		}
		if br := pl.Gates.BreakerOpens; br != nil {
			fmt.Fprintf(&b, "|br%d", br.Max)
		}
	}
	return strconv.FormatUint(xxhash.Sum64String(b.String()), 16)
}
