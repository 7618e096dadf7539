package proxy

import (
	"context"
	"net/http"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

// This file is the control API of the client cut-off and what status shows of the
// client-side switch.

// CutoffRequest is the body of POST /v1/cutoff: `shiftgate cutoff on|off [ROUTE...]`.
// Without routes, on cuts off the whole site and off ends every cut-off; with routes,
// on adds them and off removes them (see conf.Cutoff.Set).
type CutoffRequest struct {
	On     bool     `json:"on"`
	Routes []string `json:"routes,omitempty"`
	// Local changes this instance only, as in SplitRequest.
	Local bool `json:"local,omitempty"`
}

// CutoffResult answers a cut-off change: the cut-off now in force.
type CutoffResult struct {
	On       bool     `json:"on"`
	Routes   []string `json:"routes"`
	Revision int64    `json:"override_revision"`
	Local    bool     `json:"local,omitempty"`
	// ClientConfigVersion is the version of the client config that publishes it.
	ClientConfigVersion string `json:"client_config_version"`
	// Unpersisted, as in RollbackResult.
	Unpersisted string `json:"unpersisted,omitempty"`
}

// CutoffState is the cut-off as status shows it.
type CutoffState struct {
	On     bool      `json:"on"`
	Routes []string  `json:"routes,omitempty"`
	Who    string    `json:"who,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// ClientCounts are a route's X-Shift-Client outcomes since start, and with
// self_region set the requests sent from it to another region.
type ClientCounts struct {
	Agree       uint64 `json:"agree"`
	Disagree    uint64 `json:"disagree"`
	Stale       uint64 `json:"stale"`
	CrossRegion uint64 `json:"cross_region"`
}

// SetCutoff changes the client cut-off through the override store (fleet-wide with
// etcd) and puts the client config that publishes it into service. It changes what
// clients are asked to do only: the gateway keeps serving every request that reaches
// it. Routes must exist in the serving config.
func (s *Server) SetCutoff(ctx context.Context, who string, req CutoffRequest) (CutoffResult, error) {
	st := s.state.Load()
	for _, name := range req.Routes {
		if _, ok := st.cfg.Route(name); !ok {
			return CutoffResult{}, Errorf(http.StatusNotFound, "no route %q", name)
		}
	}
	before := st.ov.Cutoff
	if err := before.CheckSet(req.On, req.Routes); err != nil {
		return CutoffResult{}, &Error{Status: http.StatusConflict, Err: err}
	}
	local := req.Local && s.fleet() != nil
	ov, unpersisted, err := s.changeOverrides(ctx, local, func(o *conf.Overrides) error {
		// Checked again on what the store holds (a fleet may have moved meanwhile).
		if err := o.Cutoff.CheckSet(req.On, req.Routes); err != nil {
			return &Error{Status: http.StatusConflict, Err: err}
		}
		// Like rollback, the record of who ended a cut-off stays.
		next := o.Cutoff.Set(req.On, req.Routes)
		next.Who, next.At = who, s.now().UTC()
		o.Cutoff = next
		return nil
	})
	if err != nil {
		return CutoffResult{}, err
	}
	s.log.Info("audit", "who", who, "what", "cutoff", "on", req.On, "routes", req.Routes,
		"before_site", before.On, "before_routes", before.Routes, "after_site", ov.Cutoff.On, "after_routes", ov.Cutoff.Routes,
		"revision", ov.Revision, "local", local, "persisted", unpersisted == "")
	return CutoffResult{On: ov.Cutoff.On, Routes: nonNil(ov.Cutoff.Routes), Revision: ov.Revision, Local: local,
		ClientConfigVersion: string(s.state.Load().client.version), Unpersisted: unpersisted}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// fillClientStatus adds the client-side switch to a status answer: the cut-off, the
// client config's version, and per route its cut-off and client counts.
func (s *Server) fillClientStatus(st *state, out *Status) {
	c := st.ov.Cutoff
	out.Cutoff = CutoffState{On: c.On, Routes: c.Routes, Who: c.Who, At: c.At}
	out.ClientConfigVersion = string(st.client.version)
	for i := range out.Routes {
		rs := &out.Routes[i]
		m := st.routes[i].metrics
		rs.Cutoff = c.Route(rs.Name)
		cc := &ClientCounts{Agree: m.clients[clientAgree].Get(), Disagree: m.clients[clientDisagree].Get(), Stale: m.clients[clientStale].Get()}
		for _, x := range m.crossRegion {
			if x != nil {
				cc.CrossRegion += x.Get()
			}
		}
		rs.Clients = cc
	}
}
