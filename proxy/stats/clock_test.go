package stats

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestClockTicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		c := NewClock(100 * time.Millisecond)
		if !c.Now().Equal(start) {
			t.Fatalf("a new clock reads %v, want %v", c.Now(), start)
		}
		time.Sleep(250 * time.Millisecond)
		synctest.Wait()
		if got := c.Now().Sub(start); got != 200*time.Millisecond {
			t.Fatalf("after 250ms the clock moved %v, want two ticks", got)
		}
		c.Stop()
		c.Stop() // twice is fine
		time.Sleep(time.Second)
		if got := c.Now().Sub(start); got != 200*time.Millisecond {
			t.Fatalf("a stopped clock moved to %v", got)
		}
	})
}

func TestClockNowDoesNotAllocate(t *testing.T) {
	c := NewClock(0)
	defer c.Stop()
	if a := testing.AllocsPerRun(100, func() { _ = c.Now().Unix() }); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}
