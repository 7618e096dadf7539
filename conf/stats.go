package conf

// Stats configures the per-cohort statistics behind /v1/stats, the dashboard and the
// ramp plans' gates. They are on by default: their cost per request is a few atomic
// adds, and the cutover is run from them.
type Stats struct {
	// Off turns them off: nothing is recorded, /v1/stats answers 404, and ramp plans
	// cannot be judged.
	Off bool `yaml:"off"`
	// TopSample records the source of one request in TopSample still served by the
	// old region (each counting TopSample), keeping the top-K lock off most requests.
	// Default 16.
	TopSample int `yaml:"top_sample"`
}

// DefaultStatsTopSample is the default of stats.top_sample.
const DefaultStatsTopSample = 16

func (p *parser) checkStats(c *Config) {
	s := &c.Stats
	if s.TopSample == 0 {
		s.TopSample = DefaultStatsTopSample
	}
	if s.TopSample < 1 || s.TopSample > 1<<16 {
		p.errf("stats.top_sample", "want 1..65536, got %d", s.TopSample)
	}
}
