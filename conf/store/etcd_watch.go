package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shiftgate/shiftgate/conf"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errRelist ends a watch that must start over from a fresh listing.
var errRelist = errors.New("re-list")

// Watch implements Store: it lists the overrides, then watches them from the
// listed revision, calling apply once per burst of changes (a transaction of any size
// arrives as one call). It lists again after a compaction and whenever etcd comes back
// from an outage (first writing any local change made meanwhile), and keeps a probe
// running so that Health tells whether etcd answers. Calls to apply are sequential,
// never older than a value already handed out, and each applied value is mirrored to
// state_dir. Watch returns when ctx ends.
func (s *Etcd) Watch(ctx context.Context, apply func(conf.Overrides)) error {
	go s.probe(ctx)
	for ctx.Err() == nil {
		from, err := s.resync(ctx, apply)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			s.markDown(err)
			select {
			case <-ctx.Done():
			case <-s.upSignal:
			case <-time.After(s.probeEvery):
			}
			continue
		}
		select { // this listing already covers a comeback the probe saw meanwhile
		case <-s.upSignal:
		default:
		}
		err = s.watchFrom(ctx, from, apply)
		if ctx.Err() == nil && !errors.Is(err, errRelist) {
			s.log.Warn("override watch ended; listing again", "store", s.Describe(), "err", err.Error())
		}
	}
	return nil
}

// resync writes any pending local change, lists every key and applies the result. It
// returns the revision to watch from.
func (s *Etcd) resync(ctx context.Context, apply func(conf.Overrides)) (int64, error) {
	cli, err := s.client()
	if err != nil {
		return 0, err
	}
	if err := s.reconcile(ctx, cli); err != nil {
		return 0, err
	}
	kv, at, err := s.list(ctx, cli)
	if err != nil {
		return 0, err
	}
	s.markUp()
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	s.mu.Lock()
	s.kv, s.kvRev, s.rev = kv, at, maxMod(kv)
	o := s.effectiveLocked()
	same := equalDelivered(o, s.delivered)
	s.mu.Unlock()
	// A listing is authoritative even when its revision is lower than one handed
	// out before (a restored cluster): only identical values are skipped.
	if !same {
		apply(o)
		s.saveMirror(o)
	}
	s.handOutAt(o, true)
	return at + 1, nil
}

// watchFrom applies changes from revision from on until the watch must start over.
func (s *Etcd) watchFrom(ctx context.Context, from int64, apply func(conf.Overrides)) error {
	cli, err := s.client()
	if err != nil {
		return err
	}
	// WithRequireLeader ends the watch when its member loses the cluster's leader,
	// instead of waiting silently on a partitioned member.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := cli.Watch(wctx, s.cfg.Prefix+keyOverrides, clientv3.WithPrefix(), clientv3.WithRev(from))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.upSignal:
			return errRelist
		case resp, ok := <-wch:
			if !ok {
				return errors.New("watch channel closed")
			}
			if err := resp.Err(); err != nil {
				return watchErr(err)
			}
			s.takeEvents(resp.Events)
			// Coalesce a burst: whatever else already arrived joins this apply.
			var end error
		drain:
			for end == nil {
				select {
				case more, ok := <-wch:
					switch {
					case !ok:
						end = errors.New("watch channel closed")
					case more.Err() != nil:
						end = watchErr(more.Err())
					default:
						s.takeEvents(more.Events)
					}
				default:
					break drain
				}
			}
			s.deliverNewest(apply)
			if end != nil {
				return end
			}
		}
	}
}

func watchErr(err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) || strings.Contains(err.Error(), "compacted") {
		return fmt.Errorf("%w: watched revision compacted: %v", errRelist, err)
	}
	return err
}

// takeEvents folds watch events into the key view. Events at or below the revision
// the view is complete to (a write of this instance already taken) are skipped.
func (s *Etcd) takeEvents(evs []*clientv3.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.cfg.Prefix + keyOverrides
	newest := s.kvRev
	for _, ev := range evs {
		rev := ev.Kv.ModRevision
		if rev <= s.kvRev {
			continue
		}
		k := strings.TrimPrefix(string(ev.Kv.Key), p)
		if ev.Type == mvccpb.DELETE {
			delete(s.kv, k)
		} else {
			s.kv[k] = kvEntry{val: ev.Kv.Value, mod: rev}
		}
		s.rev = max(s.rev, rev)
		newest = max(newest, rev)
	}
	s.kvRev = newest
}

// deliverNewest applies the current view unless it is what was handed out last, or
// older than a value a write of this instance already handed out (the watch is
// catching up to it).
func (s *Etcd) deliverNewest(apply func(conf.Overrides)) {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	s.mu.Lock()
	o := s.effectiveLocked()
	skip := o.Revision < s.deliveredRev || equalDelivered(o, s.delivered)
	s.mu.Unlock()
	if !skip {
		s.deliver(o, apply)
	}
}

// deliver applies o, records it and mirrors it. s.deliverMu is held.
func (s *Etcd) deliver(o conf.Overrides, apply func(conf.Overrides)) {
	apply(o)
	s.handOut(o)
	s.saveMirror(o)
}

// probe checks every ProbeEvery that etcd answers, keeping Health true while the
// watch waits quietly, and tells Watch to list again when etcd comes back.
func (s *Etcd) probe(ctx context.Context) {
	t := time.NewTicker(s.probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cli, err := s.client()
		if err == nil {
			rctx, cancel := s.ctx(ctx)
			_, err = cli.Get(rctx, s.cfg.Prefix+keyOverrides+keyLastChange, clientv3.WithCountOnly())
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.markDown(err)
			continue
		}
		if s.markUp() {
			select {
			case s.upSignal <- struct{}{}:
			default:
			}
		}
	}
}
