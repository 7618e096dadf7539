package loadtest

import (
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// Histogram geometry: microseconds from 1 µs to one hour at 3 significant digits.
// An hour is far beyond any timeout, but open-loop latency counts from the intended
// send time, so a run that falls behind its schedule can see latencies as long as the
// run itself; values above the top are clamped to it rather than lost.
const (
	histLowest  = 1
	histHighest = int64(time.Hour / time.Microsecond)
	histDigits  = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

// maxRegions bounds the distinct region names a worker counts, so a server that sends
// a new value every time cannot grow the maps without bound.
const maxRegions = 32

// Region keys for answers without a region header and for names past maxRegions.
const (
	RegionNone  = "(none)"
	RegionOther = "(other)"
)

// worker is one connection's goroutine and everything it touches per request. Only
// that goroutine writes its fields; the counters are atomics because the progress
// line reads them while the run lasts, everything else is read after the run ends.
type worker struct {
	hc   *fasthttp.HostClient
	run  *runState
	req  fasthttp.Request
	resp fasthttp.Response
	hist *hdrhistogram.Histogram
	rng  *rand.Rand

	users        int
	userName     []byte
	userBuf      []byte // prefix, then the digits of the current user
	prefixLen    int
	regionHeader string

	kinds   [numKinds]int64
	regions map[string]*int64 // pointers, so counting an existing key is a lookup only
	timer   *time.Timer       // open loop: reused for every wait

	sent   atomic.Int64 // requests finished, with or without an answer
	failed atomic.Int64 // of which not 2xx
	// warm and warmFailed count the warm-up's requests, which are not recorded.
	warm, warmFailed atomic.Int64
	_                [64]byte // keep the next worker's atomics off this cache line
}

func newWorker(id int, hc *fasthttp.HostClient, o *Options, t target, r *runState) *worker {
	w := &worker{
		hc:           hc,
		run:          r,
		hist:         newHistogram(),
		rng:          rand.New(rand.NewPCG(o.Seed, uint64(id))),
		users:        o.Users,
		userName:     []byte(o.UserHeader),
		userBuf:      append(make([]byte, 0, len(o.UserPrefix)+20), o.UserPrefix...),
		prefixLen:    len(o.UserPrefix),
		regionHeader: o.RegionHeader,
		regions:      make(map[string]*int64, 4),
	}
	w.req.Header.SetMethod(o.Method)
	w.req.SetRequestURI(t.uri)
	w.req.Header.SetHost(t.host)
	for _, h := range o.Headers {
		w.req.Header.Add(h.Name, h.Value)
	}
	if o.Body != nil {
		w.req.SetBody(o.Body)
	}
	if o.NewConns {
		w.req.SetConnectionClose()
	}
	// The worker owns its response for the whole run: its body buffer stays with it.
	// Otherwise every answer takes a buffer from fasthttp's process-wide pool and
	// gives it back, and that pool drops buffers above the size most Puts had when it
	// last calibrated: after a run of smaller bodies in the same process, every
	// answer allocated again (3 allocations per request, TestRequestPathAllocs).
	w.resp.KeepBodyBuffer = true
	return w
}

// prepare sets the per-request part of the request: the user id.
func (w *worker) prepare() {
	if w.users <= 0 {
		return
	}
	n := w.rng.IntN(w.users)
	w.userBuf = strconv.AppendInt(w.userBuf[:w.prefixLen], int64(n), 10)
	w.req.Header.SetBytesKV(w.userName, w.userBuf)
}

// send does one request and records it, with latency counted from since: the actual
// send time in the closed loop, the intended one in the open loop. A request of the
// warm-up (since before the measured part) is sent and not recorded.
func (w *worker) send(since time.Time) {
	err := w.hc.Do(&w.req, &w.resp)
	if since.Before(w.run.measureFrom) {
		if err != nil {
			w.warmFailed.Add(1)
		} else if _, ok := classifyStatus(w.resp.StatusCode()); !ok {
			w.warmFailed.Add(1)
		}
		w.warm.Add(1)
		return
	}
	if err != nil {
		w.kinds[classifyErr(err)]++
		w.failed.Add(1)
		w.sent.Add(1)
		return
	}
	us := time.Since(since).Microseconds()
	if us < histLowest {
		us = histLowest
	} else if us > histHighest {
		us = histHighest
	}
	_ = w.hist.RecordValue(us) // cannot fail: us is clamped to the range
	w.countRegion(w.resp.Header.Peek(w.regionHeader))
	if k, ok := classifyStatus(w.resp.StatusCode()); !ok {
		w.kinds[k]++
		w.failed.Add(1)
	}
	w.sent.Add(1)
}

func (w *worker) countRegion(v []byte) {
	var p *int64
	if len(v) == 0 {
		p = w.regions[RegionNone]
	} else {
		p = w.regions[string(v)] // a lookup by string(bytes) does not allocate
	}
	if p != nil {
		*p++
		return
	}
	w.addRegion(v)
}

// addRegion is countRegion's slow path: the first answer from a region.
func (w *worker) addRegion(v []byte) {
	key := string(v)
	switch {
	case len(v) == 0:
		key = RegionNone
	case len(w.regions) >= maxRegions:
		key = RegionOther
	}
	if p := w.regions[key]; p != nil {
		*p++
		return
	}
	n := int64(1)
	w.regions[key] = &n
}

// closedLoop sends request after request until the run stops.
func (w *worker) closedLoop(r *runState) {
	for !r.stopped() {
		if !r.takeTicket() {
			return
		}
		w.prepare()
		w.send(time.Now())
	}
}

// openLoop takes the next intended send time, waits for it unless it has passed
// already (the run is behind: send at once, and the wait counts as latency), and sends.
func (w *worker) openLoop(r *runState) {
	for !r.stopped() {
		i, ok := r.takeOpenTicket()
		if !ok {
			return
		}
		at := r.intended(i)
		if r.hasEnd && !at.Before(r.end) {
			// The schedule is over, but the run lasts its Duration, so that Elapsed
			// and the rate derived from it cover the whole schedule.
			if d := time.Until(r.end); d > 0 {
				w.wait(d, r.done)
			}
			return
		}
		if d := time.Until(at); d > 0 && !w.wait(d, r.done) {
			return
		}
		w.prepare()
		w.send(at)
	}
}

// wait sleeps for d or until done closes; it reports whether the full d passed.
func (w *worker) wait(d time.Duration, done <-chan struct{}) bool {
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d) // Go ≥ 1.23: no stale value can be pending after Reset
	}
	select {
	case <-w.timer.C:
		return true
	case <-done:
		w.timer.Stop()
		return false
	}
}
