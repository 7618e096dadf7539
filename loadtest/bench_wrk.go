package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkScript makes wrk print one machine-readable line at its end and, with users,
// send X-User-Id: u-<n> over n ids as the own generator does. Without users it sends
// plain requests and runs no Lua per request, as a bare wrk run would.
const wrkScript = `local users = %d
local i = 0
if users > 0 then
  request = function()
    i = i + 1
    return wrk.format(nil, nil, {["X-User-Id"] = "u-" .. (i %% users)})
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SHIFTGATE-BENCH %%d %%d %%d %%d %%d %%d %%d\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    summary.duration, latency:percentile(50), latency:percentile(99), latency.mean))
end
`

// loadWrk runs Debian's wrk as the load generator (one thread, pinned to the load
// core like the own generator), so that the bench's figures can be checked against a
// generator that is not shiftgate's. wrk has no warm-up of its own: a first run is
// the warm-up, on its own connections, and the counters are read around the second.
func (b *bench) loadWrk(ctx context.Context, t benchTarget, conns int) (Result, window, error) {
	if b.o.warmup > 0 {
		if _, _, err := b.runWrk(ctx, t.url, conns, b.o.warmup); err != nil {
			return Result{}, window{}, err
		}
	}
	var win window
	var err error
	if win.before, err = b.readCounters(t); err != nil {
		return Result{}, window{}, err
	}
	win.profiled = b.startProfiles(ctx, t, conns)
	res, cpu, err := b.runWrk(ctx, t.url, conns, b.o.duration)
	if err != nil {
		return Result{}, win, err
	}
	if win.after, err = b.readCounters(t); err != nil {
		return Result{}, window{}, err
	}
	win.loadCPU = cpu
	return res, win, nil
}

// runWrk runs wrk once for d and returns its result and CPU time.
func (b *bench) runWrk(ctx context.Context, url string, conns int, d time.Duration) (Result, time.Duration, error) {
	script := filepath.Join(b.dir, "wrk.lua")
	if _, err := os.Stat(script); err != nil {
		if err := os.WriteFile(script, []byte(fmt.Sprintf(wrkScript, b.o.users)), 0o644); err != nil {
			return Result{}, 0, err
		}
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	argv := pinned(b.o.loadCPU, "wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s",
		"--timeout", "5s", "-s", script, url)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return Result{}, 0, fmt.Errorf("bench: wrk: %w: %s", err, strings.TrimSpace(errOut.String()))
	}
	res, err := parseWrk(out.Bytes())
	if err != nil {
		return Result{}, 0, fmt.Errorf("bench: wrk output: %w:\n%s", err, out.String())
	}
	res.URL, res.Conns, res.Mode = url, conns, ModeClosed
	return res, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// parseWrk reads the line wrkScript's done() prints: requests, socket errors, non-2xx
// answers, duration, p50, p99 and mean latency (durations in microseconds).
func parseWrk(out []byte) (Result, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 8 || f[0] != "SHIFTGATE-BENCH" {
			continue
		}
		var n [7]int64
		for i := range n {
			v, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return Result{}, fmt.Errorf("field %d: %w", i+1, err)
			}
			n[i] = v
		}
		us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
		res := Result{Requests: n[0], Errors: n[1] + n[2], Elapsed: us(n[3]), ErrorKinds: map[string]int64{}}
		res.Successes = res.Requests - n[2]
		if n[1] > 0 {
			res.ErrorKinds["socket"] = n[1]
		}
		if n[2] > 0 {
			res.ErrorKinds["status_other"] = n[2]
		}
		if res.Elapsed > 0 {
			res.RPS = float64(res.Requests) / res.Elapsed.Seconds()
		}
		res.Latency = Latency{P50: us(n[4]), P99: us(n[5]), Mean: us(n[6])}
		return res, nil
	}
	return Result{}, fmt.Errorf("no SHIFTGATE-BENCH line")
}
