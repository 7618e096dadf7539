// Package demo runs `shiftgate demo`: two labelled stand-in regions and a gateway on
// loopback with a built-in config, then a guided cutover of a few thousand users at
// 0 → 5 → 25 → 100 %, printing where users went and that none moved back. With -hold
// the gateway stays up afterwards under a light background load, so its migration
// dashboard shows live cohorts.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/gateway"
)

// configTemplate is the demo's config: the reference cutover with ports picked at run
// time. %s are the idc, cloud and state-dir values.
const configTemplate = `listen: 127.0.0.1:0
admin: { listen: "%s" }
state_dir: %s
self_region: idc
regions:
  idc:   { upstreams: ["%s"] }
  cloud: { upstreams: ["%s"] }
split:
  from: idc
  to: cloud
  salt: cutover-2026
  keys: ["header:X-User-Id", "cookie:uid", "header:X-Device-Id", "ip"]
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 0
    force:
      cloud: ["u-qa-1", "u-qa-2"]
    failover: idempotent
    fallback:
      static: { status: 200, content_type: application/json, body: '{"items":[],"fallback":true}' }
  # Not walked: a route held mid-cutover, so the dashboard compares its cohorts.
  - name: profile
    match: { path_prefix: /api/profile }
    percent: 30
  - name: default
    match: { path_prefix: / }
    percent: 0
`

// Main runs the demo; it returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shiftgate demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	users := fs.Int("users", 3000, "how many users send requests")
	hold := fs.Duration("hold", 0, "keep the gateway and regions up this long after the walk (e.g. 10m) under a light background load, to look at the dashboard, status and /metrics")
	adminAddr := fs.String("admin", "127.0.0.1:0", "admin listener (status, metrics) of the demo gateway")
	steps := fs.String("steps", "0,5,25,100", "the split percents to walk through")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n\nflags:\n", "shiftgate demo [-users N] [-steps 0,5,25,100] [-hold DURATION] [-admin ADDR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shiftgate demo: takes no arguments, got %q (flags go before arguments)\n", fs.Args())
		fs.Usage()
		return 2
	}
	if err := run(stdout, *users, strings.Split(*steps, ","), *adminAddr, *hold); err != nil {
		fmt.Fprintln(stderr, "shiftgate demo:", err)
		return 1
	}
	return 0
}

