package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/admin"
)

const limitUsage = `usage: shiftgate limit [-ramp DURATION] [-local] site|ROUTE RPS|off
       shiftgate limit -clear site|ROUTE...
       shiftgate limit [-json]              show the caps, their sources and refusals

Caps are requests per second, fleet-wide with the etcd store (each instance enforces
its share, 1/live instances), per instance without. "off" lifts a cap whatever the
file says; -clear drops the override so the file's value applies again. -ramp makes a
raise or a lift climb over DURATION; lowering applies at once. A route named "site"
is route:site.`

const budgetUsage = `usage: shiftgate budget [-ramp DURATION] [-local] FROM TO RATE|off
       shiftgate budget -clear FROM TO
       shiftgate budget [-json]             show the byte budgets and cross-region bytes

RATE is bits or bytes per second: 800Mbit, 2Gbit, 100MB. A budget binds the instances
whose self_region is FROM. Derive it as link / 2 x 0.8 - already used (see README).`

// limitTarget reads "site", "route:NAME" or a route name.
func limitTarget(arg string) (site bool, route string) {
	if arg == "site" {
		return true, ""
	}
	return false, strings.TrimPrefix(arg, "route:")
}

// leverFlags are the flags `limit` and `budget` share.
type leverFlags struct {
	fs                 *flag.FlagSet
	ramp               *string
	clear, local, json *bool
	client             func() (*admin.Client, error)
}

// newLeverFlags sets up verb's flags; what names what -clear drops and what -json prints.
func newLeverFlags(verb, usage, what string, stderr io.Writer) leverFlags {
	fs := newFlags(verb, stderr)
	l := leverFlags{fs: fs,
		ramp:  fs.String("ramp", "", "a raise or a lift climbs over this duration (e.g. 2m)"),
		clear: fs.Bool("clear", false, "drop the override of "+what+": the file's value applies again"),
		local: fs.Bool("local", false, "while the fleet's etcd is down: change this instance only (written to etcd when it returns)"),
		json:  fs.Bool("json", false, "with no "+what+": print the raw JSON of /v1/limits"),
	}
	l.client = adminFlags(fs)
	fs.Usage = func() { fmt.Fprintln(stderr, usage); fs.PrintDefaults() }
	return l
}

// parse reads args. With no target it prints the levers in force and returns the exit
// status; with targets it returns -1 and the verb goes on.
func (l leverFlags) parse(args []string, budgets bool, stdout, stderr io.Writer) (exit int) {
	if err := l.fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if l.fs.NArg() > 0 {
		if !rampOK(strings.TrimPrefix(l.fs.Name(), "shiftgate "), *l.ramp, stderr) {
			return exitUsage
		}
		return -1
	}
	if *l.clear || *l.ramp != "" || *l.local {
		l.fs.Usage()
		return 2
	}
	return showLimits(l.client, *l.json, budgets, stdout, stderr)
}

func cmdLimit(args []string, stdout, stderr io.Writer) int {
	lf := newLeverFlags("limit", limitUsage, "each target", stderr)
	if code := lf.parse(args, false, stdout, stderr); code >= 0 {
		return code
	}
	fs, ramp, clear, local, client := lf.fs, lf.ramp, lf.clear, lf.local, lf.client
	req := proxy.LimitsRequest{Local: *local, Routes: map[string]proxy.LimitChange{}}
	add := func(arg string, ch proxy.LimitChange) bool {
		site, route := limitTarget(arg)
		switch {
		case site && req.Site != nil, !site && route == "":
			return false
		case site:
			req.Site = &ch
		default:
			if _, dup := req.Routes[route]; dup {
				return false
			}
			req.Routes[route] = ch
		}
		return true
	}
	if *clear {
		if *ramp != "" {
			fmt.Fprintln(stderr, "shiftgate limit: -clear takes no -ramp: the file's limits.ramp applies")
			return 2
		}
		for _, arg := range fs.Args() {
			if !add(arg, proxy.LimitChange{Clear: true}) {
				fmt.Fprintf(stderr, "shiftgate limit: %q is empty or named twice\n", arg)
				return 2
			}
		}
	} else {
		if fs.NArg() != 2 {
			fs.Usage()
			return 2
		}
		ch := proxy.LimitChange{Ramp: *ramp}
		if v := fs.Arg(1); strings.EqualFold(v, "off") {
			ch.Off = true
		} else if n, err := strconv.ParseFloat(v, 64); err != nil || !(n > 0) || conf.CheckRPS(n) != nil {
			fmt.Fprintf(stderr, "shiftgate limit: RPS: want requests per second above 0 (such as 20000) or off, got %q\n", v)
			return 2
		} else {
			ch.RPS = json.Number(v)
		}
		if !add(fs.Arg(0), ch) {
			fs.Usage()
			return 2
		}
	}
	return changeLimits(client, req, "limit", stdout, stderr)
}

func cmdBudget(args []string, stdout, stderr io.Writer) int {
	lf := newLeverFlags("budget", budgetUsage, "the pair", stderr)
	if code := lf.parse(args, true, stdout, stderr); code >= 0 {
		return code
	}
	fs, ramp, clear, local, client := lf.fs, lf.ramp, lf.clear, lf.local, lf.client
	ch := proxy.BudgetChange{From: fs.Arg(0), To: fs.Arg(1), Clear: *clear, Ramp: *ramp}
	switch {
	case *clear && fs.NArg() == 2 && *ramp == "":
	case !*clear && fs.NArg() == 3:
		ch.Rate = fs.Arg(2)
		if !strings.EqualFold(ch.Rate, "off") {
			if _, err := conf.ParseRate(ch.Rate); err != nil {
				fmt.Fprintf(stderr, "shiftgate budget: %v (or off)\n", err)
				return 2
			}
		}
	default:
		fs.Usage()
		return 2
	}
	return changeLimits(client, proxy.LimitsRequest{Budgets: []proxy.BudgetChange{ch}, Local: *local}, "budget", stdout, stderr)
}

