package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/routing/clientcfg"
)

// cmdCutoff is `shiftgate cutoff on|off [ROUTE...]`: the client cut-off, published in
// the client config. The gateway keeps serving; apps stop calling and serve their cache.
func cmdCutoff(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("cutoff", stderr)
	local := fs.Bool("local", false, "while the fleet's etcd is down: change this instance only (written to etcd when it returns)")
	client := adminFlags(fs)
	direct := etcdFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: shiftgate cutoff [-local] on|off [ROUTE...]\n"+
			"  on: apps stop calling (the ROUTEs, else every route) and serve their local or CDN cache\n"+
			"  off ROUTE...: those routes again; off: every cut-off ends, site-wide and per route\n"+
			"  the gateway itself keeps serving whatever reaches it")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() < 1 || (fs.Arg(0) != "on" && fs.Arg(0) != "off") {
		fs.Usage()
		return 2
	}
	req := proxy.CutoffRequest{On: fs.Arg(0) == "on", Routes: fs.Args()[1:], Local: *local}
	var res proxy.CutoffResult
	if es, err := direct(); err != nil || es != nil {
		if err == nil && *local {
			err = errors.New("-local needs an instance's admin API, not -etcd")
		}
		if err == nil {
			defer es.Close()
			res, err = cutoffDirect(es, req)
		}
		if err != nil {
			fmt.Fprintln(stderr, "shiftgate cutoff:", err)
			return 1
		}
	} else {
		c, err := client()
		if err != nil {
			fmt.Fprintln(stderr, "shiftgate cutoff:", err)
			return 2
		}
		if err := c.Do("POST", "/v1/cutoff", req, &res); err != nil {
			fmt.Fprintln(stderr, "shiftgate cutoff:", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "cutoff: %s (revision %d", describeCutoff(res.On, res.Routes), res.Revision)
	if res.ClientConfigVersion != "" {
		fmt.Fprintf(stdout, ", client config %s", res.ClientConfigVersion)
	}
	fmt.Fprintln(stdout, ")\n  clients pick it up at their next config fetch; the gateway keeps serving")
	if res.Local {
		fmt.Fprintln(stdout, localNote)
	}
	return unpersistedExit(res.Unpersisted, stderr)
}

// describeCutoff says what is cut off, for the CLI.
func describeCutoff(on bool, routes []string) string {
	switch {
	case on:
		return "ON for the whole site"
	case len(routes) > 0:
		return "ON for routes " + strings.Join(routes, ", ")
	}
	return "off"
}

// cutoffDirect changes the fleet's cut-off in etcd. Without an instance nothing checks
// that the routes exist; names the config does not have are ignored by the gateways.
func cutoffDirect(es *store.Etcd, req proxy.CutoffRequest) (proxy.CutoffResult, error) {
	ctx, cancel := directCtx()
	defer cancel()
	ov, err := es.Update(ctx, func(o *conf.Overrides) error {
		if err := o.Cutoff.CheckSet(req.On, req.Routes); err != nil {
			return err
		}
		// Like rollback, the record of who ended a cut-off stays.
		next := o.Cutoff.Set(req.On, req.Routes)
		next.Who, next.At = cliWho(), time.Now().UTC()
		o.Cutoff = next
		return nil
	})
	if err != nil {
		return proxy.CutoffResult{}, err
	}
	return proxy.CutoffResult{On: ov.Cutoff.On, Routes: ov.Cutoff.Routes, Revision: ov.Revision}, nil
}

// cmdVectors prints the golden vectors every SDK is tested against (clients/vectors.json).
func cmdVectors(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("vectors", stderr)
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: shiftgate vectors")
		return 2
	}
	if _, err := stdout.Write(clientcfg.VectorsJSON()); err != nil {
		fmt.Fprintln(stderr, "shiftgate vectors:", err)
		return 1
	}
	return 0
}

// printClientCounts adds to status what apps that decide their region themselves
// said (X-Shift-Client) and the requests that crossed from self_region, summed over
// routes; nothing when there is nothing to say.
func printClientCounts(st proxy.Status, stdout io.Writer) {
	var sum proxy.ClientCounts
	for _, r := range st.Routes {
		if c := r.Clients; c != nil {
			sum.Agree += c.Agree
			sum.Disagree += c.Disagree
			sum.Stale += c.Stale
			sum.CrossRegion += c.CrossRegion
		}
	}
	if sum == (proxy.ClientCounts{}) {
		return
	}
	fmt.Fprintf(stdout, "\napps deciding themselves (X-Shift-Client): %d agree, %d disagree, %d stale config; %d requests crossed from self_region\n",
		sum.Agree, sum.Disagree, sum.Stale, sum.CrossRegion)
}
