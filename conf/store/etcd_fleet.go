package store

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// InstanceTTL is the lease of an instance's registration: an instance that stops
// without saying so leaves the fleet list this long after.
const InstanceTTL = 5 * time.Second

// registerEvery bounds how often a registration is rewritten (at most 5 a second),
// however fast overrides change.
const registerEvery = 200 * time.Millisecond

// keySeen is seen/NAME: the last registration of an instance, without a lease. A
// clean stop deletes it with the registration; an instance that left the list
// otherwise (cut off from etcd, killed) keeps it, so the fleet list can say that it
// left and what it last served: it may still be serving that, with no way to hear
// of a change.
const keySeen = "seen/"

// LeftKept is how long an instance that left without a clean stop is listed as left.
const LeftKept = 24 * time.Hour

// InstanceName is the name an instance registers under: fleet.etcd.instance, else the
// host name and the listen port.
func (s *Etcd) InstanceName(listen string) string {
	if s.cfg.Instance != "" {
		return s.cfg.Instance
	}
	host, _ := os.Hostname()
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		port = listen
	}
	return host + ":" + port
}

func (s *Etcd) instanceName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.instance
}

// Register keeps this instance in the fleet list (instances/NAME under a lease of
// InstanceTTL) until ctx ends, then removes it. The entry carries the listen and admin
// addresses and the override revision applied, rewritten after each apply (at most 5
// times a second). Across an etcd outage it keeps trying and registers again when etcd
// returns. It returns when ctx ends.
func (s *Etcd) Register(ctx context.Context, listen, admin string) {
	name := s.InstanceName(listen)
	s.mu.Lock()
	if s.instance == "" {
		s.instance = name
	}
	s.mu.Unlock()
	inst := Instance{Instance: name, Listen: listen, Admin: admin, Region: s.region, Started: time.Now().UTC()}
	key := s.cfg.Prefix + keyInstances + name
	for ctx.Err() == nil {
		err := s.registerOnce(ctx, key, inst)
		if ctx.Err() != nil {
			return
		}
		s.log.Debug("fleet registration lost; registering again", "instance", name, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.probeEvery):
		}
	}
}

func (s *Etcd) registerOnce(ctx context.Context, key string, inst Instance) error {
	cli, err := s.client()
	if err != nil {
		return err
	}
	rctx, cancel := s.ctx(ctx)
	lease, err := cli.Grant(rctx, int64(InstanceTTL/time.Second))
	cancel()
	if err != nil {
		return err
	}
	seen := s.cfg.Prefix + keySeen + inst.Instance
	defer func() {
		// Leave the list at once on a clean stop rather than after the TTL, and
		// leave no trace: only an instance that did not stop cleanly is "left".
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cli.Revoke(rctx, lease.ID) //nolint:errcheck // the lease expires anyway
		if ctx.Err() != nil {
			cli.Delete(rctx, seen) //nolint:errcheck // listed as left until LeftKept
		}
		cancel()
	}()
	put := func() error {
		h := s.Health()
		inst.AppliedRevision, inst.PendingLocal, inst.Updated = h.AppliedRevision, len(h.PendingLocal) > 0, time.Now().UTC()
		b, _ := json.Marshal(inst)
		rctx, cancel := s.ctx(ctx)
		defer cancel()
		_, err := cli.Txn(rctx).Then(
			clientv3.OpPut(key, string(b), clientv3.WithLease(lease.ID)),
			clientv3.OpPut(seen, string(b)),
		).Commit()
		return err
	}
	if err := put(); err != nil {
		return err
	}
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	ka, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return err
	}
	tick := time.NewTicker(registerEvery)
	defer tick.Stop()
	dirty := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-ka:
			if !ok {
				return errors.New("lease keep-alive ended")
			}
		case <-s.appliedSignal:
			dirty = true
		case <-tick.C:
			if dirty {
				// A failed write (etcd away) stays dirty and is tried next tick.
				dirty = put() != nil
			}
		}
	}
}

// Instances implements Fleet: the registered instances (sorted by name) and the
// newest override revision, read from etcd in one transaction. It is read often (the
// share of the fleet-wide caps, every instance, four times a second): it reads
// nothing else.
func (s *Etcd) Instances(ctx context.Context) (FleetStatus, error) {
	return s.fleetList(ctx, false)
}

// WithLeft is Instances and, in Left, the instances that left the list without a
// clean stop in the last LeftKept: what an operator's fleet list shows. Entries older
// than that are deleted as they are met.
func (s *Etcd) WithLeft(ctx context.Context) (FleetStatus, error) {
	return s.fleetList(ctx, true)
}

func (s *Etcd) fleetList(ctx context.Context, withLeft bool) (FleetStatus, error) {
	out := FleetStatus{Store: s.Describe()}
	cli, err := s.client()
	if err != nil {
		return out, s.readDownError(err)
	}
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	ops := []clientv3.Op{
		clientv3.OpGet(s.cfg.Prefix+keyInstances, clientv3.WithPrefix()),
		clientv3.OpGet(s.cfg.Prefix+keyOverrides, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	}
	if withLeft {
		ops = append(ops, clientv3.OpGet(s.cfg.Prefix+keySeen, clientv3.WithPrefix()))
	}
	resp, err := cli.Txn(rctx).Then(ops...).Commit()
	if err != nil {
		return out, s.readDownError(err)
	}
	listed := map[string]bool{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var i Instance
		name := strings.TrimPrefix(string(kv.Key), s.cfg.Prefix+keyInstances)
		if json.Unmarshal(kv.Value, &i) != nil {
			i.Instance = name + " (unreadable entry)"
		}
		listed[name] = true
		out.Instances = append(out.Instances, i)
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		out.OverrideRevision = max(out.OverrideRevision, kv.ModRevision)
	}
	byName := func(a, b Instance) int { return strings.Compare(a.Instance, b.Instance) }
	slices.SortFunc(out.Instances, byName)
	if !withLeft {
		return out, nil
	}
	now := time.Now()
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		var i Instance
		name := strings.TrimPrefix(string(kv.Key), s.cfg.Prefix+keySeen)
		if listed[name] {
			continue
		}
		if json.Unmarshal(kv.Value, &i) != nil || now.Sub(i.Updated) > LeftKept {
			// Deleted only if still the entry read: an instance registering under
			// that name again meanwhile keeps its own.
			cli.Txn(rctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)). //nolint:errcheck // tried again next time
															Then(clientv3.OpDelete(string(kv.Key))).Commit()
			continue
		}
		out.Left = append(out.Left, i)
	}
	slices.SortFunc(out.Left, byName)
	return out, nil
}
