package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/admin"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

func adminFlags(fs *flag.FlagSet) func() (*admin.Client, error) {
	base := fs.String("admin", "", "admin API URL (default: from -config, else http://127.0.0.1:9090)")
	path := fs.String("config", "", "config file to take the admin address and token from")
	tokenFile := fs.String("token-file", "", "file holding the admin bearer token (default: $SHIFTGATE_TOKEN)")
	return func() (*admin.Client, error) {
		url, token := *base, os.Getenv("SHIFTGATE_TOKEN")
		if *path != "" {
			// Only the admin block: a gateway serving its last good config must be
			// reachable while the file (or a certificate it names) is broken.
			a, err := conf.LoadAdmin(*path)
			if err != nil {
				return nil, err
			}
			if url == "" {
				url = "http://" + a.Listen
			}
			if token == "" {
				token = a.Token
			}
		}
		if *tokenFile != "" {
			t, err := readToken(*tokenFile)
			if err != nil {
				return nil, err
			}
			token = t
		}
		c, err := admin.NewClient(url, token)
		if err != nil {
			return nil, usageError{err}
		}
		return c, nil
	}
}

// readToken reads a bearer token file, trimmed.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func cmdSplit(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("split", stderr)
	writes := fs.String("writes", "", "write percent (default: the write split stays where it is, capped at PERCENT)")
	dry := fs.Bool("dry-run", false, "print what the change would do, change nothing")
	local := fs.Bool("local", false, "while the fleet's etcd is down: change this instance only (written to etcd when it returns)")
	force := fs.Bool("force", false, "allow a change that moves users back (a lower percent or write percent)")
	clear := fs.Bool("clear", false, "drop the runtime override of each ROUTE: the file's split applies again")
	client := adminFlags(fs)
	direct := etcdFlags(fs)
	if code, ok := parseFlags(fs, args, 1, -1); !ok {
		return code
	}
	if *clear {
		if *writes != "" || *dry || *force {
			fmt.Fprintln(stderr, "shiftgate split: -clear takes route names only, not -writes, -dry-run or -force")
			fs.Usage()
			return exitUsage
		}
		return splitClear(fs.Args(), *local, client, stdout, stderr)
	}
	if fs.NArg() < 2 || fs.NArg()%2 != 0 {
		fmt.Fprintf(stderr, "shiftgate split: want ROUTE PERCENT pairs, got %q\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return exitUsage
	}
	// Percents are checked here and sent as plain numbers ("50%" is 50), so that a
	// mistake gets this message, not a JSON encoder's.
	percents := make([]string, fs.NArg())
	for i := 1; i < fs.NArg(); i += 2 {
		bp, err := conf.ParsePercent(fs.Arg(i))
		if err != nil {
			fmt.Fprintf(stderr, "shiftgate split: route %s: percent: want 0..100 with at most two decimals, got %q\n", fs.Arg(i-1), fs.Arg(i))
			return exitUsage
		}
		percents[i] = conf.FormatBP(bp)
	}
	if *writes != "" {
		bp, err := conf.ParsePercent(*writes)
		if err != nil {
			fmt.Fprintf(stderr, "shiftgate split: -writes: want 0..100 with at most two decimals, got %q\n", *writes)
			return exitUsage
		}
		*writes = conf.FormatBP(bp)
	}
	if es, err := direct(); err != nil || es != nil {
		if err == nil && (*dry || *local || fs.NArg() > 2) {
			err = errors.New("-dry-run, -local and several routes need an instance's admin API, not -etcd")
		}
		if err == nil {
			defer es.Close()
			var file *conf.SplitBP
			if file, err = fileSplit(fs, fs.Arg(0)); err == nil {
				err = splitDirect(es, file, fs.Arg(0), fs.Arg(1), *writes, *force, stdout)
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "shiftgate split:", err)
			return 1
		}
		return 0
	}
	c, err := client()
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate split:", err)
		return exitCode(err)
	}
	req := proxy.BulkSplitRequest{Routes: map[string]proxy.SplitRequest{}, DryRun: *dry, Local: *local, Force: *force}
	for i := 0; i < fs.NArg(); i += 2 {
		one := proxy.SplitRequest{Percent: json.Number(percents[i+1])}
		if *writes != "" {
			w := json.Number(*writes)
			one.WritePercent = &w
		}
		if _, dup := req.Routes[fs.Arg(i)]; dup {
			fmt.Fprintf(stderr, "shiftgate split: route %s is named twice\n", fs.Arg(i))
			return exitUsage
		}
		req.Routes[fs.Arg(i)] = one
	}
	var res proxy.BulkSplitResult
	if err := c.Do("PUT", "/v1/splits", req, &res); err != nil {
		fmt.Fprintln(stderr, "shiftgate split:", err)
		return 1
	}
	verb := "now"
	if res.DryRun {
		verb = "would be"
	}
	for _, r := range res.Results {
		fmt.Fprintf(stdout, "route %s: %g%% (writes %g%%) %s %g%% (writes %g%%)\n", r.Route, r.Before, r.BeforeWrite, verb, r.After, r.AfterWrite)
		fmt.Fprintf(stdout, "  users moving forward: %.2f%%, moving back: %.2f%% (their writes: %.2f%%, %.2f%%)\n",
			r.MoveForward*100, r.MoveBack*100, r.MoveForwardWrites*100, r.MoveBackWrites*100)
		if len(r.SampleKeys) > 0 {
			fmt.Fprintf(stdout, "  sample keys that move: %s\n", strings.Join(r.SampleKeys, ", "))
		}
		if r.Forced && r.MoveBack > 0 {
			fmt.Fprintln(stdout, "  forced: users moved back (audited)")
		}
	}
	if !res.DryRun && len(res.Results) > 0 && res.Results[0].Local {
		fmt.Fprintln(stdout, localNote)
	}
	return unpersistedExit(res.Unpersisted, stderr)
}

