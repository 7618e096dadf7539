package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/shiftgate/shiftgate/conf"
)

// storeHealth returns the override store's health, and false for stores that cannot
// be down (the state_dir file, memory).
func (s *Server) storeHealth() (conf.StoreHealth, bool) {
	if hr, ok := s.store.(conf.HealthReporter); ok {
		return hr.Health(), true
	}
	return conf.StoreHealth{}, false
}

// fillStoreStatus adds the store's health to a status answer. A store that cannot be
// down is up, and what it applied is what serves.
func (s *Server) fillStoreStatus(out *Status) {
	h, ok := s.storeHealth()
	if !ok {
		out.StoreUp, out.AppliedRevision, out.StoreRevision = true, out.Revision, out.Revision
		return
	}
	out.StoreUp, out.StoreError = h.Up, h.Error
	out.AppliedRevision, out.StoreRevision = h.AppliedRevision, h.StoreRevision
	out.PendingLocal, out.LastReconciled = h.PendingLocal, h.LastReconciled
}

// wantLocal reports whether an admin write asks to change this instance only (the
// body's "local": true or the query ?local=1) and the store can: a store without a
// fleet changes only this instance anyway.
func (s *Server) wantLocal(r *http.Request, body bool) bool {
	if _, ok := s.store.(conf.LocalUpdater); !ok {
		return false
	}
	switch r.URL.Query().Get("local") {
	case "1", "true", "yes":
		return true
	}
	return body
}

// storeErrStatus maps an override store error to the admin API's status: 409 for a
// local write refused because the store is up, 503 for a write the store did not take.
func storeErrStatus(err error) int {
	if errors.Is(err, conf.ErrLocalWhileUp) {
		return http.StatusConflict
	}
	return http.StatusServiceUnavailable
}

// changeLocal applies a change on this instance only (see conf.LocalUpdater).
func (s *Server) changeLocal(ctx context.Context, change func(*conf.Overrides) error) (conf.Overrides, error) {
	ov, err := s.store.(conf.LocalUpdater).UpdateLocal(ctx, change)
	if err != nil {
		return ov, err
	}
	s.log.Warn("LOCAL override change applied on this instance only; it is written to the fleet store when the store returns",
		"store", s.store.Describe())
	return ov, nil
}

// applyStored swaps in overrides a store write returned, unless a newer revision
// already serves: the store's watch may have applied a later change while the write
// was returning, and an older value must not overtake it. The check and the swap
// happen under one lock, like ApplyOverrides.
func (s *Server) applyStored(ov conf.Overrides) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.state.Load()
	if ov.Revision < old.ov.Revision {
		return nil
	}
	st, err := s.compile(old.cfg, ov, s.version+1)
	if err != nil {
		return err
	}
	s.version++
	s.publish(st)
	s.afterSwap(old, st)
	return nil
}

// adminFleet answers GET /v1/fleet: the instances registered in the fleet store with
// the override revision each has applied.
func (s *Server) adminFleet(w http.ResponseWriter, r *http.Request) {
	fl, ok := s.store.(conf.FleetLister)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("override store %s has no fleet (configure fleet.etcd)", s.storeName())})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	st, err := fl.Fleet(ctx)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) storeName() string {
	if s.store == nil {
		return "memory"
	}
	return s.store.Describe()
}
