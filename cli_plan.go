package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/admin"
)

// cmdPlan runs `shiftgate plan start|pause|resume|abort ROUTE` and `plan status`.
func cmdPlan(args []string, stdout, stderr io.Writer) int {
	usage := "usage: shiftgate plan [-admin URL] start|pause|resume|abort ROUTE\n       shiftgate plan [-admin URL] status [-json] [-history]"
	fs := newFlags("plan", stderr)
	asJSON := fs.Bool("json", false, "print the raw JSON (status)")
	history := fs.Bool("history", false, "print each plan's history (status)")
	client := adminFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	// Flags may come before the sub-verb (as with every other verb) or after it.
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "shiftgate plan: want a sub-verb: start, pause, resume, abort or status")
		fs.Usage()
		return 2
	}
	verb := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return parseExit(err)
	}
	switch verb {
	case "status", "start", "pause", "resume", "abort":
	default:
		fmt.Fprintf(stderr, "shiftgate plan: unknown sub-verb %q: want start, pause, resume, abort or status\n", verb)
		fs.Usage()
		return 2
	}
	c, err := client()
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate plan:", err)
		return 2
	}
	if verb == "status" {
		if fs.NArg() != 0 {
			fmt.Fprintf(stderr, "shiftgate plan status: takes no argument, got %q\n", fs.Args())
			fs.Usage()
			return 2
		}
		var ans proxy.PlansAnswer
		if err := c.Do("GET", "/v1/plans", nil, &ans); err != nil {
			fmt.Fprintln(stderr, "shiftgate plan status:", err)
			return 1
		}
		if *asJSON {
			b, _ := json.MarshalIndent(ans, "", "  ")
			fmt.Fprintln(stdout, string(b))
			return 0
		}
		printPlans(ans, *history, time.Now(), stdout)
		return 0
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "shiftgate plan %s: want one ROUTE, got %d arguments\n", verb, fs.NArg())
		fs.Usage()
		return 2
	}
	return planVerb(c, verb, fs.Arg(0), stdout, stderr)
}

func planVerb(c *admin.Client, verb, route string, stdout, stderr io.Writer) int {
	var ps proxy.PlanStatus
	if err := c.Do("POST", "/v1/plans/"+url.PathEscape(route)+"/"+verb, admin.PlanRequest{}, &ps); err != nil {
		fmt.Fprintf(stderr, "shiftgate plan %s: %v\n", verb, err)
		return 1
	}
	fmt.Fprintf(stdout, "route %s: plan %s at step %d of %d (%g%%, writes %g%%)\n  %s\n",
		ps.Route, ps.State, ps.Step, len(ps.Steps), ps.Percent, ps.WritePercent, ps.Reason)
	return unpersistedExit(ps.Unpersisted, stderr)
}

