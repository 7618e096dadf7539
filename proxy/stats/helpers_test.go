package stats

import (
	"sync/atomic"
	"testing"
	"time"
)

// t0 is a whole second, far from 1970, and a multiple of 10 for easy block maths.
var t0 = time.Unix(1_700_000_000, 0)

// fakeClock is an injected clock the tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time         { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(t time.Time)        { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) Add(d time.Duration)    { c.ns.Add(int64(d)) }
func (c *fakeClock) Sec() int64             { return c.Now().Unix() }
func (c *fakeClock) At(sec int64) time.Time { return time.Unix(sec, 0) }

// twoRegions is a one-route config: "api" moves from "old" to "new".
var twoRegions = Config{
	Self:    "old",
	Regions: []string{"old", "new"},
	Routes:  []RouteInfo{{Name: "api", From: "old", To: "new"}},
}

const (
	regOld = 0
	regNew = 1
)

func newTestSet(t testing.TB, clk *fakeClock, o Options) *Set {
	t.Helper()
	o.Now = clk.Now
	if o.TopSample == 0 {
		o.TopSample = 1
	}
	s, err := NewRegistry(o).Bind(twoRegions)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
