package stats

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock is a coarse clock for the request path: Now is one atomic load, where
// time.Now reads the system clock. It is updated by a ticker, so it lags real time by
// up to its resolution; per-second history needs no better. Safe for concurrent use.
type Clock struct {
	ns   atomic.Int64
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewClock starts a clock updated every resolution (100 ms when ≤ 0). Stop it when
// done with it.
func NewClock(resolution time.Duration) *Clock {
	if resolution <= 0 {
		resolution = 100 * time.Millisecond
	}
	c := &Clock{stop: make(chan struct{}), done: make(chan struct{})}
	c.ns.Store(time.Now().UnixNano())
	go c.run(resolution)
	return c
}

func (c *Clock) run(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			c.ns.Store(now.UnixNano())
		case <-c.stop:
			return
		}
	}
}

// Now returns the time of the last tick. It does not allocate.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Stop stops the ticker and waits for its goroutine to end; Now keeps returning the
// last tick. Stop may be called more than once.
func (c *Clock) Stop() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}
