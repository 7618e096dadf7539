package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/proxy/admin"
)

// etcdFlags adds -etcd and -prefix, for verbs that can talk to a fleet's etcd directly
// when no instance's admin API is reachable. The returned function gives nil when
// -etcd is not set; auth and TLS options come from -config's fleet.etcd when given.
func etcdFlags(fs *flag.FlagSet) func() (*store.Etcd, error) {
	endpoints := fs.String("etcd", "", "write to / read from this etcd directly (comma-separated endpoints), not through an admin API")
	prefix := fs.String("prefix", "", "with -etcd: the fleet's key prefix (default: from -config)")
	return func() (*store.Etcd, error) {
		if *endpoints == "" {
			return nil, nil
		}
		e := &conf.Etcd{}
		if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
			cfg, err := conf.LoadFile(f.Value.String())
			if err != nil {
				return nil, err
			}
			if cfg.Fleet.Etcd != nil {
				c := *cfg.Fleet.Etcd
				e = &c
			}
		}
		e.Endpoints = strings.Split(*endpoints, ",")
		if *prefix != "" {
			e.Prefix = *prefix
		}
		if !strings.HasPrefix(e.Prefix, "/") {
			return nil, errors.New("-etcd needs -prefix (such as /shiftgate/prod/) or a -config with fleet.etcd.prefix")
		}
		e.Instance = cliWho()
		return store.NewEtcd(e, store.EtcdOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}
}

// cliWho names the operator of a direct write for the audit record.
func cliWho() string {
	host, _ := os.Hostname()
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return "cli " + name + "@" + host
}

func directCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 15*time.Second)
}