// splitClear drops the overrides of routes, one admin call each.
func splitClear(routes []string, local bool, client func() (*admin.Client, error), stdout, stderr io.Writer) int {
	c, err := client()
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate split:", err)
		return exitCode(err)
	}
	q := ""
	if local {
		q = "?local=1"
	}
	// A clear that is in force but not persisted is said like any lever's (exit 3):
	// a restart would bring the override back.
	unpersisted, wasLocal := "", false
	for _, r := range routes {
		var res proxy.ClearResult
		if err := c.Do("DELETE", "/v1/routes/"+url.PathEscape(r)+"/split"+q, nil, &res); err != nil {
			fmt.Fprintln(stderr, "shiftgate split -clear:", err)
			if unpersisted != "" {
				unpersistedExit(unpersisted, stderr)
			}
			return 1
		}
		fmt.Fprintf(stdout, "route %s: override cleared (revision %d): the file's split applies\n", r, res.Revision)
		if res.Unpersisted != "" {
			unpersisted = res.Unpersisted
		}
		wasLocal = wasLocal || res.Local
	}
	if wasLocal {
		fmt.Fprintln(stdout, localNote)
	}
	return unpersistedExit(unpersisted, stderr)
}

func cmdRollback(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("rollback", stderr)
	ramp := fs.String("ramp", "", "with off: bring the split back linearly over this duration (e.g. 10m)")
	local := fs.Bool("local", false, "while the fleet's etcd is down: change this instance only (written to etcd when it returns)")
	client := adminFlags(fs)
	direct := etcdFlags(fs)
	if code, ok := parseFlags(fs, args, 1, 1); !ok {
		return code
	}
	if fs.Arg(0) != "on" && fs.Arg(0) != "off" {
		fmt.Fprintf(stderr, "shiftgate rollback: want on or off, got %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	if !rampOK("rollback", *ramp, stderr) {
		return exitUsage
	}
	if *ramp != "" && fs.Arg(0) == "on" {
		fmt.Fprintln(stderr, "shiftgate rollback: -ramp applies to turning rollback off (on is at once)")
		return exitUsage
	}
	if store, err := direct(); err != nil || store != nil {
		if err == nil && *local {
			err = errors.New("-local needs an instance's admin API, not -etcd")
		}
		if err == nil {
			defer store.Close()
			err = rollbackDirect(store, fs.Arg(0) == "on", *ramp, stdout)
		}
		if err != nil {
			fmt.Fprintln(stderr, "shiftgate rollback:", err)
			return 1
		}
		return 0
	}
	c, err := client()
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate rollback:", err)
		return exitCode(err)
	}
	req := proxy.RollbackRequest{On: fs.Arg(0) == "on", Ramp: *ramp, Local: *local}
	var res proxy.RollbackResult
	if err := c.Do("POST", "/v1/rollback", req, &res); err != nil {
		fmt.Fprintln(stderr, "shiftgate rollback:", err)
		return 1
	}
	if req.On {
		fmt.Fprintln(stdout, "rollback ON: every route sends everything to its from region")
	} else if *ramp != "" {
		fmt.Fprintf(stdout, "rollback OFF: the split comes back linearly over %s\n", *ramp)
	} else {
		fmt.Fprintln(stdout, "rollback OFF: the split is back in effect")
	}
	if res.Local {
		fmt.Fprintln(stdout, localNote)
	}
	return unpersistedExit(res.Unpersisted, stderr)
}

