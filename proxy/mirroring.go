package proxy

import (
	"fmt"
	"io"
	"net/http"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/mirror"
)

// mirrorRegistry keeps the running Mirror across reloads that leave every route's
// mirror policy and targets alone, so its results and connections carry over. A
// reload that changes them builds a new Mirror; the old one is closed when the
// snapshot that used it is retired. Used only under the Server's reload lock.
type mirrorRegistry struct {
	byKey map[string]*mirror.Mirror
}

func newMirrorRegistry() *mirrorRegistry {
	return &mirrorRegistry{byKey: map[string]*mirror.Mirror{}}
}

// bind returns the Mirror for c's mirror policies, nil when no route mirrors.
func (r *mirrorRegistry) bind(c *conf.Config) (*mirror.Mirror, error) {
	opt, key := mirrorOptions(c)
	if key == "" {
		return nil, nil
	}
	if m, ok := r.byKey[key]; ok {
		return m, nil
	}
	m, err := mirror.New(opt)
	if err != nil {
		return nil, err
	}
	r.byKey[key] = m
	return m, nil
}

// retain closes every Mirror but keep (which may be nil).
func (r *mirrorRegistry) retain(keep *mirror.Mirror) {
	for k, m := range r.byKey {
		if m != keep {
			m.Close()
			delete(r.byKey, k)
		}
	}
}

// closeAll closes every Mirror (shutdown).
func (r *mirrorRegistry) closeAll() { r.retain(nil) }

// mirrorOptions maps c onto the mirror's options, indexed by route, and returns a key
// that is equal for configs whose mirrors would be built the same; "" when no route
// mirrors.
func mirrorOptions(c *conf.Config) (mirror.Options, string) {
	ms := c.MirrorSettings
	opt := mirror.Options{
		Routes:    make([]mirror.Route, len(c.Routes)),
		Workers:   ms.Workers,
		Queue:     ms.Queue,
		Timeout:   ms.Timeout.D,
		MaxAnswer: int(ms.MaxAnswer.N),
		RelMargin: ms.RelMargin,
		AbsMargin: ms.AbsMargin,
	}
	any := false
	for i := range c.Routes {
		r := &c.Routes[i]
		m := r.Mirror
		if m == nil {
			opt.Routes[i] = mirror.Route{Name: r.Name}
			continue
		}
		any = true
		from := c.RegionList[r.FromID]
		mr := mirror.Route{
			Name: r.Name, Percent: m.PercentBP, Methods: m.Methods, MaxBody: int(m.MaxBody.N),
			Rate: m.Rate, Region: m.To, TargetAddrs: c.RegionList[m.ToID].Upstreams,
			CompareHeaders: m.CompareHeaders, IgnoreHeaders: m.IgnoreHeaders, IgnorePaths: m.IgnorePaths,
		}
		// Noise is measured against a second upstream of the from region: a field that
		// differs between two answers of the old region is not the move's doing.
		if len(from.Upstreams) >= 2 && m.NoiseShareBP > 0 {
			mr.NoiseRegion, mr.NoiseAddrs, mr.NoiseShare = from.Name, from.Upstreams, m.NoiseShareBP
		}
		opt.Routes[i] = mr
	}
	if !any {
		return opt, ""
	}
	return opt, fmt.Sprintf("%+v", opt)
}

// Diff reports what the mirrors compared, for every mirrored route or the one named.
// An unknown route is a 404; a route without a mirror a 404 that says so.
func (s *Server) Diff(route string) (mirror.Snapshot, error) {
	st := s.state.Load()
	snap := st.mirror.Snapshot()
	if route == "" {
		return snap, nil
	}
	r, ok := st.cfg.Route(route)
	if !ok {
		return mirror.Snapshot{}, Errorf(http.StatusNotFound, "no route %q", route)
	}
	if r.Mirror == nil {
		return mirror.Snapshot{}, Errorf(http.StatusNotFound, "route %s has no mirror (set routes[%d].mirror)", route, r.Index)
	}
	out := mirror.Snapshot{}
	for _, rr := range snap.Routes {
		if rr.Name == route {
			out.Routes = append(out.Routes, rr)
		}
	}
	return out, nil
}

// writeMirrorMetrics writes the current Mirror's counters per route.
func (s *Server) writeMirrorMetrics(w io.Writer) {
	st := s.state.Load()
	if st.mirror == nil {
		return
	}
	for i := range st.cfg.Routes {
		if !st.mirror.Mirrored(i) {
			continue
		}
		c := st.mirror.Counters(i)
		name := st.cfg.Routes[i].Name
		for _, kv := range []struct {
			outcome string
			n       uint64
		}{
			{"offered", c.Offered}, {"dropped", c.Dropped}, {"limited", c.Limited}, {"skipped", c.Skipped},
			{"compared", c.Compared}, {"same", c.Same}, {"differing", c.Differing}, {"errors", c.Errors},
			{"truncated", c.Truncated},
		} {
			fmt.Fprintf(w, "shiftgate_mirror_requests_total{route=%q,outcome=%q} %d\n", name, kv.outcome, kv.n)
		}
	}
	fmt.Fprintf(w, "shiftgate_mirror_queue_length %d\n", st.mirror.QueueLen())
}
