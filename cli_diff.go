package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/shiftgate/shiftgate/proxy/mirror"
)

// cmdDiff prints what the mirrors compared: per route and field, how often the mirror
// region's answer differed from the one the client got, against how often two
// answers of the old region differ (noise).
func cmdDiff(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("diff", stderr)
	route := fs.String("route", "", "only this route")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	client := adminFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: shiftgate diff [-route R] [-json] [-admin URL]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	c, err := client()
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate diff:", err)
		return 2
	}
	path := "/v1/diff"
	if *route != "" {
		path += "?route=" + url.QueryEscape(*route)
	}
	var snap mirror.Snapshot
	if err := c.Do("GET", path, nil, &snap); err != nil {
		fmt.Fprintln(stderr, "shiftgate diff:", err)
		return 1
	}
	if *asJSON {
		b, _ := json.MarshalIndent(snap, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	if len(snap.Routes) == 0 {
		fmt.Fprintln(stdout, "no route mirrors traffic (set routes[i].mirror)")
		return 0
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
	return 0
}
