package loadtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Run drives load at o.URL until o.Duration passes, o.N requests have been sent, or
// ctx ends, and returns what it measured. It refuses a non-loopback target unless
// o.AllowRemote is set. When ctx ends first, Run returns the partial result together
// with ctx's error. Run may be called concurrently; runs share nothing.
func Run(ctx context.Context, o Options) (Result, error) {
	return run(ctx, o, systemLookup)
}

func run(ctx context.Context, o Options, lookup lookupFunc) (Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	t, err := parseTarget(ctx, o.URL, o.AllowRemote, lookup)
	if err != nil {
		return Result{}, err
	}
	hc := newClient(&o, t)
	defer hc.CloseIdleConnections()
	var td *tlsDialer
	if t.tls {
		if td, err = newTLSDialer(o.TLS, t, o.Timeout); err != nil {
			return Result{}, err
		}
		hc.Dial = td.dial
	}

	r := &runState{limit: o.N, done: make(chan struct{})}
	workers := make([]*worker, o.Conns)
	for i := range workers {
		workers[i] = newWorker(i, hc, &o, t, r)
	}
	if o.Rate > 0 {
		r.interval = float64(time.Second) / o.Rate
	}

	r.start = time.Now()
	r.measureFrom = r.start.Add(o.Warmup)
	// The measured part ends when its Duration has passed or when the workers are
	// done, whichever comes first; endMeasure says so once.
	measureEnded := make(chan struct{})
	var endOnce sync.Once
	endMeasure := func() { endOnce.Do(func() { close(measureEnded) }) }
	var marks sync.WaitGroup
	if o.OnMeasure != nil {
		// One goroutine makes both calls, so they come in order.
		marks.Go(func() { markMeasure(o, r, measureEnded) })
	}
	if o.Duration > 0 {
		r.hasEnd, r.end = true, r.measureFrom.Add(o.Duration)
		stopTimer := time.AfterFunc(o.Warmup+o.Duration, func() {
			endMeasure()
			r.halt()
		})
		defer stopTimer.Stop()
	}
	finished := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			r.halt()
		case <-finished:
		}
	}()
	var bg sync.WaitGroup
	if o.Progress != nil {
		bg.Go(func() { progressLoop(o.Progress, o.ProgressEvery, r.start, r.measureFrom, workers, finished) })
	}

	var wg sync.WaitGroup
	for _, w := range workers {
		if o.Rate > 0 {
			wg.Go(func() { w.openLoop(r) })
		} else {
			wg.Go(func() { w.closedLoop(r) })
		}
	}
	wg.Wait()
	elapsed := time.Since(r.measureFrom)
	endMeasure()
	// The end mark is made before Run closes the connections.
	marks.Wait()
	close(finished)
	bg.Wait()

	res := collect(&o, workers, elapsed)
	if td != nil {
		res.TLS, res.Handshakes = td.describe(), td.dials.Load()
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// markMeasure calls o.OnMeasure(true) when the warm-up is over and
// o.OnMeasure(false) when ended closes; it makes neither call when the run stops
// during the warm-up.
func markMeasure(o Options, r *runState, ended <-chan struct{}) {
	wait := time.NewTimer(time.Until(r.measureFrom))
	defer wait.Stop()
	select {
	case <-wait.C:
	case <-r.done:
		return
	case <-ended:
		return
	}
	o.OnMeasure(true)
	<-ended
	o.OnMeasure(false)
}

// newClient builds the one HostClient every worker shares: at most Conns keep-alive
// connections, no retries (a retried request would hide the error the run is there to
// count), and no idle reaping during a run.
func newClient(o *Options, t target) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                      t.dial,
		Name:                      "shiftgate-loadtest",
		MaxConns:                  o.Conns,
		MaxConnWaitTimeout:        o.Timeout,
		MaxIdemponentCallAttempts: 1,
		MaxIdleConnDuration:       time.Minute,
		ReadTimeout:               o.Timeout,
		WriteTimeout:              o.Timeout,
		Dial: func(addr string) (net.Conn, error) {
			return fasthttp.DialTimeout(addr, o.Timeout)
		},
	}
}