func changeLimits(client func() (*admin.Client, error), req proxy.LimitsRequest, verb string, stdout, stderr io.Writer) int {
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "shiftgate %s: %v\n", verb, err)
		return 2
	}
	var res proxy.LimitsResult
	if err := c.Do("PUT", "/v1/limits", req, &res); err != nil {
		fmt.Fprintf(stderr, "shiftgate %s: %v\n", verb, err)
		return 1
	}
	for _, ch := range res.Changes {
		line := fmt.Sprintf("%s: %s -> %s", ch.Lever, ch.Before, ch.After)
		if ch.Ramp != "" {
			line += ", ramp " + ch.Ramp
		}
		fmt.Fprintln(stdout, line)
	}
	if res.Scope == "fleet" {
		fmt.Fprintf(stdout, "fleet-wide: each live instance enforces its share (revision %d)\n", res.Revision)
	} else {
		fmt.Fprintf(stdout, "per instance: this gateway enforces the whole value (revision %d)\n", res.Revision)
	}
	for _, n := range res.Notes {
		fmt.Fprintln(stdout, "note:", n)
	}
	if res.Local {
		fmt.Fprintln(stdout, localNote)
	}
	return unpersistedExit(res.Unpersisted, stderr)
}

// showLimits prints GET /v1/limits: the caps (or, for budgets, the byte budgets).
func showLimits(client func() (*admin.Client, error), asJSON, budgets bool, stdout, stderr io.Writer) int {
	verb := "limit"
	if budgets {
		verb = "budget"
	}
	c, err := client()
	if err != nil {
		fmt.Fprintf(stderr, "shiftgate %s: %v\n", verb, err)
		return 2
	}
	var l proxy.LimitsStatus
	if err := c.Do("GET", "/v1/limits", nil, &l); err != nil {
		fmt.Fprintf(stderr, "shiftgate %s: %v\n", verb, err)
		return 1
	}
	if asJSON {
		b, _ := json.MarshalIndent(l, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	fmt.Fprintln(stdout, limitsScopeLine(l.Scope, l.LiveInstances, l.Share))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	if budgets {
		fmt.Fprintf(stdout, "self_region: %s (this instance's share of each budget binding it: %.4g)\n\n", orNone(l.SelfRegion), l.BudgetShare)
		fmt.Fprintln(tw, "FROM->TO\tBUDGET\tSOURCE\tFILE\tBINDS HERE\tENFORCED HERE\tLEVEL\tBYTES")
		for _, b := range l.Budgets {
			fmt.Fprintf(tw, "%s->%s\t%s\t%s\t%s\t%v\t%s%s\t%.2f\t%d\n", b.From, b.To, b.Rate, b.Source, b.FileRate, b.Binds,
				conf.FormatRate(b.EnforcedBytesPerSec), ramping(b.Ramping), b.Level, b.Bytes)
		}
		tw.Flush()
		for _, p := range l.CrossRegion {
			fmt.Fprintf(stdout, "cross-region %s->%s: %d bytes in %d responses\n", p.From, p.To, p.Bytes, p.Responses)
		}
		return 0
	}
	fmt.Fprintf(stdout, "site: %s (%s, file %s), enforced here %s%s\n\n", fmtCap(l.Site.RPS), l.Site.Source, fmtCap(l.Site.FileRPS),
		fmtCap(l.Site.EnforcedRPS), ramping(l.Site.Ramping))
	fmt.Fprintln(tw, "ROUTE\tPRIORITY\tCAP\tSOURCE\tENFORCED HERE\tFORWARDED\tREFUSED site/route/budget")
	for _, r := range l.Routes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s%s\t%d\t%d/%d/%d\n", r.Name, r.Priority, fmtCap(r.RPS), r.Source,
			fmtCap(r.EnforcedRPS), ramping(r.Ramping), r.Forwarded, r.Refused.Site, r.Refused.Route, r.Refused.Budget)
	}
	tw.Flush()
	if len(l.Stale) > 0 {
		fmt.Fprintf(stdout, "stale overrides (no such route or region): %s\n", strings.Join(l.Stale, ", "))
	}
	return 0
}

// limitsScopeLine says whether caps are fleet-wide or per instance.
func limitsScopeLine(scope string, live int, share float64) string {
	if scope == "fleet" {
		return fmt.Sprintf("limits: fleet-wide over %d live instance(s); this one enforces %.4g of each cap", live, share)
	}
	return "limits: per instance (no fleet store): this gateway enforces each cap whole"
}

func fmtCap(rps float64) string {
	if rps <= 0 {
		return "off"
	}
	return strconv.FormatFloat(math.Round(rps*100)/100, 'f', -1, 64) + " rps"
}

func ramping(on bool) string {
	if on {
		return " (ramping)"
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// limitsStatusLine is the levers' line of `shiftgate status`.
func limitsStatusLine(b proxy.LimitsBrief) string {
	line := limitsScopeLine(b.Scope, b.LiveInstances, b.Share)
	line += fmt.Sprintf("; site cap %s, %d route cap(s), %d byte budget(s)", fmtCap(b.SiteRPS), b.CappedRoutes, b.Budgets)
	if r := b.Refused; r.Site+r.Route+r.Budget > 0 {
		line += fmt.Sprintf("; refused %d site, %d route, %d budget", r.Site, r.Route, r.Budget)
	}
	return line
}
