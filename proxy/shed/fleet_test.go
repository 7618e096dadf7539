package shed

import (
	"testing"
	"time"
)

func TestFleetShare(t *testing.T) {
	for _, tc := range []struct {
		live int
		want float64
	}{{-1, 1}, {0, 1}, {1, 1}, {2, 0.5}, {3, 1.0 / 3}, {10, 0.1}} {
		if got := FleetShare(tc.live); got != tc.want {
			t.Errorf("FleetShare(%d) = %v, want %v", tc.live, got, tc.want)
		}
	}
}

// TestFleetRebalance runs three instances under a fleet-wide cap, then takes one away:
// the two left take half each from the next request on, and the fleet stays at the cap.
func TestFleetRebalance(t *testing.T) {
	const capRPS = 3000
	c := newClock()
	var gates []*Gate
	for range 3 {
		l := site(capRPS, 0)
		l.Share = FleetShare(3)
		gates = append(gates, New(l, c.now))
	}
	start := c.now()
	total := 0
	for i, g := range gates {
		c.set(start)
		_, adm, _ := offer(g, c, 2000, 10*time.Second, 0)
		within(t, "instance "+itoa(i)+" of 3, admitted/s", float64(adm[0])/10, capRPS/3, 0.10)
		total += adm[0]
	}
	within(t, "fleet of 3, admitted/s", float64(total)/10, capRPS, 0.10)

	// One leaves; the registry says so; each of the two left takes 1/2.
	start = c.now()
	total = 0
	for i, g := range gates[:2] {
		c.set(start)
		g.SetShare(FleetShare(2))
		if r := g.Stats().Site.Rate; r != capRPS/2 {
			t.Errorf("instance %d: rate %v right after the change, want %v", i, r, capRPS/2)
		}
		_, adm, perSec := offer(g, c, 2000, 10*time.Second, 0)
		within(t, "instance "+itoa(i)+" of 2, first second", float64(perSec[0]), capRPS/2, 0.10)
		within(t, "instance "+itoa(i)+" of 2, admitted/s", float64(adm[0])/10, capRPS/2, 0.10)
		total += adm[0]
	}
	within(t, "fleet of 2, admitted/s", float64(total)/10, capRPS, 0.10)
}

func TestShareKeepsHistory(t *testing.T) {
	c := newClock()
	reg := NewRegistry(c.now)
	g := reg.Gate(Limits{SiteRPS: 1000, Share: 0.5, Routes: []Route{{Name: "a"}}})
	drain(g, 0, c.now())
	// A larger share raises the rate; it does not refill the drained bucket.
	g.SetShare(1)
	if v := g.Admit(0, c.now()); v.OK() {
		t.Error("SetShare refilled the bucket")
	}
	// A reload that names no share keeps the live one; one that names it sets it.
	if reg.Gate(Limits{SiteRPS: 1000}); reg.Share() != 1 {
		t.Errorf("share after a reload without one = %v, want 1", reg.Share())
	}
	// The cap is unchanged, so its bucket is kept: the new share must still reach it.
	if g = reg.Gate(Limits{SiteRPS: 1000, Share: 0.25, Routes: []Route{{Name: "a"}}}); g.Stats().Site.Rate != 250 {
		t.Errorf("rate with a share of 1/4 = %v, want 250", g.Stats().Site.Rate)
	}
	_, adm, _ := offer(g, c, 1000, 10*time.Second, 0)
	within(t, "admitted/s at a share of 1/4 set by a reload", float64(adm[0])/10, 250, 0.10)
	for _, bad := range []float64{0, -1, 2} {
		g.SetShare(bad)
		if reg.Share() != 0.25 {
			t.Errorf("SetShare(%v) changed the share to %v", bad, reg.Share())
		}
	}
}

func TestShareAppliesToRouteCaps(t *testing.T) {
	c := newClock()
	g := New(Limits{Routes: []Route{{Name: "a", RPS: 900}}, Share: FleetShare(3)}, c.now)
	_, adm, _ := offer(g, c, 1000, 10*time.Second, 0)
	within(t, "route cap at 1/3, admitted/s", float64(adm[0])/10, 300, 0.10)
}