// runState is what all workers of one run share: the ticket counter, the stop signal
// and the schedule. The two words every request touches sit on their own cache lines.
type runState struct {
	issued atomic.Int64
	_      [56]byte
	stop   atomic.Bool
	_      [63]byte

	limit       int64     // N; 0 is no limit
	start       time.Time // ticket 0's intended send time
	measureFrom time.Time // start + Warmup: requests sent (intended) earlier are not recorded
	interval    float64   // open loop: nanoseconds between intended send times
	hasEnd      bool
	end         time.Time // the Duration bound

	done chan struct{} // closed by halt, wakes open-loop workers waiting for their time
	once sync.Once
}

func (r *runState) stopped() bool { return r.stop.Load() }

// halt stops the run: workers finish the request in hand and send no more.
func (r *runState) halt() {
	r.once.Do(func() {
		r.stop.Store(true)
		close(r.done)
	})
}

// takeTicket claims the right to send one more request under the count limit.
func (r *runState) takeTicket() bool {
	return r.limit <= 0 || r.issued.Add(1) <= r.limit
}

// takeOpenTicket claims the next intended send slot.
func (r *runState) takeOpenTicket() (int64, bool) {
	i := r.issued.Add(1) - 1
	return i, r.limit <= 0 || i < r.limit
}

// intended is ticket i's intended send time.
func (r *runState) intended(i int64) time.Time {
	return r.start.Add(time.Duration(float64(i) * r.interval))
}

// progressLoop writes one line per interval until finished closes.
func progressLoop(out io.Writer, every time.Duration, start, measureFrom time.Time, workers []*worker, finished <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	p := newProgress(start, measureFrom)
	for {
		select {
		case <-finished:
			return
		case now := <-tick.C:
			var c progressCounts
			for _, w := range workers {
				c.sent += w.sent.Load()
				c.failed += w.failed.Load()
				c.warm += w.warm.Load()
				c.warmFailed += w.warmFailed.Load()
			}
			io.WriteString(out, p.line(now, c))
		}
	}
}

// progressCounts are the workers' counters summed at one tick.
type progressCounts struct{ sent, failed, warm, warmFailed int64 }

// progress turns the counters at each tick into a line: the warm-up's counts while
// it lasts (marked so), then the measured part's, whose rate counts from its start.
type progress struct {
	start, measureFrom time.Time
	warming            bool
	last               int64
	lastAt             time.Time
}

func newProgress(start, measureFrom time.Time) *progress {
	return &progress{start: start, measureFrom: measureFrom, warming: measureFrom.After(start), lastAt: start}
}

func (p *progress) line(now time.Time, c progressCounts) string {
	if p.warming && now.Before(p.measureFrom) {
		return p.warmLine(now, c)
	}
	var first string
	if p.warming {
		// The first tick past the warm-up closes it with a line of its totals (the
		// only one when the warm-up is shorter than the interval).
		first = p.warmLine(p.measureFrom, c)
		p.warming, p.last, p.lastAt = false, 0, p.measureFrom
	}
	return first + fmt.Sprintf("%7.1fs  %10d requests  %9.0f req/s  %8d errors\n",
		now.Sub(p.start).Seconds(), c.sent, p.rate(now, c.sent), c.failed)
}

func (p *progress) warmLine(at time.Time, c progressCounts) string {
	return fmt.Sprintf("%7.1fs  %10d requests  %9.0f req/s  %8d errors  (warm-up, not measured)\n",
		at.Sub(p.start).Seconds(), c.warm, p.rate(at, c.warm), c.warmFailed)
}

// rate is the requests per second since the previous line; 0 at the instant the
// measured part starts.
func (p *progress) rate(now time.Time, n int64) float64 {
	r := 0.0
	if d := now.Sub(p.lastAt); d > 0 {
		r = float64(n-p.last) / d.Seconds()
	}
	p.last, p.lastAt = n, now
	return r
}
