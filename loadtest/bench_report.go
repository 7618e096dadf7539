package loadtest

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
)

// Bench target names. "direct" is the load generator straight at the backend: the
// ceiling of the load side, with no proxy CPU to measure.
const (
	targetDirect    = "direct"
	targetNginx     = "nginx"
	targetHAProxy   = "haproxy"
	targetShiftgate = "shiftgate"
	// targetPipelined is shiftgate with the split route's pipeline option on: the
	// same config plus `pipeline: true` on the feed route.
	targetPipelined = "shiftgate-pipelined"
	// targetLevers is shiftgate with the emergency levers on and not reached: a site
	// cap, a cap on the split route and a byte budget on the link its moved users
	// cross (self_region idc), to read what they cost against plain shiftgate.
	targetLevers = "shiftgate-levers"
)

// benchSample is one measured run of one target at one connection count.
type benchSample struct {
	Round     int              `json:"round"`
	Target    string           `json:"target"`
	Conns     int              `json:"conns"`
	Requests  int64            `json:"requests"`
	Errors    int64            `json:"errors"`
	ErrorKind map[string]int64 `json:"error_kinds,omitempty"`
	RPS       float64          `json:"rps"`
	P50MS     float64          `json:"p50_ms"`
	P99MS     float64          `json:"p99_ms"`
	// CPUS, RSSMiB and ReqPerCPU are the proxy's; zero for the direct target.
	CPUS      float64 `json:"proxy_cpu_s"`
	RSSMiB    float64 `json:"proxy_rss_mib"`
	ReqPerCPU float64 `json:"req_per_proxy_cpu_s"`
	// SysCPUS is the part of CPUS the proxy spent in the kernel.
	SysCPUS float64 `json:"proxy_sys_cpu_s"`
	// LoadCPUPct is how busy the load side (generator + backend) kept its core, in
	// percent of the run: near 100, the load side and not the proxy set the pace.
	LoadCPUPct float64 `json:"load_cpu_pct"`
	// OtherCPUPct is the busiest bench core's time spent on processes outside the
	// bench, in percent of the run: above a few percent, the figures are disturbed.
	OtherCPUPct float64 `json:"other_cpu_pct"`
	// StealPct is the most a bench core lost to the hypervisor (steal time), in
	// percent of the run: the other % a virtual machine cannot see from inside.
	StealPct float64 `json:"steal_pct"`
	// TLS is what the run's first TLS connection negotiated ("" for plain).
	TLS string `json:"tls,omitempty"`
}

// benchSummary is the median over rounds of one target at one connection count.
type benchSummary struct {
	Target    string  `json:"target"`
	Conns     int     `json:"conns"`
	Rounds    int     `json:"rounds"`
	Errors    int64   `json:"errors"` // summed over rounds
	RPS       float64 `json:"rps"`
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	CPUS      float64 `json:"proxy_cpu_s"`
	RSSMiB    float64 `json:"proxy_rss_mib"`
	ReqPerCPU float64 `json:"req_per_proxy_cpu_s"`
	// KernelPct is the share of the proxy's CPU spent in the kernel, in percent: a
	// proxy making the same system calls and wake-ups cannot spend less than that
	// part, so 100/KernelPct bounds what any user-space saving can gain over it.
	KernelPct   float64 `json:"proxy_kernel_pct"`
	LoadCPUPct  float64 `json:"load_cpu_pct"`
	OtherCPUPct float64 `json:"other_cpu_pct"` // the worst round's
	StealPct    float64 `json:"steal_pct"`     // the worst round's
}

// spread is a median with the range it was taken over.
type spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// benchRatio compares shiftgate with one peer at one connection count; each figure is
// shiftgate's divided by the peer's, taken within a round (both measured minutes
// apart on the same machine) and then summarized over rounds. Above 1 is better for
// RPS and ReqPerCPU, below 1 is better for P99.
type benchRatio struct {
	Target    string `json:"target"`
	Peer      string `json:"peer"`
	Conns     int    `json:"conns"`
	RPS       spread `json:"rps"`
	P99       spread `json:"p99"`
	ReqPerCPU spread `json:"req_per_proxy_cpu_s"`
}

// benchReport is everything a bench run measured; -json prints it.
type benchReport struct {
	Samples []benchSample  `json:"samples"`
	Summary []benchSummary `json:"summary"`
	Ratios  []benchRatio   `json:"ratios"`
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	return spread{Median: median(v), Min: slices.Min(v), Max: slices.Max(v), N: len(v)}
}

