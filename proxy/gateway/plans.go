package gateway

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/admin"
	"github.com/shiftgate/shiftgate/proxy/plan"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

// planElection names the fleet's election of the instance that drives every plan.
const planElection = "plans"

// startPlans plugs the ramp plan controller into the server and drives the plans: on
// a single instance always, in a fleet while this instance leads the election (one
// driver at a time; a new leader continues from the progress in the store), and
// guards them on this instance while the store is down (plan.Controller.Guard).
func (g *Gateway) startPlans(ctx context.Context, st store.Store) {
	srv, fl := g.Server, st.Fleet()
	opt := plan.Options{Logger: g.log, Read: statsReader(srv, g.AdminAddr, fl != nil)}
	el, _ := st.(store.Elector)
	if fl != nil {
		opt.Instance = fl.InstanceName(g.Addr)
	}
	if fl != nil && el != nil {
		opt.LocalRead = statsReader(srv, g.AdminAddr, false)
		opt.Driver = func(ctx context.Context) (string, string, error) {
			v, err := el.Leader(ctx, planElection)
			name, adminAddr, _ := strings.Cut(v, " ")
			return name, adminAddr, err
		}
	}
	ctrl := plan.New(srv, opt)
	srv.SetPlanDriver(ctrl)
	switch {
	case fl != nil && el != nil:
		g.goBG(func() { el.Lead(ctx, planElection, opt.Instance+" "+g.AdminAddr, ctrl.Drive) })
		// While the store is down nobody leads: each instance guards its own users.
		g.goBG(func() { ctrl.Guard(ctx) })
	case fl != nil:
		g.log.Warn("the fleet store elects no leader: this instance drives ramp plans on its own", "store", st.Describe())
		g.goBG(func() { ctrl.Drive(ctx) })
	default:
		g.goBG(func() { ctrl.Drive(ctx) })
	}
}

// statsReader reads a route's cohorts over the window since a step began through the
// same code as GET /v1/stats (with ?fleet=1 in a fleet: every registered instance's
// statistics merged, those that do not answer listed as missing).
func statsReader(srv *proxy.Server, self string, fleet bool) plan.Reader {
	return func(ctx context.Context, route string, since time.Time, totals bool) (plan.Window, error) {
		// Whole seconds from the first that began after the step did: the
		// statistics keep seconds, and a window must not reach back into the step
		// before.
		first := since.Unix()
		if since.Nanosecond() > 0 {
			first++
		}
		span := time.Duration(time.Now().Unix()-first) * time.Second
		if span < time.Second {
			return plan.Window{}, nil // no complete second yet: inconclusive
		}
		v := stats.View{Compare: span, History: -1, Histograms: true, Top: 1}
		if totals {
			v.History, v.HistoryStep = span, time.Second
			if span > 10*time.Minute {
				v.HistoryStep = 10 * time.Second
			}
		}
		var snap stats.Snapshot
		var err error
		if fleet {
			snap, err = admin.FleetStats(ctx, srv, self, route, v)
		} else {
			snap, err = srv.Stats(route, v)
		}
		if err != nil {
			return plan.Window{}, err
		}
		if len(snap.Routes) != 1 {
			return plan.Window{}, fmt.Errorf("route %s: no statistics", route)
		}
		r := snap.Routes[0]
		w := plan.Window{Moved: r.Compare.MovedVsStayed.A.Tally(), Stayed: r.Compare.MovedVsStayed.B.Tally(),
			Instances: snap.Instances, Missing: snap.Missing}
		w.From, w.To = w.Moved.From, w.Moved.To
		w.Total = w.Moved.Requests + w.Stayed.Requests
		if h := r.History; totals && h != nil {
			w.Total = 0
			for _, se := range []*stats.Series{h.Moved, h.Stayed, h.Failover, h.Fallback} {
				if se == nil {
					continue
				}
				for _, n := range se.Req {
					w.Total += n
				}
				if se == h.Fallback {
					for _, n := range se.Req {
						w.Fallbacks += n
					}
				}
			}
		}
		return w, nil
	}
}
