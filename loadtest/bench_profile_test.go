package loadtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// stackSample is a profile sample: its stack, leaf first, and its values.
type stackSample struct {
	stack  []string
	values []int64
}

// writeProfile writes a profile of the given sample types whose samples are stacks
// (leaf first) with their values.
func writeProfile(t *testing.T, path string, types [][2]string, samples []stackSample) {
	t.Helper()
	p := &profile.Profile{}
	for _, st := range types {
		p.SampleType = append(p.SampleType, &profile.ValueType{Type: st[0], Unit: st[1]})
	}
	funcs := map[string]*profile.Function{}
	for _, s := range samples {
		var locs []*profile.Location
		for _, name := range s.stack {
			fn := funcs[name]
			if fn == nil {
				fn = &profile.Function{ID: uint64(len(funcs) + 1), Name: name}
				funcs[name] = fn
				p.Function = append(p.Function, fn)
			}
			loc := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: fn}}}
			p.Location = append(p.Location, loc)
			locs = append(locs, loc)
		}
		p.Sample = append(p.Sample, &profile.Sample{Location: locs, Value: s.values})
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
}

// TestSummarizeProfiles: the bench's summary line counts each CPU sample once per
// category its stack passes through, and sums the mutex profile's delays.
func TestSummarizeProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, mutex := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mutex.pprof")
	cpuTypes := [][2]string{{"samples", "count"}, {"cpu", "nanoseconds"}}
	writeProfile(t, cpu, cpuTypes, []stackSample{
		{[]string{"runtime.futex", "runtime.notewakeup", "runtime.startm", "runtime.injectglist", "runtime.findRunnable", "runtime.schedule"}, []int64{3, 30e6}},
		{[]string{"runtime.netpoll", "runtime.findRunnable", "runtime.schedule", "runtime.park_m"}, []int64{2, 20e6}},
		{[]string{"runtime.mallocgc", "proxy.(*Server).handle"}, []int64{1, 10e6}},
		{[]string{"runtime.gcDrain", "runtime.gcBgMarkWorker"}, []int64{1, 10e6}},
		{[]string{"syscall.RawSyscall6", "proxy.(*Server).handle"}, []int64{3, 30e6}},
	})
	writeProfile(t, mutex, [][2]string{{"contentions", "count"}, {"delay", "nanoseconds"}}, []stackSample{
		{[]string{"sync.(*Mutex).Unlock", "breaker.(*Breaker).Do"}, []int64{10, 1_500_000}},
		{[]string{"sync.(*Mutex).Unlock", "fasthttp.(*HostClient).releaseConn"}, []int64{2, 500_000}},
	})
	s, err := summarizeProfiles(cpu, mutex)
	if err != nil {
		t.Fatal(err)
	}
	want := profileSummary{Samples: 10, Scheduler: 50, Wakeups: 30, GC: 10, Alloc: 10, LockWait: 2 * time.Millisecond}
	if s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}
	if line := s.String(); !strings.Contains(line, "scheduler 50.0 %") || !strings.Contains(line, "lock waits 2.0 ms") {
		t.Errorf("summary line %q", line)
	}

	// Files swapped, or not a profile at all: an error that names the file.
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("<html>not found</html>"), 0o644)
	for _, tc := range []struct{ cpu, mutex, msg string }{
		{mutex, mutex, "not a CPU profile"},
		{cpu, cpu, "not a mutex profile"},
		{garbage, mutex, garbage},
		{filepath.Join(dir, "missing"), mutex, "missing"},
	} {
		if _, err := summarizeProfiles(tc.cpu, tc.mutex); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("summarizeProfiles(%s, %s) err = %v, want one saying %q", filepath.Base(tc.cpu), filepath.Base(tc.mutex), err, tc.msg)
		}
	}
}