// summarize builds the report; targets and conns give the order of its rows.
func summarize(samples []benchSample, targets []string, conns []int) benchReport {
	rep := benchReport{Samples: samples}
	for _, c := range conns {
		for _, t := range targets {
			var rps, p50, p99, cpu, rss, eff, kernel, load []float64
			var errs int64
			var other, steal float64
			for _, s := range samples {
				if s.Conns != c || s.Target != t {
					continue
				}
				rps, p50, p99 = append(rps, s.RPS), append(p50, s.P50MS), append(p99, s.P99MS)
				cpu, rss, eff = append(cpu, s.CPUS), append(rss, s.RSSMiB), append(eff, s.ReqPerCPU)
				load = append(load, s.LoadCPUPct)
				if s.CPUS > 0 {
					kernel = append(kernel, 100*s.SysCPUS/s.CPUS)
				}
				errs += s.Errors
				other = max(other, s.OtherCPUPct)
				steal = max(steal, s.StealPct)
			}
			if len(rps) == 0 {
				continue
			}
			rep.Summary = append(rep.Summary, benchSummary{
				Target: t, Conns: c, Rounds: len(rps), Errors: errs,
				RPS: median(rps), P50MS: median(p50), P99MS: median(p99),
				CPUS: median(cpu), RSSMiB: median(rss), ReqPerCPU: median(eff), KernelPct: median(kernel),
				LoadCPUPct: median(load), OtherCPUPct: other, StealPct: steal,
			})
		}
		for _, sg := range shiftgateVariants {
			for _, peer := range []string{targetNginx, targetHAProxy} {
				if r, ok := ratioOfTarget(samples, sg, peer, c); ok {
					rep.Ratios = append(rep.Ratios, r)
				}
			}
		}
		for _, v := range shiftgateVariants[1:] {
			if r, ok := ratioOfTarget(samples, v, targetShiftgate, c); ok {
				rep.Ratios = append(rep.Ratios, r)
			}
		}
		// The floors against the peers, and shiftgate against each floor: how far
		// shiftgate is from what Go itself reaches.
		for _, f := range floorTargets {
			for _, peer := range []string{targetNginx, targetHAProxy} {
				if r, ok := ratioOfTarget(samples, f, peer, c); ok {
					rep.Ratios = append(rep.Ratios, r)
				}
			}
		}
		for _, f := range floorTargets {
			if r, ok := ratioOfTarget(samples, targetShiftgate, f, c); ok {
				rep.Ratios = append(rep.Ratios, r)
			}
		}
	}
	return rep
}

// ratioOf pairs shiftgate's and peer's samples of the same round.
func ratioOf(samples []benchSample, peer string, conns int) (benchRatio, bool) {
	return ratioOfTarget(samples, targetShiftgate, peer, conns)
}

// ratioOfTarget pairs a shiftgate target's and peer's samples of the same round.
func ratioOfTarget(samples []benchSample, target, peer string, conns int) (benchRatio, bool) {
	type pair struct{ sg, peer *benchSample }
	byRound := map[int]*pair{}
	for i := range samples {
		s := &samples[i]
		if s.Conns != conns {
			continue
		}
		p := byRound[s.Round]
		if p == nil {
			p = &pair{}
			byRound[s.Round] = p
		}
		switch s.Target {
		case target:
			p.sg = s
		case peer:
			p.peer = s
		}
	}
	var rps, p99, eff []float64
	for _, round := range slices.Sorted(maps.Keys(byRound)) {
		p := byRound[round]
		if p.sg == nil || p.peer == nil {
			continue
		}
		rps = appendRatio(rps, p.sg.RPS, p.peer.RPS)
		p99 = appendRatio(p99, p.sg.P99MS, p.peer.P99MS)
		eff = appendRatio(eff, p.sg.ReqPerCPU, p.peer.ReqPerCPU)
	}
	if len(rps) == 0 {
		return benchRatio{}, false
	}
	return benchRatio{Target: target, Peer: peer, Conns: conns, RPS: spreadOf(rps), P99: spreadOf(p99), ReqPerCPU: spreadOf(eff)}, true
}

func appendRatio(v []float64, a, b float64) []float64 {
	if b <= 0 {
		return v // no meaningful ratio (the peer measured nothing)
	}
	return append(v, a/b)
}

// writeBenchText prints the summary table and the ratios for people.
func writeBenchText(w io.Writer, rep benchReport) error {
	rounds := 0
	for _, s := range rep.Summary {
		rounds = max(rounds, s.Rounds)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "conns\ttarget\treq/s\tp50 ms\tp99 ms\tproxy cpu-s\tkernel %%\tproxy RSS MiB\treq/proxy-cpu-s\tload core %%\tother %%\tsteal %%\terrors\t\n")
	for _, s := range rep.Summary {
		if s.Target == targetDirect {
			fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.2f\t%.2f\t-\t-\t-\t-\t%.0f\t%.0f\t%.0f\t%d\t\n",
				s.Conns, s.Target, s.RPS, s.P50MS, s.P99MS, s.LoadCPUPct, s.OtherCPUPct, s.StealPct, s.Errors)
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.0f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t\n",
			s.Conns, s.Target, s.RPS, s.P50MS, s.P99MS, s.CPUS, s.KernelPct, s.RSSMiB, s.ReqPerCPU, s.LoadCPUPct, s.OtherCPUPct, s.StealPct, s.Errors)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, s := range rep.Samples {
		if s.TLS != "" && !seen[s.Target+s.TLS] {
			seen[s.Target+s.TLS] = true
			fmt.Fprintf(w, "tls %-20s %s\n", s.Target+":", s.TLS)
		}
	}
	fmt.Fprintf(w, "(median of %d round(s); direct = load generator straight at the backend, no proxy;\n"+
		" kernel %% = the proxy's CPU spent in the kernel (system calls, loopback delivery, wake-ups):\n"+
		" a proxy making the same calls and wake-ups gains at most 100/kernel%% over it per CPU;\n"+
		" load core %% = CPU of load generator + backend over the run: near 100, the load side set the pace;\n"+
		" other %% = the most either bench core spent on processes outside the bench, worst round:\n"+
		" above a few percent, the machine was not quiet and the figures are disturbed;\n"+
		" steal %% = the most a bench core lost to the hypervisor (a busy host), worst round)\n", rounds)
	if len(rep.Ratios) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\ntarget / peer, within each round: median [min .. max]; req/s and req/cpu-s higher is better, p99 lower\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "conns\ttarget\tpeer\treq/s\tp99\treq/proxy-cpu-s\n")
	for _, r := range rep.Ratios {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Conns, r.Target, r.Peer, fmtSpread(r.RPS), fmtSpread(r.P99), fmtSpread(r.ReqPerCPU))
	}
	return tw.Flush()
}

func fmtSpread(s spread) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.2f", s.Median)
	}
	return fmt.Sprintf("%.2f [%.2f .. %.2f]", s.Median, s.Min, s.Max)
}
