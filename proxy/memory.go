package proxy

import (
	"runtime"
	"runtime/debug"
	"time"
)

// Memory that many client connections held (their buffers, request contexts and the
// stacks of their goroutines) goes back to the heap when they close, but the Go
// runtime returns it to the system slowly, and only after collections that an idle
// gateway does not trigger: after a burst of 10,000 keep-alive clients the process
// stayed at its peak long after they left. releaseLoop gives it back once the open
// connections have fallen to half of a large peak.

// releaseMinPeak is the smallest peak of open connections worth a release: below it
// the memory at stake is a few megabytes.
const releaseMinPeak = 1000

// releaseCheck is how often the open connections are counted.
const releaseCheck = 10 * time.Second

// connTide tracks the peak of open connections since the last release. It is used by
// one goroutine.
type connTide struct{ peak int }

// shouldRelease reports whether open connections have fallen to half of a peak of
// at least releaseMinPeak; the peak then restarts from open.
func (t *connTide) shouldRelease(open int) bool {
	if open > t.peak {
		t.peak = open
		return false
	}
	if t.peak >= releaseMinPeak && open <= t.peak/2 {
		t.peak = open
		return true
	}
	return false
}

func (s *Server) releaseLoop() {
	tick := time.NewTicker(releaseCheck)
	defer tick.Stop()
	var tide connTide
	for {
		select {
		case <-s.closed:
			return
		case <-tick.C:
		}
		if open := int(s.http.GetOpenConnectionsCount()); tide.shouldRelease(open) {
			s.log.Info("client connections fell from their peak: returning their memory to the system", "open", open)
			// The first collection moves pooled buffers to the pools' victim caches,
			// the one inside FreeOSMemory frees them and returns the pages.
			runtime.GC()
			debug.FreeOSMemory()
		}
	}
}
