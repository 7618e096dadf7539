// Package demo runs `shiftgate demo`: two labelled stand-in regions and a gateway on
// loopback with a built-in config, then a guided cutover of a few thousand users at
// 0 → 5 → 25 → 100 %, printing where users went and that none moved back.
package demo

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/proxy"
)

// configTemplate is the demo's config: the reference cutover with ports picked at run
// time. %s are the idc, cloud and state-dir values.
const configTemplate = `listen: 127.0.0.1:0
state_dir: %s
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
  - name: default
    match: { path_prefix: / }
    percent: 0
`

// Main runs the demo; it returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shiftgate demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	users := fs.Int("users", 3000, "how many users send requests")
	steps := fs.String("steps", "0,5,25,100", "the split percents to walk through")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := run(stdout, *users, strings.Split(*steps, ",")); err != nil {
		fmt.Fprintln(stderr, "shiftgate demo:", err)
		return 1
	}
	return 0
}

func run(out io.Writer, users int, steps []string) error {
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
	yaml := fmt.Sprintf(configTemplate, filepath.Join(dir, "state"), idc.Addr, cloud.Addr)
	cfg, err := conf.Parse("demo.yaml", []byte(yaml))
	if err != nil {
		return fmt.Errorf("built-in config: %w", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := proxy.New(cfg, proxy.Options{Logger: quiet})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	defer srv.Shutdown(2 * time.Second)
	gw := ln.Addr().String()

	fmt.Fprintf(out, "shiftgate demo: region idc on %s, region cloud on %s, gateway on %s\n", idc.Addr, cloud.Addr, gw)
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
		ov := srv.Overrides().Clone()
		ov.Routes["feed"] = conf.RouteOverride{PercentBP: bp, WritePercentBP: bp, Who: "demo"}
		if err := srv.ApplyOverrides(ov); err != nil {
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
	if totalBack == 0 {
		fmt.Fprintln(out, "no user moved back: the split is sticky and monotonic.")
	} else {
		fmt.Fprintf(out, "%d users moved back: this is a bug.\n", totalBack)
		return fmt.Errorf("%d backward moves", totalBack)
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
