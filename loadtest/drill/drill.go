// Package drill runs `shiftgate loadtest -drill`: a cutover rehearsal on loopback.
// Under steady load from many users it ramps a route 0 → 1 → 5 → 25 → 50 → 100 %,
// storms config reloads, rolls back and restores, kills one region's backend and
// brings it back, and reports per phase the failed requests, the fallbacks, how many
// users moved backwards and how long each change took to take effect.
package drill

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/loadtest/standin"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/gateway"
	"github.com/shiftgate/shiftgate/routing"
)

const configTemplate = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split:
  from: idc
  to: cloud
  salt: cutover-2026
  keys: ["header:X-User-Id", "cookie:uid", "header:X-Device-Id", "ip"]
timeouts: { connect: 500ms, response_header: 2s }
routes:
  - name: feed
    match: { path_prefix: /api/feed }
    percent: 0
    breaker: { min_requests: 20, failure_ratio: 0.5, window: 10s, open_for: 2s }
    failover: idempotent
    fallback:
      cache: { ttl: 10m, max_bytes: 64MiB }
      static: { status: 200, content_type: application/json, body: '{"items":[],"fallback":true}' }
  - name: default
    match: { path_prefix: / }
    percent: 0
# reload {{N}}
`

// Options shape a drill.
type Options struct {
	Users    int
	Conns    int
	Phase    time.Duration
	Reloads  int
	JSON     bool
	Progress io.Writer
}

// PhaseResult is one phase's outcome.
type PhaseResult struct {
	Name      string  `json:"phase"`
	Requests  int64   `json:"requests"`
	Failed    int64   `json:"failed"`
	Fallbacks int64   `json:"fallbacks"`
	Back      int64   `json:"users_moved_back"`
	CloudPct  float64 `json:"cloud_share_percent"`
	// EffectMS is the time from the change's command returning to the first request
	// routed the new way; -1 when the phase makes no routing change.
	EffectMS float64 `json:"effect_ms"`
	// StaleAfter counts requests sent after the command returned that were still
	// routed the old way.
	StaleAfter int64 `json:"stale_after_change"`
	// BackAllowed is set for the phases in which moving users back is the point.
	BackAllowed bool `json:"back_allowed"`
}

// Main runs the drill from the command line.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shiftgate loadtest -drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := Options{}
	fs.IntVar(&o.Users, "users", 2000, "distinct users (X-User-Id u-0..)")
	fs.IntVar(&o.Conns, "conns", 32, "keep-alive connections sending load")
	fs.DurationVar(&o.Phase, "phase", 2*time.Second, "length of each phase")
	fs.IntVar(&o.Reloads, "reloads", 30, "config reloads in the reload storm")
	fs.BoolVar(&o.JSON, "json", false, "print the result as JSON")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n\nflags:\n", "shiftgate loadtest -drill [-users N] [-conns N] [-phase DURATION] [-reloads N] [-json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shiftgate loadtest -drill: takes no arguments, got %q (flags go before arguments)\n", fs.Args())
		fs.Usage()
		return 2
	}
	o.Progress = stderr
	res, err := Run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(stderr, "drill:", err)
		return 1
	}
	if o.JSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		Print(stdout, res)
	}
	if !Passed(res) {
		return 1
	}
	return 0
}

// Passed reports whether a drill met its bar: no failed request outside the phase
// that kills a region, and no user moved back outside rollback. (While a region is
// down its users are answered by the other one; those answers are not moves.)
func Passed(res []PhaseResult) bool {
	for _, p := range res {
		if p.Back > 0 && !p.BackAllowed {
			return false
		}
		if p.Failed > 0 && !strings.HasPrefix(p.Name, "kill") {
			return false
		}
	}
	return true
}

// Print writes the drill's table.
func Print(w io.Writer, res []PhaseResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\trequests\tfailed\tfallbacks\tcloud share\tmoved back\ttook effect\tstale after\t")
	for _, p := range res {
		eff := "-"
		if p.EffectMS >= 0 {
			eff = fmt.Sprintf("%.1f ms", p.EffectMS)
		}
		back := fmt.Sprintf("%d", p.Back)
		if p.BackAllowed {
			back += " (rollback)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f%%\t%s\t%s\t%d\t\n", p.Name, p.Requests, p.Failed, p.Fallbacks, p.CloudPct, back, eff, p.StaleAfter)
	}
	tw.Flush()
}

// drill is one run's shared state.
type drill struct {
	o     Options
	srv   *proxy.Server
	gw    string
	admin string
	path  string
	text  func(n int) string
	phase atomic.Pointer[phaseState]
	moves *moves
}

// phaseState collects one phase's counts; expect says where a user belongs after the
// phase's change (nil: no routing change to time).
type phaseState struct {
	PhaseResult
	backAllowed bool
	failure     bool         // a region is down: answers may come by failover
	epoch       int64        // see moves: a new one after each phase that moves users back
	changed     atomic.Int64 // unix ns when the phase's change returned; 0 before
	expect      func(user int) string
	firstNew    atomic.Int64 // ns after changed; 0 unset
	requests    atomic.Int64
	failed      atomic.Int64
	fallbacks   atomic.Int64
	back        atomic.Int64
	cloud       atomic.Int64
	stale       atomic.Int64
}

// Run executes the drill and returns one result per phase.
func Run(ctx context.Context, o Options) ([]PhaseResult, error) {
	if o.Users <= 0 || o.Conns <= 0 || o.Phase <= 0 {
		return nil, fmt.Errorf("users, conns and phase must be positive")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	idc, err := standin.Start("idc", "127.0.0.1:0", standin.Options{})
	if err != nil {
		return nil, err
	}
	defer idc.Close()
	cloud, err := standin.Start("cloud", "127.0.0.1:0", standin.Options{})
	if err != nil {
		return nil, err
	}
	cloudAddr := cloud.Addr
	dir, err := os.MkdirTemp("", "shiftgate-drill-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	d := &drill{o: o, path: filepath.Join(dir, "drill.yaml"), moves: newMoves(o.Users)}
	d.text = func(n int) string {
		return strings.NewReplacer("{{STATE}}", filepath.Join(dir, "state"), "{{IDC}}", idc.Addr,
			"{{CLOUD}}", cloudAddr, "{{N}}", fmt.Sprint(n)).Replace(configTemplate)
	}
	if err := os.WriteFile(d.path, []byte(d.text(0)), 0o644); err != nil {
		return nil, err
	}
	// The drill rehearses the real assembly: the same store, watcher and admin API
	// as `shiftgate serve`, on loopback ports of its own.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, err := gateway.Start(ctx, gateway.Options{ConfigPath: d.path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", Debounce: 20 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	defer func() { g.Stop(); g.Wait() }() //nolint:errcheck // the drill's results are already in
	d.srv = g.Server
	d.gw, d.admin = g.Addr, "http://"+g.AdminAddr

	d.phase.Store(&phaseState{PhaseResult: PhaseResult{Name: "warm-up"}})
	var wg sync.WaitGroup
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	for i := 0; i < o.Conns; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); d.load(loadCtx, i) }(i)
	}
	time.Sleep(o.Phase / 2)

	var results []PhaseResult
	var epoch int64
	prevBackAllowed := false
	run := func(name string, backAllowed bool, change func() error, expect func(int) string) error {
		if prevBackAllowed {
			epoch++
		}
		prevBackAllowed = backAllowed
		ps := &phaseState{PhaseResult: PhaseResult{Name: name, EffectMS: -1}, backAllowed: backAllowed, expect: expect,
			failure: name == "kill cloud" || name == "cloud back", epoch: epoch}
		d.phase.Store(ps)
		if change != nil {
			if err := change(); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		ps.changed.Store(time.Now().UnixNano())
		time.Sleep(o.Phase)
		r := ps.PhaseResult
		r.Requests, r.Failed, r.Fallbacks, r.Back, r.StaleAfter = ps.requests.Load(), ps.failed.Load(), ps.fallbacks.Load(), ps.back.Load(), ps.stale.Load()
		r.BackAllowed = backAllowed
		if r.Requests > 0 {
			r.CloudPct = 100 * float64(ps.cloud.Load()) / float64(r.Requests)
		}
		if expect != nil {
			if ns := ps.firstNew.Load(); ns > 0 {
				r.EffectMS = float64(ns) / 1e6
			}
		}
		results = append(results, r)
		fmt.Fprintf(o.Progress, "drill: %-22s %6d requests, %d failed, %d fallbacks, %d moved back\n", name, r.Requests, r.Failed, r.Fallbacks, r.Back)
		return nil
	}
	byPercent := func(bp int) func(int) string {
		return func(u int) string {
			if routing.Bucket("cutover-2026", fmt.Sprintf("u-%d", u)) < bp {
				return "cloud"
			}
			return "idc"
		}
	}
	split := func(bp int) func() error {
		return func() error {
			return d.call("PUT", "/v1/routes/feed/split", fmt.Sprintf(`{"percent":%s}`, conf.FormatBP(bp)))
		}
	}
	steps := []int{100, 500, 2500, 5000, 10000}
	names := []string{"ramp 1%", "ramp 5%", "ramp 25%", "ramp 50%", "ramp 100%"}
	for i, bp := range steps[:3] {
		if err := run(names[i], false, split(bp), byPercent(bp)); err != nil {
			return results, err
		}
	}
	if err := run(fmt.Sprintf("reload storm (%d)", o.Reloads), false, func() error {
		go func() {
			for n := 1; n <= o.Reloads; n++ {
				os.WriteFile(d.path+".tmp", []byte(d.text(n)), 0o644) //nolint:errcheck
				os.Rename(d.path+".tmp", d.path)                      //nolint:errcheck
				time.Sleep(o.Phase / time.Duration(o.Reloads+1))
			}
		}()
		return nil
	}, nil); err != nil {
		return results, err
	}
	if err := run("rollback on", true, func() error { return d.call("POST", "/v1/rollback", `{"on":true}`) }, byPercent(0)); err != nil {
		return results, err
	}
	if err := run("rollback off", false, func() error { return d.call("POST", "/v1/rollback", `{"on":false}`) }, byPercent(2500)); err != nil {
		return results, err
	}
	for i, bp := range steps[3:] {
		if err := run(names[3+i], false, split(bp), byPercent(bp)); err != nil {
			return results, err
		}
	}
	if err := run("kill cloud", false, func() error { return cloud.Close() }, nil); err != nil {
		return results, err
	}
	if err := run("cloud back", false, func() error {
		c, err := standin.Start("cloud", cloudAddr, standin.Options{})
		cloud = c
		return err
	}, nil); err != nil {
		return results, err
	}
	stopLoad()
	wg.Wait()
	cloud.Close()
	return results, nil
}

func (d *drill) call(method, path, body string) error {
	req, err := http.NewRequest(method, d.admin+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, b)
	}
	return nil
}

// load sends requests on one keep-alive connection until ctx ends.
func (d *drill) load(ctx context.Context, id int) {
	c := &fasthttp.HostClient{Addr: d.gw, MaxConns: 1}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://gw/api/feed")
	key := make([]byte, 0, 16)
	for n := 0; ctx.Err() == nil; n++ {
		u := (id*7919 + n*104729) % d.o.Users
		key = fmt.Appendf(key[:0], "u-%d", u)
		req.Header.SetBytesV("X-User-Id", key)
		ps := d.phase.Load()
		sent := time.Now()
		sentAt := d.moves.stamp()
		err := c.DoTimeout(req, resp, 5*time.Second)
		arrivedAt := d.moves.stamp()
		ps.requests.Add(1)
		if err != nil || resp.StatusCode() != 200 {
			ps.failed.Add(1)
			continue
		}
		if len(resp.Header.Peek("X-Shift-Fallback")) > 0 {
			ps.fallbacks.Add(1)
		}
		region := string(resp.Header.Peek("X-Shift-Region"))
		if region == "cloud" {
			ps.cloud.Add(1)
		}
		// While a region is killed, its users are answered by the other region
		// (failover): that is not a decision moving them, so it is not judged.
		if !ps.failure && d.moves.answer(u, ps.epoch, sentAt, arrivedAt, region == "cloud") {
			ps.back.Add(1)
		}
		if changed := ps.changed.Load(); ps.expect != nil && changed != 0 && sent.UnixNano() > changed {
			if ps.expect(u) == region {
				ps.firstNew.CompareAndSwap(0, sent.UnixNano()-changed+1)
			} else {
				ps.stale.Add(1)
			}
		}
	}
}
