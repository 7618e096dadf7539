package proxy

import (
	"context"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
)

// storeHealth returns the override store's health, and false for stores that cannot
// be down (the state_dir file, memory).
func (s *Server) storeHealth() (store.Health, bool) {
	if fl := s.fleet(); fl != nil {
		return fl.Health(), true
	}
	return store.Health{}, false
}

// leftLister is a fleet store that also lists the instances that left without a clean
// stop (store.Etcd).
type leftLister interface {
	WithLeft(context.Context) (store.FleetStatus, error)
}

// fleet returns the store's fleet abilities, nil without a fleet store.
func (s *Server) fleet() store.Fleet {
	if s.store == nil {
		return nil
	}
	return s.store.Fleet()
}

// fillStoreStatus adds the store's health to a status answer. A store that cannot be
// down is up, and what it applied is what serves.
func (s *Server) fillStoreStatus(out *Status) {
	h, ok := s.storeHealth()
	if !ok {
		out.StoreUp, out.AppliedRevision, out.StoreRevision = true, out.Revision, out.Revision
		if err := s.storeWritable(); err != nil {
			out.StoreUp, out.StoreError = false, "cannot write: "+err.Error()
		}
		return
	}
	out.StoreUp, out.StoreError = h.Up, h.Error
	out.AppliedRevision, out.StoreRevision = h.AppliedRevision, h.StoreRevision
	out.PendingLocal, out.LastReconciled = h.PendingLocal, h.LastReconciled
	out.StartedWith = h.StartedWith
	out.UndecodableKeys = h.Undecodable
}

// changeLocal applies a change on this instance only (see store.Fleet).
func (s *Server) changeLocal(ctx context.Context, change func(*conf.Overrides) error) (conf.Overrides, error) {
	ov, err := s.fleet().UpdateLocal(ctx, change)
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
	return s.putInService(old.cfg, ov, false)
}

func (s *Server) storeName() string {
	if s.store == nil {
		return "memory"
	}
	return s.store.Describe()
}
