// Command shiftgate is a traffic-shifting gateway: it moves a sticky, monotonic share of
// users from one region to another, keeps internal calls in the region the edge chose,
// breaks and falls back when a region fails, and rolls everything back in one command.
//
// Usage: shiftgate VERB [flags] [args]; `shiftgate help` lists the verbs.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/loadtest"
	"github.com/shiftgate/shiftgate/loadtest/demo"
	"github.com/shiftgate/shiftgate/loadtest/drill"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/routing"
)

const usage = `shiftgate moves users from one region to another, live.

  shiftgate serve  -config FILE          run the gateway
  shiftgate demo                         stand-in regions + gateway on loopback, a guided cutover
  shiftgate check  -config FILE          validate; errors name file:line and the key path; exit 1
  shiftgate route  -config FILE [-json] [-H 'Name: v']... [-ip ADDR] METHOD PATH
                                         explain a decision
  shiftgate bucket -salt S KEY...        print buckets
  shiftgate split  [-writes P] [-dry-run] [-local] ROUTE PERCENT
  shiftgate rollback [-ramp DURATION] [-local] on|off
  shiftgate status [-fleet]
  shiftgate warm   -config FILE URLS.txt pre-warm the fallback cache through a running gateway
  shiftgate loadtest [flags]             load generator (shiftgate loadtest -h)
  shiftgate loadtest -drill [flags]      cutover rehearsal: ramp, reload storm, rollback, region kill
  shiftgate backend [flags]              a fixed-body stand-in backend for benches

Admin verbs (split, rollback, status) take -admin URL (default from -config, else
http://127.0.0.1:9090) and a token from -token-file or $SHIFTGATE_TOKEN.
In a fleet (fleet.etcd), a split or rollback made on one instance holds on all of them;
-local changes only that instance while etcd is down (written to etcd when it returns);
-etcd ENDPOINTS -prefix P writes to etcd directly when no instance answers;
status -fleet lists the instances and the override revision each serves.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "serve":
		return cmdServe(rest, stderr)
	case "demo":
		return demo.Main(rest, stdout, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "route":
		return cmdRoute(rest, stdout, stderr)
	case "bucket":
		return cmdBucket(rest, stdout, stderr)
	case "split":
		return cmdSplit(rest, stdout, stderr)
	case "rollback":
		return cmdRollback(rest, stdout, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "warm":
		return cmdWarm(rest, stdout, stderr)
	case "loadtest":
		for i, a := range rest {
			if a == "-drill" || a == "--drill" {
				return drill.Main(append(append([]string(nil), rest[:i]...), rest[i+1:]...), stdout, stderr)
			}
		}
		return loadtest.Main(rest, stdout, stderr)
	case "backend":
		return loadtest.BackendMain(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "shiftgate: unknown verb %q\n\n%s", verb, usage)
	return 2
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("shiftgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// cmdServe runs the gateway until SIGINT or SIGTERM.
func cmdServe(args []string, stderr io.Writer) int {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "", "config file (YAML)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "shiftgate serve: -config FILE is required")
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "shiftgate serve: -log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := serve(context.Background(), *path, log, nil); err != nil {
		log.Error("shiftgate stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs one gateway from the config file at path until ctx ends or a signal
// arrives. ready, when not nil, receives the server once it listens.
func serve(ctx context.Context, path string, log *slog.Logger, ready chan<- *proxy.Server) error {
	cfg, err := conf.LoadFile(path)
	if err != nil {
		// A file the gateway cannot read is refused at start, even with a valid
		// persisted state: an operator must see the mistake before it serves.
		return err
	}
	store, err := openStore(cfg, log)
	if err != nil {
		return err
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: log, Store: store})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	aln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		ln.Close()
		return err
	}
	ctx, cancel := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	w := conf.NewWatcher(path, cfg.Hash)
	w.OnConfig = func(c *conf.Config) error {
		if err := srv.Reload(c); err != nil {
			return err
		}
		log.Info("config reloaded", "file", path, "hash", fmt.Sprintf("%016x", c.Hash))
		return nil
	}
	w.OnError = func(err error) {
		log.Error("config refused; the last good config keeps serving", "file", path, "err", err.Error())
	}
	go func() {
		if err := w.Run(ctx); err != nil {
			log.Error("config watcher stopped", "err", err)
		}
	}()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				w.Trigger()
			}
		}
	}()

	// Overrides changed elsewhere (other instances of a fleet) apply here with the same
	// atomic swap as a local change.
	go func() {
		err := store.Watch(ctx, func(ov conf.Overrides) {
			if err := srv.ApplyOverrides(ov); err != nil {
				log.Error("override from the store refused", "store", store.Describe(), "revision", ov.Revision, "err", err)
			}
		})
		if err != nil {
			log.Error("override store watch stopped", "store", store.Describe(), "err", err)
		}
	}()

	// A fleet instance registers itself (under a lease) so that status -fleet lists
	// it with the revision it serves; it leaves the list on the way out.
	if es, ok := store.(*conf.EtcdStore); ok {
		registered := make(chan struct{})
		go func() { defer close(registered); es.Register(ctx, ln.Addr().String(), aln.Addr().String()) }()
		defer func() {
			cancel()
			<-registered
			es.Close()
		}()
	}

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- srv.ServeAdmin(ctx, aln) }()
	log.Info("shiftgate serving", "listen", ln.Addr().String(), "admin", aln.Addr().String(),
		"config", path, "routes", len(cfg.Routes), "overrides", store.Describe())
	if ready != nil {
		ready <- srv
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			return err
		}
	}
	log.Info("shutting down: draining in-flight requests")
	return srv.Shutdown(cfg.Timeouts.Shutdown.Or(15 * time.Second))
}

// openStore returns the override store the config asks for: the state_dir file for a
// single instance, etcd for a fleet (mirrored to state_dir, so a restart during an
// etcd outage serves the last values).
func openStore(cfg *conf.Config, log *slog.Logger) (conf.OverrideStore, error) {
	if e := cfg.Fleet.Etcd; e != nil {
		return conf.NewEtcdStore(e, conf.EtcdOptions{StateDir: cfg.StateDir, Logger: log})
	}
	return conf.NewFileStore(cfg.StateDir)
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	path := fs.String("config", "", "config file (YAML)")
	against := fs.String("against", "", "admin URL of a running gateway: print what loading this file there would do")
	token := fs.String("token-file", "", "admin bearer token file for -against (default: $SHIFTGATE_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "shiftgate check: -config FILE is required")
		return 2
	}
	cfg, err := conf.LoadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
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
func checkAgainst(cfg *conf.Config, admin, tokenFile string, stdout, stderr io.Writer) int {
	c := &adminClient{base: strings.TrimSuffix(admin, "/"), token: os.Getenv("SHIFTGATE_TOKEN"), http: &http.Client{Timeout: 10 * time.Second}}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, "shiftgate check:", err)
			return 1
		}
		c.token = strings.TrimSpace(string(b))
	}
	var st proxy.Status
	if err := c.do("GET", "/v1/status", nil, &st); err != nil {
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
		fwd, back, samples := moves(old, r, oldBP, newBP, reshuffle)
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

// moves estimates the shares of users that move forward and back between the running
// route and the file's, over 100,000 sample keys when users reshuffle, and exactly
// from the bucket space when only the percent changes.
func moves(old proxy.RouteStatus, r *conf.Route, oldBP, newBP int, reshuffle bool) (fwd, back float64, samples []string) {
	const n = 100000
	if !reshuffle {
		if newBP > oldBP {
			fwd = float64(newBP-oldBP) / routing.Buckets
		} else {
			back = float64(oldBP-newBP) / routing.Buckets
		}
	}
	var f, b int
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("u-%d", i)
		wasTo := routing.Bucket(old.Salt, k) < oldBP
		isTo := routing.Bucket(r.SaltValue, k) < newBP
		if old.To != r.To {
			isTo = !isTo
		}
		switch {
		case !wasTo && isTo:
			f++
			if len(samples) < 3 {
				samples = append(samples, k+" →"+r.To)
			}
		case wasTo && !isTo:
			b++
			if len(samples) < 3 {
				samples = append(samples, k+" →"+r.From)
			}
		}
	}
	if reshuffle {
		fwd, back = float64(f)/n, float64(b)/n
	}
	return fwd, back, samples
}

// headerFlags collects repeated -H flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func cmdRoute(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("route", stderr)
	path := fs.String("config", "", "config file (YAML)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	ip := fs.String("ip", "127.0.0.1", "the TCP peer address")
	var headers headerFlags
	fs.Var(&headers, "H", "request header 'Name: value' (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || fs.NArg() != 2 {
		fmt.Fprintln(stderr, "usage: shiftgate route -config FILE [-json] [-H 'Name: v']... [-ip ADDR] METHOD PATH")
		return 2
	}
	cfg, err := conf.LoadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	store, err := conf.NewFileStore(cfg.StateDir)
	var ov conf.Overrides
	if err == nil {
		if ov, err = store.Load(); err != nil {
			fmt.Fprintf(stderr, "shiftgate route: overrides: %v (ignored)\n", err)
		}
	}
	splits, rollback, err := ov.Effective(cfg, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	table, err := routing.Compile(cfg, splits, rollback)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	req, host, p, err := proxy.DecideRequest(fs.Arg(0), fs.Arg(1), headers, *ip)
	if err != nil {
		fmt.Fprintf(stderr, "shiftgate route: %v\n", err)
		return 2
	}
	_, ex := table.Explain(host, p, req)
	if *asJSON {
		b, _ := json.Marshal(ex)
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "route\t%s\n", ex.Route)
	fmt.Fprintf(tw, "key source\t%s\n", ex.KeySource)
	fmt.Fprintf(tw, "key\t%s\n", ex.Key)
	fmt.Fprintf(tw, "bucket\t%d\n", ex.Bucket)
	fmt.Fprintf(tw, "threshold\t%d (%s%%, %s)\n", ex.Threshold, ex.Percent, map[bool]string{true: "writes", false: "reads"}[ex.Write])
	fmt.Fprintf(tw, "region\t%s\n", ex.Region)
	fmt.Fprintf(tw, "reason\t%s\n", ex.Reason)
	tw.Flush()
	return 0
}

// cmdWarm sends a GET for each path in a file through the running gateway of a
// config, so that routes with a fallback cache hold those responses before the cutover
// needs them. Lines are paths ("/api/feed?page=1") or URLs whose path is taken; blank
// lines and # comments are skipped.
func cmdWarm(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("warm", stderr)
	path := fs.String("config", "", "config file of the running gateway")
	var headers headerFlags
	fs.Var(&headers, "H", "request header 'Name: value' (repeatable), e.g. a user id for vary")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: shiftgate warm -config FILE [-H 'Name: v']... URLS.txt")
		return 2
	}
	cfg, err := conf.LoadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	data, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate warm:", err)
		return 1
	}
	client := &http.Client{Timeout: 10 * time.Second}
	ok, failed := 0, 0
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		target := line
		if u, err := url.Parse(line); err == nil && u.Scheme != "" {
			target = u.RequestURI()
		}
		if !strings.HasPrefix(target, "/") {
			fmt.Fprintf(stderr, "%s:%d: want a path or URL, got %q\n", fs.Arg(0), i+1, line)
			failed++
			continue
		}
		req, err := http.NewRequest("GET", "http://"+cfg.Listen+target, nil)
		if err != nil {
			fmt.Fprintf(stderr, "%s:%d: %v\n", fs.Arg(0), i+1, err)
			failed++
			continue
		}
		for _, h := range headers {
			if k, v, found := strings.Cut(h, ":"); found {
				req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", target, err)
			failed++
			continue
		}
		io.Copy(io.Discard, resp.Body) //nolint:errcheck // only the gateway's copy matters
		resp.Body.Close()
		if resp.StatusCode/100 != 2 || resp.Header.Get("X-Shift-Fallback") != "" {
			fmt.Fprintf(stderr, "%s: %s %s (not cached)\n", target, resp.Status, resp.Header.Get("X-Shift-Fallback"))
			failed++
			continue
		}
		ok++
	}
	fmt.Fprintf(stdout, "warmed %d paths, %d failed\n", ok, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

func cmdBucket(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bucket", stderr)
	salt := fs.String("salt", "", "the split's salt")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: shiftgate bucket -salt S KEY...")
		return 2
	}
	for _, k := range fs.Args() {
		fmt.Fprintf(stdout, "%s\t%d\n", k, routing.Bucket(*salt, k))
	}
	return 0
}

// adminClient talks to a running gateway's admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func adminFlags(fs *flag.FlagSet) func() (*adminClient, error) {
	admin := fs.String("admin", "", "admin API URL (default: from -config, else http://127.0.0.1:9090)")
	path := fs.String("config", "", "config file to take the admin address and token from")
	tokenFile := fs.String("token-file", "", "file holding the admin bearer token (default: $SHIFTGATE_TOKEN)")
	return func() (*adminClient, error) {
		c := &adminClient{base: *admin, token: os.Getenv("SHIFTGATE_TOKEN"), http: &http.Client{Timeout: 10 * time.Second}}
		if *path != "" {
			cfg, err := conf.LoadFile(*path)
			if err != nil {
				return nil, err
			}
			if c.base == "" {
				c.base = "http://" + cfg.Admin.Listen
			}
			if c.token == "" {
				c.token = cfg.Admin.Token
			}
		}
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return nil, err
			}
			c.token = strings.TrimSpace(string(b))
		}
		if c.base == "" {
			c.base = "http://127.0.0.1:9090"
		}
		if _, err := url.Parse(c.base); err != nil {
			return nil, fmt.Errorf("-admin: %v", err)
		}
		c.base = strings.TrimSuffix(c.base, "/")
		return c, nil
	}
}

func (c *adminClient) do(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("admin API: %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func cmdSplit(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("split", stderr)
	writes := fs.String("writes", "", "write percent (default: equal to PERCENT)")
	dry := fs.Bool("dry-run", false, "print what the change would do, change nothing")
	local := fs.Bool("local", false, "while the fleet's etcd is down: change this instance only (written to etcd when it returns)")
	client := adminFlags(fs)
	direct := etcdFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 2 || fs.NArg()%2 != 0 {
		fmt.Fprintln(stderr, "usage: shiftgate split [-writes P] [-dry-run] [-local] ROUTE PERCENT [ROUTE PERCENT]...")
		return 2
	}
	if fs.NArg() > 2 {
		return splitBulk(fs.Args(), *writes, *dry, *local, client, stdout, stderr)
	}
	if store, err := direct(); err != nil || store != nil {
		if err == nil && (*dry || *local) {
			err = errors.New("-dry-run and -local need an instance's admin API, not -etcd")
		}
		if err == nil {
			defer store.Close()
			err = splitDirect(store, fs.Arg(0), fs.Arg(1), *writes, stdout)
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
		return 1
	}
	req := proxy.SplitRequest{Percent: json.Number(fs.Arg(1)), DryRun: *dry, Local: *local}
	if *writes != "" {
		w := json.Number(*writes)
		req.WritePercent = &w
	}
	var res proxy.SplitResult
	if err := c.do("PUT", "/v1/routes/"+url.PathEscape(fs.Arg(0))+"/split", req, &res); err != nil {
		fmt.Fprintln(stderr, "shiftgate split:", err)
		return 1
	}
	verb := "now"
	if res.DryRun {
		verb = "would be"
	}
	fmt.Fprintf(stdout, "route %s: %g%% (writes %g%%) %s %g%% (writes %g%%)\n", res.Route, res.Before, res.BeforeWrite, verb, res.After, res.AfterWrite)
	fmt.Fprintf(stdout, "users moving forward: %.2f%%, moving back: %.2f%%\n", res.MoveForward*100, res.MoveBack*100)
	if len(res.SampleKeys) > 0 {
		fmt.Fprintf(stdout, "sample keys that move: %s\n", strings.Join(res.SampleKeys, ", "))
	}
	if res.Local {
		fmt.Fprintln(stdout, localNote)
	}
	return 0
}

// splitBulk changes several routes' splits in one admin call (one store write, so
// they take effect together); pairs are ROUTE PERCENT, -writes applies to each.
func splitBulk(pairs []string, writes string, dry, local bool, client func() (*adminClient, error), stdout, stderr io.Writer) int {
	c, err := client()
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate split:", err)
		return 1
	}
	req := proxy.BulkSplitRequest{Routes: map[string]proxy.SplitRequest{}, DryRun: dry, Local: local}
	for i := 0; i < len(pairs); i += 2 {
		one := proxy.SplitRequest{Percent: json.Number(pairs[i+1])}
		if writes != "" {
			w := json.Number(writes)
			one.WritePercent = &w
		}
		if _, dup := req.Routes[pairs[i]]; dup {
			fmt.Fprintf(stderr, "shiftgate split: route %s is named twice\n", pairs[i])
			return 2
		}
		req.Routes[pairs[i]] = one
	}
	var res proxy.BulkSplitResult
	if err := c.do("PUT", "/v1/splits", req, &res); err != nil {
		fmt.Fprintln(stderr, "shiftgate split:", err)
		return 1
	}
	verb := "now"
	if res.DryRun {
		verb = "would be"
	}
	for _, r := range res.Results {
		fmt.Fprintf(stdout, "route %s: %g%% (writes %g%%) %s %g%% (writes %g%%); users moving forward %.2f%%, back %.2f%%\n",
			r.Route, r.Before, r.BeforeWrite, verb, r.After, r.AfterWrite, r.MoveForward*100, r.MoveBack*100)
	}
	if local {
		fmt.Fprintln(stdout, localNote)
	}
	return 0
}

func cmdRollback(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("rollback", stderr)
	ramp := fs.String("ramp", "", "with off: bring the split back linearly over this duration (e.g. 10m)")
	local := fs.Bool("local", false, "while the fleet's etcd is down: change this instance only (written to etcd when it returns)")
	client := adminFlags(fs)
	direct := etcdFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "on" && fs.Arg(0) != "off") {
		fmt.Fprintln(stderr, "usage: shiftgate rollback [-ramp DURATION] [-local] on|off")
		return 2
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
		return 1
	}
	req := proxy.RollbackRequest{On: fs.Arg(0) == "on", Ramp: *ramp, Local: *local}
	var res map[string]any
	if err := c.do("POST", "/v1/rollback", req, &res); err != nil {
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
	if req.Local {
		fmt.Fprintln(stdout, localNote)
	}
	return 0
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print the raw JSON")
	fleet := fs.Bool("fleet", false, "list the fleet's instances and the override revision each serves")
	client := adminFlags(fs)
	direct := etcdFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
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
		return 1
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
	if err := c.do("GET", "/v1/status", nil, &st); err != nil {
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
	fmt.Fprintf(stdout, "config %s (version %d, hash %s)\noverrides: %s, revision %d\nrollback: %s\n",
		st.ConfigFile, st.Version, st.ConfigHash, st.Store, st.Revision, roll)
	if !st.StoreUp {
		fmt.Fprintf(stdout, "override store DOWN: %s\n  serving the last known overrides (revision %d); fleet writes are refused, -local writes change this instance only\n",
			st.StoreError, st.AppliedRevision)
	}
	if len(st.PendingLocal) > 0 {
		fmt.Fprintf(stdout, "LOCAL CHANGE PENDING (not in the fleet store yet): %s\n", strings.Join(st.PendingLocal, ", "))
	}
	if r := st.LastReconciled; r != nil {
		fmt.Fprintf(stdout, "local change made %s reconciled into the store at %s (revision %d): %s\n",
			r.LocalAt.Format(time.RFC3339), r.At.Format(time.RFC3339), r.Revision, strings.Join(r.Keys, ", "))
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tFROM->TO\tFILE\tOVERRIDE\tIN EFFECT\tBREAKERS")
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
		fmt.Fprintf(tw, "%s\t%s->%s\t%g/%g\t%s\t%g/%g\t%s\n", r.Name, r.From, r.To, r.FilePercent, r.FileWritePercent,
			ov, r.Effective, r.EffectiveWrite, strings.Join(br, " "))
	}
	tw.Flush()
	return 0
}

// localNote is printed after a -local write.
const localNote = "LOCAL: this instance only; other instances keep their values until etcd returns, when this change is written to the fleet"
