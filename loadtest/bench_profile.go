package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// With -profile DIR the bench records, during the measured part of every shiftgate
// run, what its admin listener offers for finding where the CPU goes: a CPU profile,
// the lock contention (mutex) and blocking (block) of the same seconds, and a runtime
// trace (scheduling, processors, GC) of the first second. Each file is named after
// the target, the connection count and the run. Profiling costs the proxy CPU, so
// the figures of a profiled bench are not comparable with an unprofiled one: read
// the profiles from it and take the ratios from a run without -profile.

// benchProfiles are the profiles recorded per run: the admin path and the file suffix.
var benchProfiles = []struct{ path, suffix string }{
	{"/debug/pprof/profile", "cpu.pprof"},
	{"/debug/pprof/mutex", "mutex.pprof"},
	{"/debug/pprof/block", "block.pprof"},
	{"/debug/pprof/trace", "trace"},
}

// profileSeconds is how long each profile of a run records: the measured duration less
// a second, so that every profile ends inside the measured part (pprof takes whole
// seconds). The trace takes one second: it grows by megabytes a second at this load.
func profileSeconds(d time.Duration) int { return int(d.Seconds()) - 1 }

// startProfiles begins recording t's profiles for the measured part that starts now;
// the returned function waits for them and reports the first failure. Targets
// without an admin listener (nginx, HAProxy, the floors) are not profiled.
func (b *bench) startProfiles(ctx context.Context, t benchTarget, conns int) func() error {
	if b.o.profile == "" || t.admin == "" {
		return func() error { return nil }
	}
	b.profileRuns++
	base := filepath.Join(b.o.profile, fmt.Sprintf("%s-%dc-run%d", t.name, conns, b.profileRuns))
	secs := profileSeconds(b.o.duration)
	errs := make(chan error, len(benchProfiles))
	var wg sync.WaitGroup
	for _, p := range benchProfiles {
		d := secs
		if p.suffix == "trace" {
			d = 1
		}
		url := fmt.Sprintf("http://%s%s?seconds=%d", t.admin, p.path, d)
		file := base + "." + p.suffix
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fetchProfile(ctx, url, file, time.Duration(d+30)*time.Second); err != nil {
				errs <- fmt.Errorf("bench: -profile: %s: %w", t.name, err)
			}
		}()
	}
	return func() error {
		wg.Wait()
		close(errs)
		err := <-errs
		if err == nil {
			fmt.Fprintf(b.log, "bench: profiles of %s at %d conns: %s.{cpu,mutex,block}.pprof (%d s), %s.trace (1 s)\n",
				t.name, conns, base, secs, base)
		}
		return err
	}
}

// fetchProfile writes the answer of url to file; anything but 200 is an error.
func fetchProfile(ctx context.Context, url, file string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// checkProfileDir makes the -profile directory and checks that profiles fit the runs.
func checkProfileDir(dir string, d time.Duration) error {
	if profileSeconds(d) < 1 {
		return fmt.Errorf("-profile: -duration %s is too short: profiles take whole seconds and need at least 2s", d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("-profile: %w", err)
	}
	return nil
}