// rampOK checks a -ramp flag where it is typed, so that a typo is a command-line
// mistake (exit 2) even when no gateway is reachable; the server checks it again.
func rampOK(verb, ramp string, stderr io.Writer) bool {
	if ramp == "" {
		return true
	}
	if d, err := time.ParseDuration(ramp); err != nil || d < 0 || d > 24*time.Hour {
		fmt.Fprintf(stderr, "shiftgate %s: -ramp: want a duration up to 24h such as 10m, got %q\n", verb, ramp)
		return false
	}
	return true
}

// exitUnpersisted is the exit status of a change that is in force but that the
// override store did not take (state_dir full or read-only): distinct from 1 (refused,
// nothing changed), so a script knows the lever worked and must be persisted.
const exitUnpersisted = 3

// unpersistedExit says loudly that a change is in force in memory only.
func unpersistedExit(why string, stderr io.Writer) int {
	if why == "" {
		return 0
	}
	fmt.Fprintf(stderr, "WARNING: the change is IN FORCE but NOT PERSISTED: %s\n"+
		"  a restart of the gateway would lose it; it retries the write every 2s (see `shiftgate status`)\n", why)
	return exitUnpersisted
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print the raw JSON")
	fleet := fs.Bool("fleet", false, "list the fleet's instances and the override revision each serves")
	client := adminFlags(fs)
	direct := etcdFlags(fs)
	if code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	store, err := direct()
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate status:", err)
		return 1
	}
	if store != nil {
		defer store.Close()
		*fleet = true
	}
	c, err := client()
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate status:", err)
		return exitCode(err)
	}
	if *fleet {
		fl, err := fleetStatus(store, c)
		if err != nil {
			fmt.Fprintln(stderr, "shiftgate status -fleet:", err)
			return 1
		}
		if *asJSON {
			printFleetJSON(fl, stdout)
		} else {
			printFleet(fl, time.Now(), stdout)
		}
		return 0
	}
	var st proxy.Status
	if err := c.Do("GET", "/v1/status", nil, &st); err != nil {
		fmt.Fprintln(stderr, "shiftgate status:", err)
		return 1
	}
	if *asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	roll := "off"
	if st.Rollback.On {
		roll = "ON (everything to from)"
	} else if st.Rollback.Ramping {
		roll = "off, ramping back until " + st.Rollback.RampUntil.Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "shiftgate %s (commit %s, %s)\nconfig %s (version %d, hash %s)\noverrides: %s, revision %d\nrollback: %s\n",
		st.Binary, shortCommit(st.Commit), st.GoVersion, st.ConfigFile, st.Version, st.ConfigHash, st.Store, st.Revision, roll)
	fmt.Fprintln(stdout, limitsStatusLine(st.Limits))
	fmt.Fprintf(stdout, "cutoff: %s\nclient config: version %s\n", describeCutoff(st.Cutoff.On, st.Cutoff.Routes), st.ClientConfigVersion)
	if !st.StoreUp {
		fmt.Fprintf(stdout, "override store DOWN: %s\n  serving the last known overrides (revision %d); fleet writes are refused, -local writes change this instance only\n",
			st.StoreError, st.AppliedRevision)
	}
	printUndecodable(st.UndecodableKeys, stdout)
	if len(st.Unpersisted) > 0 {
		fmt.Fprintf(stdout, "NOT PERSISTED (in force in memory only, a restart loses them): %s\n  %s\n",
			strings.Join(st.Unpersisted, ", "), st.UnpersistedError)
	}
	if len(st.StaleRoutes) > 0 {
		fmt.Fprintf(stdout, "STALE OVERRIDES (for routes this config does not have; a typo? `split -clear NAME` drops one): %s\n",
			strings.Join(st.StaleRoutes, ", "))
	}
	if len(st.RestartPending) > 0 {
		keys := make([]string, len(st.RestartPending))
		for i, k := range st.RestartPending {
			keys[i] = k.String()
		}
		fmt.Fprintf(stdout, "RESTART PENDING (read at start; the file's values apply after a restart): %s\n", strings.Join(keys, "; "))
	}
	if len(st.PendingLocal) > 0 {
		fmt.Fprintf(stdout, "LOCAL CHANGE PENDING (not in the fleet store yet): %s\n", strings.Join(st.PendingLocal, ", "))
	}
	if r := st.LastReconciled; r != nil {
		fmt.Fprintf(stdout, "local change made %s reconciled into the store at %s (revision %d): %s\n",
			r.LocalAt.Format(time.RFC3339), r.At.Format(time.RFC3339), r.Revision, strings.Join(r.Keys, ", "))
		if len(r.NotApplied) > 0 {
			fmt.Fprintf(stdout, "LOCAL CHANGE NOT APPLIED (another writer raised these during the outage; lowering them would move users back; split -force does it): %s\n",
				strings.Join(r.NotApplied, ", "))
		}
		if len(r.Superseded) > 0 {
			fmt.Fprintf(stdout, "local change superseded (another instance changed these later during the outage; its change stands): %s\n",
				strings.Join(r.Superseded, ", "))
		}
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	// FILE and OVERRIDE are percent/write percent; SOURCE says which of them is in
	// force; IN EFFECT is what requests get now (after rollback and its ramp).
	fmt.Fprintln(tw, "ROUTE\tFROM->TO\tFILE\tOVERRIDE\tSOURCE\tIN EFFECT\tBREAKERS")
	for _, r := range st.Routes {
		ov := "-"
		if r.Override != nil {
			ov = fmt.Sprintf("%g/%g", r.Override.Percent, r.Override.WritePercent)
		}
		var br []string
		for reg, s := range r.Breakers {
			br = append(br, reg+"="+s)
		}
		sort.Strings(br)
		fmt.Fprintf(tw, "%s\t%s->%s\t%g/%g\t%s\t%s\t%g/%g\t%s\n", r.Name, r.From, r.To, r.FilePercent, r.FileWritePercent,
			ov, r.Source, r.Effective, r.EffectiveWrite, strings.Join(br, " "))
	}
	tw.Flush()
	for _, r := range st.Routes {
		if p := r.Plan; p != nil {
			fmt.Fprintf(stdout, "plan %s: %s, step %d of %d (%g%%) %s\n", r.Name, p.State, p.Step, len(p.Steps), p.Percent, p.Reason)
		}
	}
	printCohorts(c, stdout)
	if st.TLS != nil {
		printTLSStatus(stdout, st.TLS, time.Now())
	}
	printClientCounts(st, stdout)
	return 0
}