func run(out io.Writer, users int, steps []string, adminAddr string, hold time.Duration) error {
	if users < 1 || users > 1000000 {
		return fmt.Errorf("-users: want 1..1000000, got %d", users)
	}
	idc, err := standin.Start("idc", "127.0.0.1:0", standin.Options{})
	if err != nil {
		return err
	}
	defer idc.Close()
	cloud, err := standin.Start("cloud", "127.0.0.1:0", standin.Options{})
	if err != nil {
		return err
	}
	defer cloud.Close()
	dir, err := os.MkdirTemp("", "shiftgate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "demo.yaml")
	yaml := fmt.Sprintf(configTemplate, adminAddr, filepath.Join(dir, "state"), idc.Addr, cloud.Addr)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		return err
	}
	// The demo runs the same assembly as `shiftgate serve`.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := gateway.Start(ctx, gateway.Options{ConfigPath: path, Logger: quiet})
	if err != nil {
		return fmt.Errorf("built-in config: %w", err)
	}
	defer func() { g.Stop(); g.Wait() }() //nolint:errcheck // the walk's result is already printed
	srv, gw := g.Server, g.Addr

	fmt.Fprintf(out, "shiftgate demo: region idc on %s, region cloud on %s, gateway on %s, admin on http://%s\n", idc.Addr, cloud.Addr, gw, g.AdminAddr)
	fmt.Fprintf(out, "migration dashboard: http://%s/dashboard\n", g.AdminAddr)
	fmt.Fprintf(out, "%d users (X-User-Id u-1..u-%d) read /api/feed while the feed route moves idc -> cloud.\n\n", users, users)

	client := &fasthttp.HostClient{Addr: gw, MaxConns: 64}
	prev := make([]string, users+1)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "split\tusers in idc\tusers in cloud\tcloud share\tmoved forward\tmoved back\tmismatches\t")
	totalBack := 0
	for _, step := range steps {
		bp, err := conf.ParsePercent(step)
		if err != nil {
			return fmt.Errorf("-steps: %v", err)
		}
		pct := json.Number(conf.FormatBP(bp))
		if _, err := srv.ChangeSplits(ctx, "demo", proxy.BulkSplitRequest{
			Routes: map[string]proxy.SplitRequest{"feed": {Percent: pct, WritePercent: &pct}}}); err != nil {
			return err
		}
		counts := map[string]int{}
		forward, back, mismatch := 0, 0, 0
		for u := 1; u <= users; u++ {
			region, served, err := get(client, fmt.Sprintf("u-%d", u), "")
			if err != nil {
				return err
			}
			if region != served {
				mismatch++
			}
			counts[region]++
			switch {
			case prev[u] == "idc" && region == "cloud":
				forward++
			case prev[u] == "cloud" && region == "idc":
				back++
			}
			prev[u] = region
		}
		totalBack += back
		fmt.Fprintf(tw, "%s%%\t%d\t%d\t%.2f%%\t%d\t%d\t%d\t\n", conf.FormatBP(bp), counts["idc"], counts["cloud"],
			100*float64(counts["cloud"])/float64(users), forward, back, mismatch)
	}
	tw.Flush()

	fmt.Fprintln(out)
	qa, _, err := get(client, "u-qa-1", "")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "tester u-qa-1 (pinned by force) was served by: %s\n", qa)
	spoof, _, err := get(client, "u-1", "idc")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "u-1 with a spoofed X-Shift-Region: idc from 127.0.0.1 (not a trusted caller) was served by: %s (its own region)\n", spoof)
	if totalBack != 0 {
		fmt.Fprintf(out, "%d users moved back: this is a bug.\n", totalBack)
		return fmt.Errorf("%d backward moves", totalBack)
	}
	fmt.Fprintln(out, "no user moved back: the split is sticky and monotonic.")
	if hold > 0 {
		fmt.Fprintf(out, "\nholding for %s (Ctrl-C ends it) under a background load of about %d req/s:\n", hold, backgroundRate)
		fmt.Fprintf(out, "  open http://%s/dashboard\n  shiftgate status -admin http://%s; curl http://%s/metrics\n", g.AdminAddr, g.AdminAddr, g.AdminAddr)
		hctx, stop := context.WithTimeout(ctx, hold)
		defer stop()
		backgroundLoad(hctx, client, users)
	}
	return nil
}

// get sends one request for user and returns the region the gateway named and the
// region that actually answered.
func get(c *fasthttp.HostClient, user, spoof string) (string, string, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://gateway/api/feed")
	req.Header.Set("X-User-Id", user)
	if spoof != "" {
		req.Header.Set("X-Shift-Region", spoof)
	}
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		return "", "", err
	}
	if resp.StatusCode() != 200 {
		return "", "", fmt.Errorf("user %s: status %d: %s", user, resp.StatusCode(), resp.Body())
	}
	return string(resp.Header.Peek("X-Shift-Region")), string(resp.Header.Peek(standin.RegionHeader)), nil
}

// backgroundRate is the background load while the demo holds: enough that the
// dashboard's comparisons on the profile route (30 % moved) have 1000 requests a side
// within their one-minute window, light enough for any laptop.
const backgroundRate = 100

// backgroundLoad sends about backgroundRate requests a second through the demo gateway
// (loopback only, one at a time) until ctx ends: users of the profile route, held at
// 30 %, most of the time, and of the feed and the catch-all route, from a few kinds of
// client, some keyed by cookie or by nothing (their address), so the dashboard shows
// both cohorts, the comparisons and who still calls idc.
func backgroundLoad(ctx context.Context, c *fasthttp.HostClient, users int) {
	agents := [...]string{"curl/8.5.0", "okhttp/4.12.0", "python-requests/2.31.0",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"}
	tick := time.NewTicker(time.Second / backgroundRate)
	defer tick.Stop()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		req.Reset()
		switch i % 10 {
		case 7, 8:
			req.SetRequestURI("http://gateway/api/feed")
		case 9:
			req.SetRequestURI("http://gateway/")
		default:
			req.SetRequestURI(fmt.Sprintf("http://gateway/api/profile/%d", i%50))
		}
		switch user := 1 + i%max(users, 1); i % 20 {
		case 5:
			req.Header.SetCookie("uid", fmt.Sprintf("c-%d", user))
		case 15: // no key: the client's address decides
		default:
			req.Header.Set("X-User-Id", fmt.Sprintf("u-%d", user))
		}
		req.Header.SetUserAgent(agents[i%len(agents)])
		c.DoTimeout(req, resp, time.Second) //nolint:errcheck // a failed request is part of what the page shows
	}
}
