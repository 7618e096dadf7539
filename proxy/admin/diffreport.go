package admin

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/shiftgate/shiftgate/proxy/mirror"
)

// WriteDiff prints what the mirrors compared, as `shiftgate diff` shows it: per route
// the counts and latencies, then each field that differed with its verdict, its raw
// difference rate against the mirror region and its noise rate between two upstreams
// of the old region, and one sample.
func WriteDiff(stdout io.Writer, snap mirror.Snapshot) {
	if len(snap.Routes) == 0 {
		fmt.Fprintln(stdout, "no route mirrors traffic (set routes[i].mirror)")
		return
	}
	for _, r := range snap.Routes {
		fmt.Fprintf(stdout, "route %s: %d compared (%d same, %d differing), %d dropped, %d limited, %d skipped, %d errors, %d truncated\n",
			r.Name, r.Compared, r.Same, r.Differing, r.Dropped, r.Limited, r.Skipped, r.Errors, r.Truncated)
		l := r.Latency
		fmt.Fprintf(stdout, "  latency: served p50 %.1f ms, p99 %.1f ms; mirror p50 %.1f ms, p99 %.1f ms\n",
			l.PrimaryP50Ms, l.PrimaryP99Ms, l.MirrorP50Ms, l.MirrorP99Ms)
		if len(r.Fields) == 0 {
			fmt.Fprintln(stdout, "  no field differed")
			continue
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  FIELD\tVERDICT\tRAW\tNOISE\tSAMPLE")
		for _, f := range r.Fields {
			sample := ""
			if len(f.Samples) > 0 {
				s := f.Samples[0]
				sample = fmt.Sprintf("%s: %s -> %s", s.Path, s.Primary, s.Mirror)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%.2f%%\t%.2f%%\t%s\n", f.Field, strings.ToUpper(f.Verdict), 100*f.RawRate, 100*f.NoiseRate, sample)
		}
		tw.Flush()
	}
}