// printUndecodable says which of the fleet store's override keys do not decode and
// what the instance serves for each instead.
func printUndecodable(keys []store.BadKey, stdout io.Writer) {
	for _, b := range keys {
		kept := "the value it served before"
		switch {
		case b.Value == nil:
			kept = "no override (the config file's value)"
		case b.Kept == store.KeptMirror:
			kept = "its state_dir mirror's value"
		}
		fmt.Fprintf(stdout, "OVERRIDE KEY DOES NOT DECODE: overrides/%s (revision %d) is ignored; this instance keeps %s", b.Key, b.Revision, kept)
		if b.Value != nil {
			var v bytes.Buffer
			if json.Compact(&v, b.Value) != nil {
				v.Reset()
				v.Write(b.Value)
			}
			fmt.Fprintf(stdout, " %s", v.Bytes())
		}
		fmt.Fprintf(stdout, "\n  %s; write a good value (or delete the key) to change it\n", b.Error)
	}
}

// printCohorts prints, per route, the moved and stayed cohorts and the two
// comparisons the dashboard shows; nothing when the gateway's stats are off.
func printCohorts(c *admin.Client, stdout io.Writer) {
	var snap stats.Snapshot
	if err := c.Do("GET", "/v1/stats?history=0", nil, &snap); err != nil {
		return
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tCOHORT\tREQUESTS\tERRORS\tP50 ms\tP99 ms\tLAST MINUTE: MOVED VS STAYED\tSTAYED VS ITS PAST")
	for _, r := range snap.Routes {
		cmp := r.Compare
		for i, row := range []struct {
			name string
			rd   stats.Reading
		}{{"moved", r.Cohorts.Moved}, {"stayed", r.Cohorts.Stayed}, {"failover", r.Cohorts.Failover}, {"fallback", r.Cohorts.Fallback}} {
			if row.rd.Requests == 0 && i > 1 {
				continue
			}
			name, c1, c2 := "", "", ""
			if i == 0 {
				name = r.Name
				c1 = fmt.Sprintf("%s (errors %+.2f pts, p99 %+.0f%%; n=%d/%d)", cmp.MovedVsStayed.Verdict,
					cmp.MovedVsStayed.ErrorDeltaPoints, 100*cmp.MovedVsStayed.P99Delta, cmp.MovedVsStayed.A.Requests, cmp.MovedVsStayed.B.Requests)
				c2 = fmt.Sprintf("%s (n=%d/%d)", cmp.StayedVsPast.Verdict, cmp.StayedVsPast.A.Requests, cmp.StayedVsPast.B.Requests)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f%%\t%.1f\t%.1f\t%s\t%s\n", name, row.name, row.rd.Requests,
				100*row.rd.ErrorRatio, row.rd.P50, row.rd.P99, c1, c2)
		}
	}
	tw.Flush()
}

// printTLSStatus prints the certificates and upstream CA bundles in service with
// their remaining validity, refused reloads, handshake errors and unverified regions.
func printTLSStatus(w io.Writer, t *proxy.TLSStatus, now time.Time) {
	fmt.Fprintln(w)
	if t.Listen != "" {
		fmt.Fprintf(w, "tls: %s (min %s), %d handshakes\n", t.Listen, t.MinVersion, t.Handshakes)
	}
	for _, c := range t.Certificates {
		left := c.NotAfter.Sub(now).Round(time.Hour)
		note := fmt.Sprintf("expires %s (in %s)", c.NotAfter.UTC().Format(time.RFC3339), left)
		if left <= 0 {
			note = "EXPIRED " + c.NotAfter.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  %-7s %-24s %s  %s\n", c.Use, c.Name, note, c.CertFile)
		if c.Error != "" {
			fmt.Fprintf(w, "          RELOAD REFUSED %s: %s (the certificate above keeps serving)\n", c.ErrorAt.UTC().Format(time.RFC3339), c.Error)
		}
	}
	for _, b := range t.CABundles {
		left := b.NotAfter.Sub(now).Round(time.Hour)
		note := fmt.Sprintf("first expiry %s (in %s)", b.NotAfter.UTC().Format(time.RFC3339), left)
		if left <= 0 {
			note = "HAS EXPIRED CAs " + b.NotAfter.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "  ca      %-24s %s  %s (%d CAs; regions %s)\n", strings.Join(b.Subjects, ","), note, b.File,
			len(b.Subjects), strings.Join(b.Regions, ","))
		if b.Error != "" {
			fmt.Fprintf(w, "          RELOAD REFUSED %s: %s (the bundle above stays in use)\n", b.ErrorAt.UTC().Format(time.RFC3339), b.Error)
		}
	}
	if len(t.HandshakeErrors) > 0 {
		var parts []string
		for r, n := range t.HandshakeErrors {
			parts = append(parts, fmt.Sprintf("%s=%d", r, n))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "  handshake errors: %s\n", strings.Join(parts, " "))
	}
	for _, r := range t.Unverified {
		fmt.Fprintf(w, "  UPSTREAM CERTIFICATES NOT VERIFIED in region %s\n", r)
	}
}

// localNote is printed after a -local write.
const localNote = "LOCAL: this instance only; other instances keep their values until etcd returns, when this change is written to the fleet"

// shortCommit shortens a VCS revision for people.
func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
