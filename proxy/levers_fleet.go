package proxy

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/proxy/shed"
)

// shareEvery is how often an instance of a fleet counts the live instances to take
// its share of the fleet-wide caps: a join or a clean leave is in force within
// shareEvery plus one etcd read. An instance that dies without leaving counts until
// its registration's lease ends (store.InstanceTTL).
const shareEvery = 250 * time.Millisecond

// fleetShare is what the share loop last saw of the fleet.
type fleetShare struct {
	// listen is the traffic listener's address, which names this instance in the
	// fleet list unless fleet.etcd.instance does.
	listen atomic.Value // string
	// live counts the live instances and inRegion those of this instance's
	// self_region (this one included); 0 until the first count.
	live, inRegion atomic.Int64
	// at is when the last count succeeded (Unix ns).
	at atomic.Int64
}

// shareLoop keeps this instance's share of the fleet-wide caps (1/live instances) and
// of the byte budgets (1/live instances of its region) up to date while it runs in a
// fleet. When the store is away the last count stays: caps keep their last share.
func (s *Server) shareLoop() {
	fl := s.fleet()
	if fl == nil {
		return
	}
	t := time.NewTicker(shareEvery)
	defer t.Stop()
	for {
		s.countFleet(fl)
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
	}
}

func (s *Server) countFleet(fl store.Fleet) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*shareEvery)
	defer cancel()
	fs, err := fl.Instances(ctx)
	if err != nil {
		return
	}
	addr, _ := s.share.listen.Load().(string)
	self := fl.InstanceName(addr)
	region := s.state.Load().cfg.SelfRegion
	var live, inRegion int
	seen := false
	for _, in := range fs.Instances {
		live++
		if in.Region == region {
			inRegion++
		}
		seen = seen || in.Instance == self
	}
	if !seen {
		// Not registered yet (or its registration lapsed during an outage): it
		// serves all the same.
		live++
		inRegion++
	}
	s.share.at.Store(s.now().UnixNano())
	prev := s.share.live.Swap(int64(live))
	s.share.inRegion.Store(int64(inRegion))
	if sh := shed.FleetShare(live); sh != s.shed.Share() {
		s.shed.SetShare(sh)
	}
	if sh := shed.FleetShare(inRegion); sh != s.shed.BudgetShare() {
		s.shed.SetBudgetShare(sh)
	}
	if prev != int64(live) {
		s.log.Info("fleet size changed: each instance enforces its share of the fleet-wide caps",
			"live_instances", live, "in_region", inRegion, "share", shed.FleetShare(live))
	}
}
