package conf

import (
	"fmt"
	"strings"
	"time"
)

// Mirror is a route's traffic mirroring: a sampled share of the requests its from
// region answers is copied, fire and forget, to another region (default the route's
// to), and the two answers are compared. The copies carry X-Shift-Mirror: 1.
type Mirror struct {
	// Percent is the share of requests mirrored, 0.01..100.
	Percent *Percent `yaml:"percent"`
	// To is the region the copies go to; default the route's to.
	To string `yaml:"to"`
	// Methods may be mirrored; default GET and HEAD. Anything else sends real writes
	// to the mirror region (marked, but executed by any backend that ignores the mark).
	Methods []string `yaml:"methods"`
	// MaxBody is the largest request body mirrored (default 64KiB); larger ones, and
	// streamed ones, are not mirrored: the main path never buffers for the mirror.
	MaxBody ByteSize `yaml:"max_body"`
	// Rate caps the copies per second (0: no cap beyond the queue).
	Rate float64 `yaml:"rate"`
	// Ignore lists what is never compared: JSON paths ("meta.ts", "$.items[*].id") and
	// response headers ("header:Date").
	Ignore []string `yaml:"ignore"`
	// CompareHeaders are the response headers compared (default Content-Type,
	// Content-Encoding, Location; "*" for all but volatile ones).
	CompareHeaders []string `yaml:"compare_headers"`
	// NoiseShare is the share of compared requests also sent to a second upstream of
	// the from region to measure noise (default 50 when from has two or more).
	NoiseShare *Percent `yaml:"noise_share"`

	// Normalised fields, filled by Parse.

	// PercentBP and NoiseShareBP are the shares in basis points.
	PercentBP, NoiseShareBP int `yaml:"-"`
	// ToID is the mirror region.
	ToID RegionID `yaml:"-"`
	// IgnorePaths and IgnoreHeaders are Ignore split by kind.
	IgnorePaths, IgnoreHeaders []string `yaml:"-"`
}

// MirrorSettings are the mirror's process-wide settings (top-level `mirror:`).
type MirrorSettings struct {
	// Workers bound the copies in flight at once, over all routes (default 8).
	Workers int `yaml:"workers"`
	// Queue bounds the copies waiting; when full, copies are dropped and counted
	// (default 256).
	Queue int `yaml:"queue"`
	// Timeout bounds one copy's exchange with its target (default 2s).
	Timeout Duration `yaml:"timeout"`
	// MaxAnswer is how much of each answer is compared (default 64KiB); a longer one
	// is compared up to it and marked truncated.
	MaxAnswer ByteSize `yaml:"max_answer"`
	// RelMargin and AbsMargin: a field is reported as differing only if its raw
	// difference rate exceeds its noise rate by both (defaults 0.2 and 0.0003).
	RelMargin float64 `yaml:"rel_margin"`
	AbsMargin float64 `yaml:"abs_margin"`
}

// Mirror defaults.
const (
	DefaultMirrorWorkers    = 8
	DefaultMirrorQueue      = 256
	DefaultMirrorTimeout    = 2 * time.Second
	DefaultMirrorMaxAnswer  = 64 << 10
	DefaultMirrorMaxBody    = 64 << 10
	DefaultMirrorNoiseShare = 5000
	DefaultMirrorRelMargin  = 0.2
	DefaultMirrorAbsMargin  = 0.0003
)

func (p *parser) checkMirrorSettings(c *Config) {
	m := &c.MirrorSettings
	p.unit("mirror.timeout", m.Timeout.err)
	p.unit("mirror.max_answer", m.MaxAnswer.err)
	if m.Workers == 0 {
		m.Workers = DefaultMirrorWorkers
	}
	if m.Queue == 0 {
		m.Queue = DefaultMirrorQueue
	}
	if m.Timeout.D == 0 {
		m.Timeout.D = DefaultMirrorTimeout
	}
	if m.MaxAnswer.N == 0 {
		m.MaxAnswer.N = DefaultMirrorMaxAnswer
	}
	if m.RelMargin == 0 {
		m.RelMargin = DefaultMirrorRelMargin
	}
	if m.AbsMargin == 0 {
		m.AbsMargin = DefaultMirrorAbsMargin
	}
	switch {
	case m.Workers < 1 || m.Workers > 1024:
		p.errf("mirror.workers", "want 1..1024, got %d", m.Workers)
	case m.Queue < 1 || m.Queue > 1<<20:
		p.errf("mirror.queue", "want 1..1048576, got %d", m.Queue)
	case m.RelMargin < 0 || m.AbsMargin < 0 || m.AbsMargin > 1:
		p.errf("mirror", "rel_margin and abs_margin must be >= 0 (abs_margin a rate <= 1)")
	}
}

func (p *parser) checkMirror(c *Config, path string, r *Route) {
	m := r.Mirror
	if m == nil {
		return
	}
	path += ".mirror"
	if m.Percent == nil {
		p.errf(path+".percent", "a mirror needs a percent (0.01..100)")
		m.Percent = &Percent{}
	}
	p.unit(path+".percent", m.Percent.err)
	m.PercentBP = m.Percent.BP
	if m.Percent.err == "" && m.PercentBP < 1 {
		p.errf(path+".percent", "want 0.01..100, got 0 (remove the mirror to turn it off)")
	}
	to, toPath := m.To, path+".to"
	if to == "" {
		to, toPath = r.To, path
	}
	m.ToID = p.region(c, toPath, to)
	m.To = to
	if m.ToID != NoRegion && m.ToID == r.FromID {
		p.errf(toPath, "the mirror region %q is the route's from region: copies must go elsewhere", to)
	}
	if len(m.Methods) == 0 {
		m.Methods = []string{"GET", "HEAD"}
	}
	for i, meth := range m.Methods {
		if meth == "" || strings.ToUpper(meth) != meth || !isToken(meth) {
			p.errf(fmt.Sprintf("%s.methods[%d]", path, i), "want an upper-case method such as GET, got %q", meth)
		}
	}
	p.unit(path+".max_body", m.MaxBody.err)
	if m.MaxBody.N == 0 {
		m.MaxBody.N = DefaultMirrorMaxBody
	}
	if m.Rate < 0 {
		p.errf(path+".rate", "want >= 0 copies per second, got %v", m.Rate)
	}
	for i, ig := range m.Ignore {
		switch name, isHeader := strings.CutPrefix(ig, "header:"); {
		case ig == "" || (isHeader && name == ""):
			p.errf(fmt.Sprintf("%s.ignore[%d]", path, i), "empty entry")
		case isHeader:
			m.IgnoreHeaders = append(m.IgnoreHeaders, name)
		default:
			m.IgnorePaths = append(m.IgnorePaths, ig)
		}
	}
	m.NoiseShareBP = DefaultMirrorNoiseShare
	if m.NoiseShare != nil {
		p.unit(path+".noise_share", m.NoiseShare.err)
		m.NoiseShareBP = m.NoiseShare.BP
	}
}
