package proxy

import (
	"net"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Memory that many client connections held (their buffers, request contexts and the
// stacks of their goroutines) goes back to the heap when they close, but the Go
// runtime returns it to the system slowly, and only after collections that an idle
// gateway does not trigger: after a burst of 10,000 keep-alive clients the process
// stayed at its peak long after they left. releaseLoop gives it back once the open
// connections have fallen to half of a large peak.
//
// The peak is recorded at accept (peakListener), not only when the loop looks: a
// burst that opens and closes between two looks grows the heap as much as one that
// stays, and the loop would otherwise never see it.

// releaseMinPeak is the smallest peak of open connections worth a release: below it
// the memory at stake is a few megabytes.
const releaseMinPeak = 1000

// releaseCheck is how often the open connections are counted.
const releaseCheck = 10 * time.Second

// releaser is the release loop's set-up; tests replace its clock and watch it.
type releaser struct {
	// peak is the most client connections open at once since the loop last looked.
	peak    atomic.Int64
	tick    <-chan time.Time // nil: every releaseCheck
	minPeak int              // 0: releaseMinPeak
	// checked, when set, is told of each look: the open connections, the peak
	// recorded since the last look, and whether memory was released.
	checked func(open, peak int, released bool)
}

// connTide tracks the peak of open connections since the last release. It is used by
// one goroutine.
type connTide struct {
	peak    int
	minPeak int
}

// shouldRelease reports whether open connections have fallen to half of a peak of at
// least minPeak; peak is the most that were open since the last call. After a release
// the peak restarts from open.
func (t *connTide) shouldRelease(peak, open int) bool {
	t.peak = max(t.peak, peak, open)
	if t.peak >= t.minPeak && open <= t.peak/2 {
		t.peak = open
		return true
	}
	return false
}

// peakListener records the open client connections at each accept.
type peakListener struct {
	net.Listener
	s *Server
}

func (l peakListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.notePeak()
	}
	return c, err
}

// notePeak raises the recorded peak to the open connections, counting one just
// accepted (fasthttp counts it once Accept has returned).
func (s *Server) notePeak() {
	open := int64(s.http.GetOpenConnectionsCount()) + 1
	for {
		p := s.release.peak.Load()
		if open <= p || s.release.peak.CompareAndSwap(p, open) {
			return
		}
	}
}

func (s *Server) releaseLoop() {
	tick := s.release.tick
	if tick == nil {
		t := time.NewTicker(releaseCheck)
		defer t.Stop()
		tick = t.C
	}
	tide := connTide{minPeak: s.release.minPeak}
	if tide.minPeak == 0 {
		tide.minPeak = releaseMinPeak
	}
	for {
		select {
		case <-s.closed:
			return
		case <-tick:
		}
		open := int(s.http.GetOpenConnectionsCount())
		peak := int(s.release.peak.Swap(0))
		released := tide.shouldRelease(peak, open)
		if released {
			s.log.Info("client connections fell from their peak: returning their memory to the system", "open", open)
			// The first collection moves pooled buffers to the pools' victim caches,
			// the one inside FreeOSMemory frees them and returns the pages.
			runtime.GC()
			debug.FreeOSMemory()
		}
		if s.release.checked != nil {
			s.release.checked(open, peak, released)
		}
	}
}
