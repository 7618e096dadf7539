//go:build !race

// The race detector allocates on its own; allocation counts are checked without it.

package loadtest

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestRequestPathAllocs: once a worker is warm (connection open, buffers
// grown, region seen), a request — user id, send, record — allocates nothing.
func TestRequestPathAllocs(t *testing.T) {
	calibrateSmallBodies()
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

// calibrateSmallBodies sets fasthttp's process-wide response body pool to small
// bodies, as other clients in the same process can (the pool recalibrates after
// 42,000 returns and from then on drops buffers larger than most were). The standin's
// 512-byte answers are then above its limit: a worker that gave its buffer back after
// each answer would allocate a new one for the next.
func calibrateSmallBodies() {
	var r fasthttp.Response
	for range 50_000 {
		r.SetBodyString("ok")
		r.ResetBody()
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
