package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/admin"
	"github.com/shiftgate/shiftgate/routing"
)

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	path := fs.String("config", "", "config file (YAML)")
	against := fs.String("against", "", "admin URL of a running gateway: print what loading this file there would do")
	token := fs.String("token-file", "", "admin bearer token file for -against (default: $SHIFTGATE_TOKEN)")
	if code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "shiftgate check: -config FILE is required")
		return exitUsage
	}
	cfg, err := conf.LoadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(cfg.Warnings) > 0 {
		// A gateway serves with these (an expired certificate rather than none);
		// a check before a deploy must not pass them.
		fmt.Fprintln(stderr, cfg.Warnings)
		return 1
	}
	if *against != "" {
		return checkAgainst(cfg, *against, *token, stdout, stderr)
	}
	fmt.Fprintf(stdout, "%s: ok: %d regions, %d routes\n", *path, len(cfg.RegionList), len(cfg.Routes))
	for _, r := range cfg.Routes {
		fmt.Fprintf(stdout, "  %-16s %s%-20s %s -> %s  %s%% (writes %s%%)\n", r.Name, r.Match.Host, r.Match.PathPrefix,
			r.From, r.To, conf.FormatBP(r.PercentBP), conf.FormatBP(r.WritePercentBP))
	}
	return 0
}

// checkAgainst compares a config file with what a running gateway serves and prints,
// per route, the share of users that loading the file would move forward (from → to)
// and back, with a few sample keys, and whether the reshuffle guard would refuse it.
func checkAgainst(cfg *conf.Config, adminURL, tokenFile string, stdout, stderr io.Writer) int {
	token := os.Getenv("SHIFTGATE_TOKEN")
	if tokenFile != "" {
		t, err := readToken(tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, "shiftgate check:", err)
			return 1
		}
		token = t
	}
	c, err := admin.NewClient(adminURL, token)
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate check:", err)
		return exitUsage
	}
	var st proxy.Status
	if err := c.Do("GET", "/v1/status", nil, &st); err != nil {
		fmt.Fprintln(stderr, "shiftgate check:", err)
		return 1
	}
	running := map[string]proxy.RouteStatus{}
	for _, r := range st.Routes {
		running[r.Name] = r
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tNOW\tFILE\tFORWARD\tBACK\tNOTE")
	refused := false
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		old, ok := running[r.Name]
		if !ok {
			fmt.Fprintf(tw, "%s\t-\t%s%%\t\t\tnew route\n", r.Name, conf.FormatBP(r.PercentBP))
			continue
		}
		oldBP := int(old.Percent*100 + 0.5)
		newBP := r.PercentBP
		note := ""
		if old.Override != nil {
			newBP = oldBP
			note = "override in effect: the file's percent applies when it is cleared"
		}
		var keys []string
		for _, k := range r.KeySources {
			keys = append(keys, k.String())
		}
		reshuffle := old.Salt != r.SaltValue || strings.Join(old.Keys, ",") != strings.Join(keys, ",") || old.From != r.From || old.To != r.To
		fwd, back, samples := routing.Moves(routing.Side{Salt: old.Salt, BP: oldBP, From: old.From, To: old.To},
			routing.Side{Salt: r.SaltValue, BP: newBP, From: r.From, To: r.To}, 100000)
		if reshuffle {
			note = "reshuffles users (salt, keys or from/to changed)"
			if oldBP > 0 && oldBP < 10000 && !cfg.ForceReshuffle && !r.ForceReshuffle {
				note += ": refused without force_reshuffle"
				refused = true
			}
		}
		if len(samples) > 0 {
			note = strings.TrimPrefix(note+"; e.g. "+strings.Join(samples, ", "), "; ")
		}
		fmt.Fprintf(tw, "%s\t%s%%\t%s%%\t%.2f%%\t%.2f%%\t%s\n", r.Name, conf.FormatBP(oldBP), conf.FormatBP(newBP), fwd*100, back*100, note)
	}
	tw.Flush()
	if refused {
		return 1
	}
	return 0
}
