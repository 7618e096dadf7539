package store

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// keyElections is where leader elections live, beside (not under) overrides/: a
// change of leader is not an override change and must not wake every instance's
// watch.
const keyElections = "elections/"

// LeaderTTL is the lease of a leadership: a leader that dies without resigning (a
// kill, a partition) is replaced this long after its last keep-alive.
const LeaderTTL = 3 * time.Second

// Elector is what a store offers that can elect one leader among the instances that
// share it: the etcd store does; a store serving one instance does not need to (its
// instance always leads). Ask for it with a type assertion on the Store.
type Elector interface {
	// Lead campaigns for the leadership of name and, once elected, runs fn with a
	// context that ends when the leadership is lost (the lease expired: etcd did not
	// hear from this instance for LeaderTTL) or ctx ends; then it resigns and
	// campaigns again. value is published for Leader to read. Lead returns when ctx
	// ends. fn must return promptly once its context ends.
	Lead(ctx context.Context, name, value string, fn func(context.Context))
	// Leader returns the value the current leader of name published, "" when there
	// is none.
	Leader(ctx context.Context, name string) (string, error)
}

var _ Elector = (*Etcd)(nil)

// Lead implements Elector with the etcd client's concurrency package: a session (a
// lease kept alive) and an election under elections/NAME. It has a client of its own,
// closed when ctx ends: the package waits on its client's context in places (a
// campaign cut short resigns with it), which with etcd down would never return.
func (s *Etcd) Lead(ctx context.Context, name, value string, fn func(context.Context)) {
	for ctx.Err() == nil {
		err := s.leadWithClient(ctx, name, value, fn)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Debug("leader election: trying again", "election", name, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.probeEvery):
		}
	}
}

func (s *Etcd) leadWithClient(ctx context.Context, name, value string, fn func(context.Context)) error {
	cfg, err := s.clientConfig()
	if err != nil {
		return err
	}
	cfg.Context = ctx
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { cli.Close() })
	defer func() {
		if stop() {
			cli.Close()
		}
	}()
	for ctx.Err() == nil {
		if err := s.leadOnce(ctx, cli, name, value, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *Etcd) leadOnce(ctx context.Context, cli *clientv3.Client, name, value string, fn func(context.Context)) error {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(LeaderTTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return err
	}
	defer sess.Close() //nolint:errcheck // the lease expires anyway
	el := concurrency.NewElection(sess, s.cfg.Prefix+keyElections+name)
	if err := el.Campaign(ctx, value); err != nil {
		return err
	}
	s.log.Info("leading", "election", name, "as", value)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(lctx)
	}()
	select {
	case <-sess.Done():
		s.log.Warn("leadership lost: the lease expired", "election", name, "as", value)
	case <-ctx.Done():
	case <-done:
	}
	cancel()
	<-done
	rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
	el.Resign(rctx) //nolint:errcheck // the lease's end removes the key anyway
	rcancel()
	return nil
}

// Leader implements Elector.
func (s *Etcd) Leader(ctx context.Context, name string) (string, error) {
	cli, err := s.client()
	if err != nil {
		return "", err
	}
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := cli.Get(rctx, s.cfg.Prefix+keyElections+name+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", err
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}
