package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/routing"
)

func cmdRoute(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("route", stderr)
	path := fs.String("config", "", "config file (YAML)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	ip := fs.String("ip", "127.0.0.1", "the TCP peer address")
	var headers headerFlags
	fs.Var(&headers, "H", "request header 'Name: value' (repeatable)")
	if code, ok := parseFlags(fs, args, 2, 2); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "shiftgate route: -config FILE is required")
		fs.Usage()
		return exitUsage
	}
	cfg, err := conf.LoadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Read only: a missing state_dir means no overrides, and nothing is created.
	ov, err := store.ReadFile(cfg.StateDir)
	if err != nil {
		fmt.Fprintf(stderr, "shiftgate route: overrides: %v (ignored)\n", err)
		ov = conf.Overrides{}
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
		return exitUsage
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
	if code, ok := parseFlags(fs, args, 1, 1); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "shiftgate warm: -config FILE is required")
		fs.Usage()
		return exitUsage
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
	cacheOf, err := cachedRoutes(cfg, headers)
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate warm:", err)
		return 1
	}
	client := &http.Client{Timeout: 10 * time.Second}
	ok, failed, uncached := 0, 0, 0
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
		// A GET through a route without a cache keeps nothing: not warmed.
		if route, cached := cacheOf(target); !cached {
			fmt.Fprintf(stderr, "%s:%d: %s: route %q has no fallback cache (not warmed)\n", fs.Arg(0), i+1, target, route)
			uncached++
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
	fmt.Fprintf(stdout, "warmed %d paths, %d failed, %d on routes without a cache\n", ok, failed, uncached)
	if failed > 0 || uncached > 0 {
		return 1
	}
	return 0
}

// cachedRoutes returns a function that names the route a GET of target takes through
// the gateway of cfg (with the Host the warm requests carry) and whether that route
// has a fallback cache.
func cachedRoutes(cfg *conf.Config, headers []string) (func(target string) (string, bool), error) {
	splits, rollback, err := conf.Overrides{}.Effective(cfg, time.Now())
	if err != nil {
		return nil, err
	}
	table, err := routing.Compile(cfg, splits, rollback)
	if err != nil {
		return nil, err
	}
	hs := append([]string{"Host: " + cfg.Listen}, headers...)
	return func(target string) (string, bool) {
		req, host, p, err := proxy.DecideRequest("GET", target, hs, "")
		if err != nil {
			return "", false
		}
		_, ex := table.Explain(host, p, req)
		r, ok := cfg.Route(ex.Route)
		return ex.Route, ok && r.Fallback.Cache != nil
	}, nil
}

func cmdBucket(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bucket", stderr)
	salt := fs.String("salt", "", "the split's salt")
	if code, ok := parseFlags(fs, args, 1, -1); !ok {
		return code
	}
	for _, k := range fs.Args() {
		fmt.Fprintf(stdout, "%s\t%d\n", k, routing.Bucket(*salt, k))
	}
	return 0
}
