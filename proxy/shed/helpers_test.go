package shed

import (
	"math"
	"sync/atomic"
	"testing"
	"time"
)

// clock is an injected clock that only moves when a test moves it.
type clock struct{ ns atomic.Int64 }

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newClock() *clock {
	c := new(clock)
	c.ns.Store(epoch.UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// offer plays an open-loop load: rps requests per second, evenly spaced, for d from the
// clock's time, cycling through routes. The clock ends at the end of d. It returns, per
// route index, what was offered and what was admitted, and admitted per whole second.
func offer(g *Gate, c *clock, rps float64, d time.Duration, routes ...int) (offered, admitted map[int]int, perSec []int) {
	offered, admitted = map[int]int{}, map[int]int{}
	perSec = make([]int, int(math.Ceil(d.Seconds())))
	start := c.now()
	n := int(rps * d.Seconds())
	for i := range n {
		at := start.Add(time.Duration(float64(i) / rps * float64(time.Second)))
		c.set(at)
		r := routes[i%len(routes)]
		offered[r]++
		if v := g.Admit(r, at); v.OK() {
			admitted[r]++
			perSec[int(at.Sub(start)/time.Second)]++
		} else if v.RetryAfter < 1 {
			panic("a refusal without Retry-After")
		}
	}
	c.set(start.Add(d))
	return offered, admitted, perSec
}

func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol*want {
		t.Errorf("%s = %.1f, want %.1f ± %.0f%%", what, got, want, tol*100)
	}
}
