//go:build !race

// The race detector allocates on its own; allocation counts are checked without it.

package loadtest

import (
	"testing"
	"time"
)

// TestRequestPathAllocs: once a worker is warm (connection open, buffers
// grown, region seen), a request — user id, send, record — allocates nothing.
func TestRequestPathAllocs(t *testing.T) {
	for _, users := range []int{0, 1000} {
		w, done := warmWorker(t, users)
		allocs := testing.AllocsPerRun(500, func() {
			w.prepare()
			w.send(time.Now())
		})
		done()
		if allocs != 0 {
			t.Errorf("users=%d: %v allocations per request, want 0", users, allocs)
		}
		if w.failed.Load() != 0 || w.regions["idc"] == nil {
			t.Errorf("users=%d: failed %d, regions %v", users, w.failed.Load(), w.regions)
		}
	}
}

func TestOpenLoopWaitAllocs(t *testing.T) {
	w := &worker{}
	done := make(chan struct{})
	w.wait(time.Microsecond, done) // the timer is made once
	if allocs := testing.AllocsPerRun(100, func() { w.wait(time.Microsecond, done) }); allocs != 0 {
		t.Errorf("wait: %v allocations, want 0", allocs)
	}
}
