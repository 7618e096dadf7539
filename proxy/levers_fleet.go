package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// leftEvery is how many counts apart the share loop also counts the instances that
// left the fleet without a clean stop (a longer read, and not needed for the shares).
const leftEvery = 20

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
	// left counts the instances that left the fleet without a clean stop in the last
	// store.LeftKept; -1 until first counted.
	left atomic.Int64
	// leftNames are those instances, as last counted; nil until then. Only the
	// share loop's goroutine touches it.
	leftNames map[string]bool
	// saved is whether a count has been written to state_dir by this process.
	saved atomic.Bool
}

// shareLoop keeps this instance's share of the fleet-wide caps (1/live instances) and
// of the byte budgets (1/live instances of its region) up to date while it runs in a
// fleet. When the store is away the last count stays: caps keep their last share.
func (s *Server) shareLoop() {
	fl := s.fleet()
	if fl == nil {
		return
	}
	// Until the store answers, the fleet's size is the last one counted before this
	// instance (re)started: alone in its own count, it would enforce each fleet-wide
	// cap whole beside instances that each enforce their share.
	s.loadFleetCount()
	t := time.NewTicker(shareEvery)
	defer t.Stop()
	for n := 0; ; n++ {
		s.countFleet(fl, n%leftEvery == 0)
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
	}
}

// countFleet counts the live instances, and withLeft those that left (when the store
// keeps them).
func (s *Server) countFleet(fl store.Fleet, withLeft bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*shareEvery)
	defer cancel()
	list := fl.Instances
	wl, keepsLeft := fl.(leftLister)
	withLeft = withLeft && keepsLeft
	if withLeft {
		list = wl.WithLeft
	}
	fs, err := list(ctx)
	if err != nil {
		return
	}
	if withLeft {
		s.share.left.Store(int64(len(fs.Left)))
		names := make(map[string]bool, len(fs.Left))
		var gone []string
		for _, in := range fs.Left {
			names[in.Instance] = true
			if s.share.leftNames != nil && !s.share.leftNames[in.Instance] {
				gone = append(gone, in.Instance)
			}
		}
		s.share.leftNames = names
		if len(gone) > 0 {
			s.log.Warn("an instance left the fleet without a clean stop: it may still serve what it last applied",
				"left", gone)
		}
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
	prevRegion := s.share.inRegion.Load()
	prev := s.applyFleetCount(live, inRegion)
	if prev != int64(live) {
		s.log.Info("fleet size changed: each instance enforces its share of the fleet-wide caps",
			"live_instances", live, "in_region", inRegion, "share", shed.FleetShare(live))
	}
	if prev != int64(live) || prevRegion != int64(inRegion) || !s.share.saved.Load() {
		s.saveFleetCount(live, inRegion)
	}
}

// writeFleetMetrics writes the fleet's size as this instance last counted it: the live
// instances (this one included) and those that left without a clean stop, which may
// still be serving what they last applied. Nothing without a fleet or a count.
func (s *Server) writeFleetMetrics(w io.Writer) {
	if s.fleet() == nil {
		return
	}
	if live := s.share.live.Load(); live > 0 {
		fmt.Fprintf(w, "shiftgate_fleet_instances{state=\"live\"} %d\n", live)
	}
	if left := s.share.left.Load(); left >= 0 {
		fmt.Fprintf(w, "shiftgate_fleet_instances{state=\"left\"} %d\n", left)
	}
}

// applyFleetCount puts the shares of a fleet of live instances (inRegion of them in
// this one's region) in force and returns the previous count.
func (s *Server) applyFleetCount(live, inRegion int) int64 {
	prev := s.share.live.Swap(int64(live))
	s.share.inRegion.Store(int64(inRegion))
	if sh := shed.FleetShare(live); sh != s.shed.Share() {
		s.shed.SetShare(sh)
	}
	if sh := shed.FleetShare(inRegion); sh != s.shed.BudgetShare() {
		s.shed.SetBudgetShare(sh)
	}
	return prev
}

// fleetCountFile, in state_dir, keeps the last count of the fleet across a restart.
const fleetCountFile = "fleet-count.json"

type fleetCount struct {
	Live     int       `json:"live_instances"`
	InRegion int       `json:"in_region"`
	At       time.Time `json:"at"`
}

// saveFleetCount writes the count to state_dir (best effort: a count that did not
// persist only matters at a restart during an outage).
func (s *Server) saveFleetCount(live, inRegion int) {
	dir := s.state.Load().cfg.StateDir
	if dir == "" {
		return
	}
	b, _ := json.Marshal(fleetCount{Live: live, InRegion: inRegion, At: s.now().UTC()})
	if err := store.WriteFileAtomic(filepath.Join(dir, fleetCountFile), b); err != nil {
		s.log.Warn("fleet size not saved to state_dir: a restart while the fleet store is away would enforce whole fleet caps", "err", err.Error())
		return
	}
	s.share.saved.Store(true)
}

// loadFleetCount puts the count saved before a restart in force, unless one was made
// since.
func (s *Server) loadFleetCount() {
	dir := s.state.Load().cfg.StateDir
	if dir == "" || s.share.live.Load() != 0 {
		return
	}
	b, err := os.ReadFile(filepath.Join(dir, fleetCountFile))
	if err != nil {
		return
	}
	var c fleetCount
	if json.Unmarshal(b, &c) != nil || c.Live < 1 || c.InRegion < 1 {
		return
	}
	s.applyFleetCount(c.Live, c.InRegion)
	s.log.Info("enforcing the share of the fleet size counted before this start until the fleet store answers",
		"live_instances", c.Live, "in_region", c.InRegion, "counted_at", c.At)
}
