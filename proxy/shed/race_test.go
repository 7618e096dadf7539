package shed

import (
	"sync"
	"testing"
	"time"
)

// TestConcurrentUse runs requests, byte counts, share changes and reloads at once.
// Under -race it checks the synchronisation; in any mode, that every request was either
// admitted or counted as refused.
func TestConcurrentUse(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	l := benchLimits(2000, 500, 1e6)
	var cur sync.Map // "g" → *Gate: stands in for the proxy's atomic snapshot
	cur.Store("g", reg.Gate(l))
	gate := func() *Gate { g, _ := cur.Load("g"); return g.(*Gate) }

	const workers, perWorker = 4, 5000
	var wg sync.WaitGroup
	admitted := make([][2]int, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				c.advance(50 * time.Microsecond)
				g, now, route := gate(), c.now(), i%2
				if g.Admit(route, now).OK() {
					admitted[w][route]++
				}
				if g.AdmitCross(route, idc, cloud, i%3 == 0, i%5 == 0, now).Action == Forward {
					g.Bytes(idc, cloud, 700, now)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			reg.SetShare(FleetShare(1 + i%3))
			reg.SetBudgetShare(FleetShare(1 + i%2))
			l.SiteRPS = float64(1000 + 100*(i%5))
			l.SiteRamp = time.Duration(i%2) * time.Second
			cur.Store("g", reg.Gate(l))
		}
	}()
	wg.Wait()

	st := gate().Stats()
	for route := range 2 {
		n := 0
		for w := range workers {
			n += admitted[w][route]
		}
		r := st.Routes[route].Refused
		if got := n + int(r.Site+r.Route); got != workers*perWorker/2 {
			t.Errorf("route %d: admitted %d + refused %+v = %d, want %d", route, n, r, got, workers*perWorker/2)
		}
	}
}