// printPlans prints plan status for a person: one block per plan, its gates as the
// driver last read them.
func printPlans(ans proxy.PlansAnswer, history bool, now time.Time, w io.Writer) {
	if len(ans.Plans) == 0 {
		fmt.Fprintln(w, "no route has a plan (routes[i].plan in the config)")
		return
	}
	switch {
	case ans.Driver != "" && ans.Driving:
		fmt.Fprintf(w, "plans driven by %s (this instance)\n", ans.Driver)
	case ans.Driver != "":
		fmt.Fprintf(w, "plans driven by %s (%s)\n", ans.Driver, ans.DriverAdmin)
	case ans.NoDriver != "":
		fmt.Fprintf(w, "NO INSTANCE DRIVES THE PLANS (%s): a running plan holds its step and no instance moves it forward;\n"+
			"  while the fleet store is down each instance judges it on its own statistics and may only roll it back on itself;\n"+
			"  the levers still work on each instance: `shiftgate rollback -local on`, `shiftgate split -local -force ROUTE 0`\n", ans.NoDriver)
	}
	for _, p := range ans.Plans {
		steps := make([]string, len(p.Steps))
		for i, s := range p.Steps {
			steps[i] = fmt.Sprintf("%g", s)
			if i+1 == p.Step {
				steps[i] = "[" + steps[i] + "]"
			}
		}
		if p.NotInConfig {
			fmt.Fprintf(w, "\n%s: %s at %g%% (writes %g%%): ROUTE NOT IN THE CONFIG (a reload removed it); a running plan is paused,\n"+
				"  and the verbs need the route back in the config\n", p.Route, strings.ToUpper(string(p.State)), p.Percent, p.WritePercent)
			if p.Reason != "" {
				fmt.Fprintf(w, "  %s\n", p.Reason)
			}
			continue
		}
		fmt.Fprintf(w, "\n%s: %s, step %d of %d (%g%%, writes %g%%), steps %s %%\n", p.Route, strings.ToUpper(string(p.State)),
			p.Step, len(p.Steps), p.Percent, p.WritePercent, strings.Join(steps, " → "))
		if p.Reason != "" {
			fmt.Fprintf(w, "  %s\n", p.Reason)
		}
		if !p.HoldUntil.IsZero() {
			left := p.HoldUntil.Sub(now).Truncate(time.Second)
			if left > 0 {
				fmt.Fprintf(w, "  step began %s; held at least %s more\n", p.StepStarted.Format(time.RFC3339), left)
			} else {
				fmt.Fprintf(w, "  step began %s; hold over, advances when the gates pass\n", p.StepStarted.Format(time.RFC3339))
			}
		}
		if l := p.Live; l != nil {
			by := ""
			if l.Guard {
				by = ", this instance's own statistics: acts only on a rollback"
			}
			fmt.Fprintf(w, "  last reading %s (%d this step%s): %s — %s\n", l.CheckedAt.Format(time.RFC3339), l.Checks, by, l.Decision, l.Why)
			if len(l.Missing) > 0 {
				fmt.Fprintf(w, "  instances not heard from: %s\n", strings.Join(l.Missing, ", "))
			}
		}
		if len(p.Gates) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  GATE\tOUTCOME\tMOVED\tSTAYED\tSAMPLES (moved/stayed)\tWHY")
			for _, g := range p.Gates {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d/%d\t%s\n", g.Name, g.Outcome, gateValue(g.Unit, g.Moved), gateValue(g.Unit, g.Stayed),
					g.Samples.Moved, g.Samples.Stayed, g.Reason)
			}
			tw.Flush()
		}
		if history {
			for _, e := range p.History {
				fmt.Fprintf(w, "  %s %-11s step %d (%s%%) by %s", e.At.Format(time.RFC3339), e.Event, e.Step+1, formatBP(e.PercentBP), e.By)
				if e.Reason != "" {
					fmt.Fprintf(w, ": %s", e.Reason)
				}
				if e.Readings > 0 {
					fmt.Fprintf(w, " (reading %d)", e.Readings)
				}
				fmt.Fprintln(w)
				for _, g := range e.Gates {
					fmt.Fprintf(w, "      %s %s: moved %s n=%d, stayed %s n=%d\n", g.Name, g.Outcome,
						gateValue(gateUnit(g.Name), g.Moved), g.MovedN, gateValue(gateUnit(g.Name), g.Stayed), g.StayedN)
				}
			}
		}
	}
}

func gateValue(unit string, v float64) string {
	switch unit {
	case "ratio":
		return fmt.Sprintf("%.3f%%", 100*v)
	case "ms":
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%g", v)
}

// gateUnit is the unit of a gate's readings, by its name, for the history (which
// keeps no unit).
func gateUnit(name string) string {
	switch {
	case name == "error_ratio" || name == "fallbacks":
		return "ratio"
	case strings.HasSuffix(name, "_latency"):
		return "ms"
	}
	return ""
}

func formatBP(bp int) string { return fmt.Sprintf("%g", float64(bp)/100) }