// splitDirect writes a route's split to etcd. Without an instance nothing checks that
// the route exists in the config; a name it does not have is reported by status as a
// stale override.
//
// Without an instance the rules of a split change (writes stay without -writes, no
// move back without -force) apply against the override the store holds, else against
// the file's split of the route (file, from -config), else, with neither, nothing is
// known and the write split follows the read split.
func splitDirect(es *store.Etcd, file *conf.SplitBP, route, percent, writes string, force bool, stdout io.Writer) error {
	read, err := conf.ParsePercent(percent)
	if err != nil {
		return fmt.Errorf("percent: want 0..100 with at most two decimals, got %q", percent)
	}
	write := 0
	if writes != "" {
		if write, err = conf.ParsePercent(writes); err != nil {
			return fmt.Errorf("-writes: want 0..100 with at most two decimals, got %q", writes)
		}
	}
	ctx, cancel := directCtx()
	defer cancel()
	var next conf.SplitBP
	ov, err := es.Update(ctx, func(o *conf.Overrides) error {
		if o.Routes == nil {
			o.Routes = map[string]conf.RouteOverride{}
		}
		// With no override stored and no file there is nothing known to compare
		// with: the write split defaults to the read split.
		before := conf.SplitBP{Read: read, Write: max(read, write)}
		if cur, ok := o.Routes[route]; ok {
			before = cur.SplitAt(time.Now()) // where a ramp has got to: what users are served
		} else if file != nil {
			before = *file
		} else if writes != "" {
			before.Write = write
		}
		var err error
		if next, err = conf.NextSplit(before, read, write, writes != ""); err != nil {
			return err
		}
		if next.MovesBack(before) && !force {
			return fmt.Errorf("route %s: %s%%/%s%% -> %s%%/%s%% moves users back: use rollback (with -ramp) to go back, or -force",
				route, conf.FormatBP(before.Read), conf.FormatBP(before.Write), conf.FormatBP(next.Read), conf.FormatBP(next.Write))
		}
		o.Routes[route] = conf.RouteOverride{PercentBP: next.Read, WritePercentBP: next.Write, Who: cliWho(), At: time.Now().UTC()}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "route %s: now %s%% (writes %s%%) in %s, revision %d\n", route, conf.FormatBP(next.Read), conf.FormatBP(next.Write), es.Describe(), ov.Revision)
	if file == nil {
		fmt.Fprintf(stdout, "note: without -config nothing checked that route %s exists; `shiftgate status` lists a name the gateways do not have under STALE OVERRIDES\n", route)
	}
	return nil
}

// fileSplit returns the split of route in the file named by fs's -config, nil when
// there is no -config; a route the file does not have is an error.
func fileSplit(fs *flag.FlagSet, route string) (*conf.SplitBP, error) {
	f := fs.Lookup("config")
	if f == nil || f.Value.String() == "" {
		return nil, nil
	}
	cfg, err := conf.LoadFile(f.Value.String())
	if err != nil {
		return nil, err
	}
	r, ok := cfg.Route(route)
	if !ok {
		return nil, fmt.Errorf("route %q is not in %s", route, f.Value.String())
	}
	return &conf.SplitBP{Read: r.PercentBP, Write: r.WritePercentBP}, nil
}

// rollbackDirect turns the fleet's rollback on or off in etcd.
func rollbackDirect(es *store.Etcd, on bool, ramp string, stdout io.Writer) error {
	var d time.Duration
	if ramp != "" {
		var err error
		if d, err = time.ParseDuration(ramp); err != nil || d < 0 || d > 24*time.Hour || on {
			return fmt.Errorf("-ramp: want a duration up to 24h such as 10m, with off; got %q", ramp)
		}
	}
	ctx, cancel := directCtx()
	defer cancel()
	ov, err := es.Update(ctx, func(o *conf.Overrides) error {
		now := time.Now().UTC()
		o.Rollback = conf.Rollback{On: on, Who: cliWho(), At: now}
		if !on && d > 0 {
			o.Rollback.RampFrom, o.Rollback.RampFor = now, d
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rollback %s in %s, revision %d\n", map[bool]string{true: "ON", false: "OFF"}[on], es.Describe(), ov.Revision)
	return nil
}

// printFleet prints the instances of a fleet, flagging those behind the store.
func printFleet(fl store.FleetStatus, now time.Time, stdout io.Writer) {
	fmt.Fprintf(stdout, "fleet %s: override revision %d, %d instances\n\n", fl.Store, fl.OverrideRevision, len(fl.Instances))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tLISTEN\tADMIN\tAPPLIED\tSTATE\tUP FOR\tREPORTED")
	behind := 0
	for _, i := range fl.Instances {
		state := "ok"
		if fl.Behind(i) {
			state = "BEHIND"
			behind++
		}
		if i.PendingLocal {
			state += ", LOCAL CHANGE PENDING"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s ago\n", i.Instance, i.Listen, i.Admin, i.AppliedRevision, state,
			now.Sub(i.Started).Round(time.Second), now.Sub(i.Updated).Round(time.Second))
	}
	tw.Flush()
	switch {
	case len(fl.Instances) == 0:
		fmt.Fprintln(stdout, "\nno instance is registered")
	case behind == 0:
		fmt.Fprintf(stdout, "\nall %d instances serve revision %d\n", len(fl.Instances), fl.OverrideRevision)
	default:
		fmt.Fprintf(stdout, "\n%d of %d instances are BEHIND revision %d\n", behind, len(fl.Instances), fl.OverrideRevision)
	}
	if len(fl.Left) > 0 {
		// Not stopped cleanly: cut off from etcd (still serving, deaf to changes) or
		// killed. Only the instance itself, or its host, can tell which.
		fmt.Fprintf(stdout, "\n%d instances LEFT THE LIST without a clean stop (lease expired: cut off from etcd, or killed);\n"+
			"one cut off still serves what it last applied and hears no change: check it at its admin address\n", len(fl.Left))
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tLISTEN\tADMIN\tLAST APPLIED\tLAST REPORTED")
		for _, i := range fl.Left {
			behind := ""
			if fl.Behind(i) {
				behind = " (BEHIND)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d%s\t%s ago\n", i.Instance, i.Listen, i.Admin, i.AppliedRevision, behind,
				now.Sub(i.Updated).Round(time.Second))
		}
		tw.Flush()
	}
}

// fleetStatus gets the fleet list from etcd directly (store not nil) or from an
// instance's admin API.
func fleetStatus(es *store.Etcd, c *admin.Client) (store.FleetStatus, error) {
	if es != nil {
		ctx, cancel := directCtx()
		defer cancel()
		return es.WithLeft(ctx)
	}
	var fl store.FleetStatus
	err := c.Do("GET", "/v1/fleet", nil, &fl)
	return fl, err
}

// printFleetJSON prints the fleet list as JSON.
func printFleetJSON(fl store.FleetStatus, stdout io.Writer) {
	b, _ := json.MarshalIndent(fl, "", "  ")
	fmt.Fprintln(stdout, string(b))
}
