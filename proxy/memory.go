package proxy

import (
	"net"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/wire"
)

// Memory that many client connections held (their buffers, request contexts and the
// stacks of their goroutines) goes back to the heap when they close, but the Go
// runtime returns it to the system slowly, and only after collections that an idle
// gateway does not trigger: after a burst of 10,000 keep-alive clients the process
// stayed at its peak long after they left. releaseLoop gives it back once the served
// connections have fallen to half of a large peak: because they closed, or because
// they parked (an idle keep-alive connection that is parked, see newParking, leaves
// its goroutine, buffers and context behind as a closed one does).
//
// The peak is recorded at accept (peakListener), not only when the loop looks: a
// burst that opens and closes between two looks grows the heap as much as one that
// stays, and the loop would otherwise never see it.

// newParking sets up the parking of idle client connections: after
// timeouts.park_idle (or wait, when tests set it), an idle keep-alive client
// connection gives back its fasthttp goroutine (8 KiB of stack), read buffer and
// request context (wire.Parking): 17 KiB of RSS per idle client before; after
// parkDetach parked its socket is detached from its net.Conn too (a plain one: a TLS
// connection keeps its net.Conn, which holds the session). While more than
// parkCrowd connections are served, idle ones park after parkSoon. Served and parked
// connections are capped together at maxConns. Parking needs a read deadline on
// request heads; without one, or with park_idle off, it is off (nil).
func (s *Server) newParking(c *conf.Config, wait time.Duration, maxConns int) *wire.Parking {
	if c.Timeouts.RequestHead.D <= 0 || c.Timeouts.ParkIdle.Off && wait == 0 {
		return nil
	}
	detach := parkDetach
	if wait == 0 {
		wait = c.Timeouts.ParkIdle.D
	} else {
		detach = wait // tests: every parked connection goes through both stages
	}
	return &wire.Parking{
		After:    wait,
		Soon:     min(wait, parkSoon),
		Crowd:    parkCrowd,
		Detach:   detach,
		Serve:    func(c net.Conn) error { return s.http.ServeConn(c) },
		MaxConns: maxConns,
	}
}

// parkDetach is how long a connection stays parked as a net.Conn (about 1.2 KiB of
// heap; a park and wake-up cost 6 µs more CPU than a read waiting in Go's poller)
// before its socket is detached (under 300 bytes; 21 µs more, net.FileConn's system
// calls). A client idle for more than park_idle + 10 s pays that once per request, a
// small share of its idle time.
const parkDetach = 10 * time.Second

// parkCrowd and parkSoon: while more than parkCrowd client connections of a listener
// are served (about 80 KiB each, with fasthttp's 64 KiB read buffer), an idle one
// parks after parkSoon instead of park_idle, and while more than parkCrowd hold a
// net.Conn (served or parked) one that parks is detached at once. Go keeps a
// goroutine's descriptor (480 bytes) and a socket's poll descriptor (535 bytes) for
// good once it has had that many at the same moment, and the heap's bookkeeping for
// its peak: a burst of 10,000 clients that each send one request and wait left
// 2.1 KiB of RSS per idle client without the first rule (every parked socket
// detached at once), 1.17 KiB with the first alone (detached after 10 s), 0.72 KiB
// with both (loadtest/bench/idle.sh 10000, one run each). The price, past
// 1,000 connections only: a request that comes more than 100 ms after the previous
// one on its connection pays a park and wake-up, 6 µs of CPU, or 21 µs detached.
// Below parkCrowd nothing changes; the bench's 64 or 256 busy connections never park.
const (
	parkCrowd = 1000
	parkSoon  = 100 * time.Millisecond
)

// workerIdle is how long a fasthttp worker goroutine that served a connection waits
// for another before it ends (fasthttp's default, 10 s, kept the 8 KiB stacks of
// parked connections' former workers that long).
const workerIdle = time.Second

// releaseMinPeak is the smallest peak of served connections worth a release: below it
// the memory at stake is a few megabytes.
const releaseMinPeak = 1000

// releaseCheck is how often the served connections are counted.
const releaseCheck = 10 * time.Second

// releaser is the release loop's set-up; tests replace its clock and watch it.
type releaser struct {
	// peak is the most client connections served at once since the loop last looked.
	peak atomic.Int64
	// openPeak is the same for served and parked connections together.
	openPeak atomic.Int64
	tick     <-chan time.Time // nil: every releaseCheck
	minPeak  int              // 0: releaseMinPeak
	// checked, when set, is told of each look: the served connections, the peak
	// recorded since the last look, and whether memory was released.
	checked func(open, peak int, released bool)
}

// connTide tracks the peak of served connections since the last release. It is used by
// one goroutine.
type connTide struct {
	peak    int
	minPeak int
}

// shouldRelease reports whether served connections have fallen to half of a peak of at
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

// peakListener records the served client connections at each accept.
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

// notePeak raises the recorded peaks to the served and to all open connections,
// counting one just accepted (fasthttp counts it once Accept has returned).
func (s *Server) notePeak() {
	served := int64(s.http.GetOpenConnectionsCount()) + 1
	raise(&s.release.peak, served)
	raise(&s.release.openPeak, served+int64(s.parked()))
}

func raise(peak *atomic.Int64, v int64) {
	for {
		p := peak.Load()
		if v <= p || peak.CompareAndSwap(p, v) {
			return
		}
	}
}

// parked counts the parked client connections.
func (s *Server) parked() int {
	if s.parking == nil {
		return 0
	}
	return s.parking.Parked()
}

func (s *Server) releaseLoop() {
	tick := s.release.tick
	if tick == nil {
		t := time.NewTicker(releaseCheck)
		defer t.Stop()
		tick = t.C
	}
	minPeak := s.release.minPeak
	if minPeak == 0 {
		minPeak = releaseMinPeak
	}
	// Served connections cost their goroutine and buffers, parked ones little: a
	// release follows the served ones' fall (closed or parked) and all open ones'
	// (parked ones closed too).
	served, open := connTide{minPeak: minPeak}, connTide{minPeak: minPeak}
	again := false
	for {
		select {
		case <-s.closed:
			return
		case <-tick:
		}
		n := int(s.http.GetOpenConnectionsCount())
		peak := int(s.release.peak.Swap(0))
		openPeak := int(s.release.openPeak.Swap(0))
		// Both tides look at every tick, so that each keeps its peak.
		r1 := served.shouldRelease(peak, n)
		r2 := open.shouldRelease(openPeak, n+s.parked())
		// A release is followed by another one look later: the goroutines that
		// served the connections wait in fasthttp's worker pool for up to
		// workerIdle before they end and leave their stacks behind.
		released := r1 || r2 || again
		again = (r1 || r2) && !again
		if released {
			s.log.Info("client connections fell from their peak (closed or parked): returning their memory to the system", "served", n, "parked", s.parked())
			// The first collection moves pooled buffers to the pools' victim caches,
			// the one inside FreeOSMemory frees them and returns the pages.
			runtime.GC()
			debug.FreeOSMemory()
		}
		if s.release.checked != nil {
			s.release.checked(n, peak, released)
		}
	}
}
