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

	"github.com/google/pprof/profile"
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
		if err := <-errs; err != nil {
			return err
		}
		sum, err := summarizeProfiles(base+".cpu.pprof", base+".mutex.pprof")
		if err != nil {
			return fmt.Errorf("bench: -profile: %w", err)
		}
		fmt.Fprintf(b.log, "bench: profiles of %s at %d conns: %s.{cpu,mutex,block}.pprof (%d s), %s.trace (1 s)\n"+
			"bench:   %s\n", t.name, conns, base, secs, base, sum)
		return nil
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

// profileSummary is what one run's profiles say about the CPU the proxy spent
// beyond its own work: shares of its CPU samples, in percent, and the time requests
// waited for locks.
type profileSummary struct {
	Samples int64
	// Scheduler: under runtime.schedule (finding the next goroutine, the netpoller).
	Scheduler float64
	// Wakeups: in runtime.futex, threads waking threads and going back to sleep
	// (the hand-offs between processors).
	Wakeups float64
	// GC: the collector's workers and the assists requests pay.
	GC float64
	// Alloc: under runtime.mallocgc.
	Alloc float64
	// LockWait: the mutex profile's total delay (0 without contention).
	LockWait time.Duration
}

// summarizeProfiles reads a run's CPU and mutex profiles.
func summarizeProfiles(cpuFile, mutexFile string) (profileSummary, error) {
	var s profileSummary
	cpu, err := readProfile(cpuFile)
	if err != nil {
		return s, err
	}
	count := sampleIndex(cpu, "samples")
	if count < 0 {
		return s, fmt.Errorf("%s: no samples column: not a CPU profile", cpuFile)
	}
	var sched, wake, gc, alloc int64
	for _, smp := range cpu.Sample {
		n := smp.Value[count]
		s.Samples += n
		var inSched, inWake, inGC, inAlloc bool
		for _, loc := range smp.Location {
			for _, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				switch line.Function.Name {
				case "runtime.schedule":
					inSched = true
				case "runtime.futex":
					inWake = true
				case "runtime.gcBgMarkWorker", "runtime.gcAssistAlloc":
					inGC = true
				case "runtime.mallocgc":
					inAlloc = true
				}
			}
		}
		for _, c := range []struct {
			in  bool
			sum *int64
		}{{inSched, &sched}, {inWake, &wake}, {inGC, &gc}, {inAlloc, &alloc}} {
			if c.in {
				*c.sum += n
			}
		}
	}
	if s.Samples > 0 {
		pct := func(n int64) float64 { return 100 * float64(n) / float64(s.Samples) }
		s.Scheduler, s.Wakeups, s.GC, s.Alloc = pct(sched), pct(wake), pct(gc), pct(alloc)
	}
	mu, err := readProfile(mutexFile)
	if err != nil {
		return s, err
	}
	delay := sampleIndex(mu, "delay")
	if delay < 0 {
		return s, fmt.Errorf("%s: no delay column: not a mutex profile", mutexFile)
	}
	for _, smp := range mu.Sample {
		s.LockWait += time.Duration(smp.Value[delay])
	}
	return s, nil
}

func readProfile(file string) (*profile.Profile, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

// sampleIndex is the index of the sample column of that type, or -1.
func sampleIndex(p *profile.Profile, typ string) int {
	for i, st := range p.SampleType {
		if st.Type == typ {
			return i
		}
	}
	return -1
}

func (s profileSummary) String() string {
	return fmt.Sprintf("scheduler %.1f %%, thread wake-ups (futex) %.1f %%, GC %.1f %%, allocation %.1f %% of %d CPU samples; lock waits %.1f ms",
		s.Scheduler, s.Wakeups, s.GC, s.Alloc, s.Samples, float64(s.LockWait)/1e6)
}
