package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shiftgate/shiftgate/conf"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// reconnectMax bounds the wait between attempts to reach an etcd that is down, and so
// how long after its return the fleet notices.
const reconnectMax = 500 * time.Millisecond

// EtcdOptions are the parts of an Etcd that do not come from the config's
// fleet.etcd section. The zero value keeps no mirror and logs to slog.Default().
type EtcdOptions struct {
	// StateDir holds the mirror of the last applied overrides (overrides.json, the
	// File format) and any local change not yet in etcd. "" keeps neither, for
	// a command line that writes to etcd directly.
	StateDir string
	// Logger receives the store's logs; nil logs to slog.Default().
	Logger *slog.Logger
	// ProbeEvery is how often Watch checks that etcd answers (default 500ms).
	ProbeEvery time.Duration
	// Region is this instance's self_region, written into its registration.
	Region string
}

// Etcd keeps a fleet's overrides in etcd, one key per override under the
// config's prefix, so that every instance serves the same split within a second.
//
// It never makes serving depend on etcd: every applied value is mirrored to state_dir,
// Load falls back to the mirror when etcd does not answer within dial_timeout, and
// while etcd is away the last values keep serving. Fleet writes (Update) then fail
// with ErrDown; UpdateLocal changes this instance only and the change is written
// to etcd, loudly, when it returns.
//
// Its methods are safe for concurrent use. Build it with NewEtcd; Close it.
type Etcd struct {
	cfg        conf.Etcd
	endpoints  string
	log        *slog.Logger
	mirror     *File // nil without a state dir
	pendPath   string
	timeout    time.Duration
	probeEvery time.Duration
	region     string

	cliMu  sync.Mutex
	cli    *clientv3.Client
	closed bool

	// deliverMu orders hand-outs of overrides (watch applies, writes' results) and
	// mirror writes, so an older value never overtakes a newer one.
	deliverMu sync.Mutex

	mu           sync.Mutex
	kv           map[string]kvEntry // the override keys, relative to prefix+overrides/
	kvRev        int64              // the etcd revision kv is complete up to
	rev          int64              // override revision of kv (its newest change)
	pending      *pendingLocal
	health       Health
	delivered    []byte // JSON of the overrides last handed out
	deliveredRev int64
	instance     string            // the registered name, for audit records
	bad          map[string]BadKey // override keys whose value does not decode

	// beforeCommit, when set (tests only), runs in Update between the read of the
	// overrides and the transaction that writes the change.
	beforeCommit func()

	upSignal      chan struct{} // the store came back (probe): re-list
	appliedSignal chan struct{} // overrides were applied: refresh the registration
}

// NewEtcd returns a store for the etcd cluster e describes (as Parse left it: a zero
// dial timeout, from code that built e itself, means conf.DefaultEtcdDialTimeout). It does not wait for
// etcd: a store whose cluster is down works from its mirror until it comes back.
func NewEtcd(e *conf.Etcd, opt EtcdOptions) (*Etcd, error) {
	if e == nil || len(e.Endpoints) == 0 {
		return nil, errors.New("fleet.etcd: no endpoints")
	}
	s := &Etcd{
		cfg:           *e,
		endpoints:     strings.Join(e.Endpoints, ","),
		log:           opt.Logger,
		timeout:       cmp.Or(e.DialTimeout.D, conf.DefaultEtcdDialTimeout), // e built by code, not Parse
		probeEvery:    opt.ProbeEvery,
		region:        opt.Region,
		instance:      e.Instance,
		kv:            map[string]kvEntry{},
		upSignal:      make(chan struct{}, 1),
		appliedSignal: make(chan struct{}, 1),
	}
	if !strings.HasSuffix(s.cfg.Prefix, "/") {
		s.cfg.Prefix += "/"
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.probeEvery <= 0 {
		s.probeEvery = 500 * time.Millisecond
	}
	if opt.StateDir != "" {
		fs, err := NewFile(opt.StateDir)
		if err != nil {
			return nil, err
		}
		s.mirror = fs
		s.pendPath = filepath.Join(opt.StateDir, pendingFile)
	}
	// Check the files now so that a typo fails at start, not at the first dial.
	if _, err := s.clientConfig(); err != nil {
		return nil, err
	}
	s.health.Error = "not contacted yet"
	return s, nil
}

func (s *Etcd) clientConfig() (clientv3.Config, error) {
	c := clientv3.Config{
		Endpoints:            s.cfg.Endpoints,
		DialTimeout:          s.timeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Username:             s.cfg.Username,
		Logger:               zap.NewNop(), // failures are reported through our own log and health
		// gRPC's default reconnect backoff grows to two minutes: after a long outage
		// the fleet would catch up long after etcd returned. Retrying a refused
		// connection twice a second costs nothing.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: reconnectMax},
			MinConnectTimeout: s.timeout,
		})},
	}
	if s.cfg.PasswordFile != "" {
		b, err := os.ReadFile(s.cfg.PasswordFile)
		if err != nil {
			return c, fmt.Errorf("fleet.etcd.password_file: %w", err)
		}
		c.Password = strings.TrimSpace(string(b))
	}
	if s.cfg.CAFile == "" && s.cfg.CertFile == "" && s.cfg.KeyFile == "" {
		return c, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.cfg.CAFile != "" {
		b, err := os.ReadFile(s.cfg.CAFile)
		if err != nil {
			return c, fmt.Errorf("fleet.etcd.ca_file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(b) {
			return c, fmt.Errorf("fleet.etcd.ca_file %s: no PEM certificate in it", s.cfg.CAFile)
		}
	}
	if s.cfg.CertFile != "" || s.cfg.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
		if err != nil {
			return c, fmt.Errorf("fleet.etcd.cert_file/key_file: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	c.TLS = t
	return c, nil
}

// client returns the etcd client, creating it on first use. Creation fails only when
// it must talk to etcd (to authenticate) and cannot; it is tried again next time.
func (s *Etcd) client() (*clientv3.Client, error) {
	s.cliMu.Lock()
	defer s.cliMu.Unlock()
	if s.cli != nil {
		return s.cli, nil
	}
	if s.closed {
		return nil, errors.New("override store closed")
	}
	c, err := s.clientConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(c)
	if err != nil {
		return nil, err
	}
	s.cli = cli
	return cli, nil
}

// Close releases the connection to etcd. The store must not be used after.
func (s *Etcd) Close() error {
	s.cliMu.Lock()
	defer s.cliMu.Unlock()
	s.closed = true
	if s.cli == nil {
		return nil
	}
	err := s.cli.Close()
	s.cli = nil
	return err
}

// Describe implements Store.
func (s *Etcd) Describe() string { return "etcd " + s.endpoints + " " + s.cfg.Prefix }

// Prefix is the key prefix of the fleet, ending in "/".
func (s *Etcd) Prefix() string { return s.cfg.Prefix }

// Health implements Fleet.
func (s *Etcd) Health() Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.health
	h.StoreRevision = s.rev
	if s.pending != nil {
		h.PendingLocal = s.pending.keys()
	}
	if h.LastReconciled != nil {
		r := *h.LastReconciled
		h.LastReconciled = &r
	}
	for _, k := range slices.Sorted(maps.Keys(s.bad)) {
		h.Undecodable = append(h.Undecodable, s.bad[k])
	}
	return h
}

func (s *Etcd) markUp() (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.health.Up {
		s.health.Up, s.health.Error, s.health.Since = true, "", time.Now().UTC()
		changed = true
	}
	if changed {
		s.log.Info("override store is up", "store", s.Describe())
	}
	return changed
}

func (s *Etcd) markDown(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.health.Up
	s.health.Up, s.health.Error = false, err.Error()
	if was || s.health.Since.IsZero() {
		s.health.Since = time.Now().UTC()
		s.log.Error("override store is DOWN: serving the last known overrides; fleet writes are refused",
			"store", s.Describe(), "err", err.Error(), "revision", s.rev)
	}
}

// downError wraps err as the refusal of a fleet write. A caller that gave up (its
// request ended) says nothing about etcd's health. An instance's store (one with a
// state_dir) can take the change for itself with -local; a command line writing to
// etcd directly has no instance to change.
func (s *Etcd) downError(err error) error {
	if !errors.Is(err, context.Canceled) {
		s.markDown(err)
	}
	if s.mirror == nil {
		return fmt.Errorf("%w (etcd %s: %v): nothing was changed; a direct write needs etcd to answer (an instance's admin API takes -local for itself)",
			ErrDown, s.endpoints, err)
	}
	return fmt.Errorf("%w (etcd %s: %v): nothing was changed; to change this instance only until etcd returns, write with -local",
		ErrDown, s.endpoints, err)
}

// unknownError wraps err, the failure of a write that may have reached etcd, as a
// write of unknown outcome: it may have been applied, so "nothing was changed" would
// be a guess, and a retry or a -local write made on that guess could fight a change
// the rest of the fleet already serves. readErr is the failure of the read that tried
// to find out (nil when etcd answered it); etcd is reported down only when that read
// failed too, and not when the caller gave up.
func (s *Etcd) unknownError(err, readErr error) error {
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		s.markDown(readErr)
	}
	s.log.Error("override change OUTCOME UNKNOWN: sent to etcd, but its answer did not come; it may or may not have been applied",
		"store", s.Describe(), "err", err.Error(), "read_back_err", fmt.Sprint(readErr))
	check := "check with `shiftgate status -fleet` (the override revision each instance serves) before trying again or writing with -local"
	if s.mirror == nil {
		check = "check with `shiftgate status -fleet` (the override revision each instance serves) before trying again"
	}
	return fmt.Errorf("%w (etcd %s: %v): the change was sent but no answer came in time: it may or may not have taken effect on the fleet; %s",
		ErrOutcomeUnknown, s.endpoints, err, check)
}

// outcomeUnknown reports whether err, the failure of a write, leaves open that etcd
// applied it. Only two kinds of failure prove it did not: the client had no
// connection to send it on (etcd's own test for a write that is safe to retry), and
// etcd answered with a refusal (a bad request, no permission, no space). A deadline
// or a cancellation after sending, a lost connection or etcd's own "request timed
// out" leave it open, and so does any error not known here.
func outcomeUnknown(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var code codes.Code
	var desc string
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code, desc = ee.Code(), ee.Error()
	} else if st, ok := status.FromError(err); ok {
		code, desc = st.Code(), st.Message()
	} else {
		return true
	}
	switch code {
	case codes.Unavailable:
		return desc != "there is no address available" && desc != "there is no connection available"
	case codes.InvalidArgument, codes.FailedPrecondition, codes.PermissionDenied, codes.Unauthenticated,
		codes.ResourceExhausted, codes.NotFound, codes.AlreadyExists, codes.OutOfRange, codes.Unimplemented:
		return false
	}
	return true
}

// readBack finds out, after a write whose answer did not come (werr), whether etcd
// applied it: the write's last-change record (its time to the nanosecond and this
// instance's name) is there only if it did. Found, the write stands; not found, or
// etcd still silent, the outcome stays unknown (a write etcd holds may still be
// applied, and a later writer may have replaced the record).
func (s *Etcd) readBack(ctx context.Context, cli *clientv3.Client, rec lastChange, werr error) (int64, error) {
	want, _ := json.Marshal(rec)
	rctx, cancel := s.ctx(context.WithoutCancel(ctx)) // the caller may have gone; the log still tells
	defer cancel()
	resp, err := cli.Get(rctx, s.cfg.Prefix+keyOverrides+keyLastChange)
	if err == nil && len(resp.Kvs) == 1 && bytes.Equal(resp.Kvs[0].Value, want) {
		s.log.Warn("override change: etcd's answer did not come in time, but reading back shows the change applied",
			"store", s.Describe(), "revision", resp.Kvs[0].ModRevision, "err", werr.Error())
		return resp.Kvs[0].ModRevision, nil
	}
	return 0, s.unknownError(werr, err)
}

// readDownError wraps err as a failed read of the fleet: nothing was to change.
func (s *Etcd) readDownError(err error) error {
	if !errors.Is(err, context.Canceled) {
		s.markDown(err)
	}
	return fmt.Errorf("%w (etcd %s: %v): the fleet's instances cannot be read", ErrDown, s.endpoints, err)
}

func (s *Etcd) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, s.timeout)
}

// list reads every override key.
func (s *Etcd) list(ctx context.Context, cli *clientv3.Client) (map[string]kvEntry, int64, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := cli.Get(rctx, s.cfg.Prefix+keyOverrides, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, err
	}
	kv := make(map[string]kvEntry, len(resp.Kvs))
	for _, e := range resp.Kvs {
		kv[strings.TrimPrefix(string(e.Key), s.cfg.Prefix+keyOverrides)] = kvEntry{val: e.Value, mod: e.ModRevision}
	}
	return kv, resp.Header.Revision, nil
}

// effectiveLocked is the overrides this instance serves: the store's keys with any
// local change on top. s.mu is held.
func (s *Etcd) effectiveLocked() conf.Overrides {
	kv := s.kv
	if s.pending != nil {
		kv = s.pending.overlay(kv)
	}
	o, bad := s.decodeKeepingLocked(kv)
	s.noteBadLocked(bad)
	o.Revision = s.rev
	return o
}

// decodeKeepingLocked decodes kv as decodeOverrides does, except that a key whose
// value does not decode keeps the value this instance served for it: an emergency
// switch (rollback, a cap, a cut-off) or a split never changes because of a value
// nobody could have meant, such as a truncated {"on":tru. It returns the keys that
// did not decode and what each keeps. s.mu is held.
func (s *Etcd) decodeKeepingLocked(kv map[string]kvEntry) (conf.Overrides, []BadKey) {
	o, errs := decodeOverrides(kv)
	if len(errs) == 0 {
		return o, nil
	}
	prev, from := s.servedLocked()
	kept := maps.Clone(kv)
	var bad []BadKey
	for _, err := range errs {
		var ke *keyError
		if !errors.As(err, &ke) {
			s.log.Error("override key ignored: its value does not decode", "err", err.Error())
			continue
		}
		b := BadKey{Key: ke.key, Error: err.Error(), Revision: kv[ke.key].mod, Kept: from}
		if v, ok := prev[ke.key]; ok {
			kept[ke.key] = kvEntry{val: v, mod: kv[ke.key].mod}
			b.Value = json.RawMessage(v)
		} else {
			delete(kept, ke.key) // this instance served no override for it
		}
		bad = append(bad, b)
	}
	o, errs = decodeOverrides(kept)
	for _, err := range errs { // the kept values are this store's own encoding
		s.log.Error("override key ignored: its value does not decode, nor does the value kept for it", "err", err.Error())
	}
	slices.SortFunc(bad, func(a, b BadKey) int { return cmp.Compare(a.Key, b.Key) })
	return o, bad
}

// servedLocked returns the keys of the overrides this instance serves (those last
// handed out) and KeptServed; before anything was handed out, those of the state_dir
// mirror (what it served before a restart) and KeptMirror; without a mirror, nothing
// and KeptFile. s.mu is held.
func (s *Etcd) servedLocked() (map[string][]byte, string) {
	if s.delivered != nil {
		var o conf.Overrides
		if err := json.Unmarshal(s.delivered, &o); err == nil {
			return encodeOverrides(o), KeptServed
		}
	}
	if s.mirror != nil && s.mirror.exists() {
		o, err := s.mirror.Load()
		if err == nil {
			return encodeOverrides(o), KeptMirror
		}
		s.log.Error("override mirror does not load: an override key that does not decode falls back to the config file's value",
			"err", err.Error())
	}
	return nil, KeptFile
}

// noteBadLocked records bad as the keys that do not decode, logging each new one
// loudly and each that decodes again. A key still bad at the same revision keeps what
// it was first reported with. s.mu is held.
func (s *Etcd) noteBadLocked(bad []BadKey) {
	if len(bad) == 0 && len(s.bad) == 0 {
		return
	}
	next := make(map[string]BadKey, len(bad))
	for _, b := range bad {
		was, seen := s.bad[b.Key]
		if seen && was.Revision == b.Revision {
			next[b.Key] = was
			continue
		}
		b.Since = time.Now().UTC()
		if seen {
			b.Since = was.Since
		}
		next[b.Key] = b
		kept := "the value it served before"
		switch {
		case b.Kept == KeptMirror && b.Value != nil:
			kept = "the value of its state_dir mirror (it started with the key already bad)"
		case b.Value == nil:
			kept = "no override for it: the config file's value"
		}
		s.log.Error("override key IGNORED: its value in the store does not decode; this instance keeps serving "+kept+"; write a good value (or delete the key) to change it",
			"key", keyOverrides+b.Key, "revision", b.Revision, "err", b.Error, "kept", b.Kept, "kept_value", string(b.Value), "store", s.Describe())
	}
	for k, was := range s.bad {
		if _, still := next[k]; !still {
			s.log.Warn("override key decodes again: its value in the store is served", "key", keyOverrides+k, "bad_since", was.Since)
		}
	}
	s.bad = next
}

// Load implements Store: it lists the overrides in etcd, or, when etcd does
// not answer within dial_timeout, returns the mirror in state_dir (and reports the
// store down) so that the gateway starts and serves on its last values.
func (s *Etcd) Load() (conf.Overrides, error) {
	pend, err := s.loadPending()
	if err != nil {
		return conf.Overrides{}, err
	}
	s.mu.Lock()
	s.pending = pend
	s.mu.Unlock()
	cli, err := s.client()
	var kv map[string]kvEntry
	var at int64
	if err == nil {
		kv, at, err = s.list(context.Background(), cli)
	}
	if err != nil {
		s.markDown(err)
		var o conf.Overrides
		started := "mirror"
		if s.mirror != nil {
			if o, err = s.mirror.Load(); err != nil {
				return o, fmt.Errorf("etcd unreachable and the mirror does not load: %w", err)
			}
		}
		if s.mirror == nil || !s.mirror.exists() {
			started = cmp.Or(s.cfg.OnDownAtStart, "rollback")
			if started == "rollback" {
				o.Rollback = conf.Rollback{On: true, Who: "shiftgate: started while etcd was down, with no mirror in state_dir", At: time.Now().UTC()}
			}
			s.log.Error("override store unreachable at start and state_dir holds no mirror: the fleet's overrides are unknown; serving per fleet.etcd.on_down_at_start until etcd answers",
				"store", s.Describe(), "on_down_at_start", started, "rollback", o.Rollback.On)
		} else {
			s.log.Warn("override store unreachable at start: serving the mirror of the last applied overrides",
				"store", s.Describe(), "revision", o.Revision, "routes", len(o.Routes), "rollback", o.Rollback.On)
		}
		s.mu.Lock()
		s.health.StartedWith = started
		s.kv, s.rev = fromOverrides(o), o.Revision
		s.mu.Unlock()
		s.handOut(o)
		return o, nil
	}
	s.markUp()
	s.mu.Lock()
	s.kv, s.kvRev, s.rev = kv, at, maxMod(kv)
	o := s.effectiveLocked()
	s.mu.Unlock()
	s.handOut(o)
	s.saveMirror(o)
	return o, nil
}

// fromOverrides seeds the key view from a mirror, for a start during an outage.
func fromOverrides(o conf.Overrides) map[string]kvEntry {
	kv := map[string]kvEntry{}
	for k, v := range encodeOverrides(o) {
		kv[k] = kvEntry{val: v}
	}
	return kv
}

// handOut records o as the overrides this instance serves (a caller applies it).
func (s *Etcd) handOut(o conf.Overrides) {
	s.handOutAt(o, false)
}

// handOutAt is handOut; listed marks a full listing, which is authoritative even when
// its revision is lower than before (a cluster restored from a backup).
func (s *Etcd) handOutAt(o conf.Overrides, listed bool) {
	b, _ := json.Marshal(o)
	s.mu.Lock()
	s.delivered, s.deliveredRev = b, max(s.deliveredRev, o.Revision)
	if listed {
		s.deliveredRev = o.Revision
	}
	s.health.AppliedRevision = o.Revision
	s.mu.Unlock()
	select {
	case s.appliedSignal <- struct{}{}:
	default:
	}
}

func (s *Etcd) saveMirror(o conf.Overrides) {
	if s.mirror == nil {
		return
	}
	if err := s.mirror.Save(o); err != nil {
		s.log.Error("override mirror not written: a restart during an etcd outage would serve older values",
			"err", err.Error())
	}
}

// maxWriteTries bounds the retries of a write that lost a race with another writer.
const maxWriteTries = 10

// Update implements Store: it reads the overrides, applies change and writes
// every changed key in one transaction, guarded by the revision of the last change so
// that concurrent writers retry instead of overwriting each other. With etcd down it
// changes nothing and returns an error wrapping ErrDown. When the transaction was
// sent but its answer did not come, and reading back cannot show that it applied, the
// error wraps ErrOutcomeUnknown instead: the change may have taken effect.
func (s *Etcd) Update(ctx context.Context, change func(*conf.Overrides) error) (conf.Overrides, error) {
	cli, err := s.client()
	if err != nil {
		return s.current(), s.downError(err)
	}
	if err := s.reconcile(ctx, cli); err != nil {
		return s.current(), s.downError(err)
	}
	for try := 1; try <= maxWriteTries; try++ {
		kv, _, err := s.list(ctx, cli)
		if err != nil {
			return s.current(), s.downError(err)
		}
		// A key that does not decode stands as this instance serves it: the change is
		// judged and diffed against that, and leaves the key alone unless it changes it.
		s.mu.Lock()
		cur, _ := s.decodeKeepingLocked(kv)
		s.mu.Unlock()
		cur.Revision = maxMod(kv)
		next := cur.Clone()
		if err := change(&next); err != nil {
			return cur, err
		}
		puts, dels := diffOverrides(cur, next)
		keys := changedKeys(puts, dels)
		if len(keys) == 0 {
			return cur, nil
		}
		rec := lastChange{Who: whoChanged(next, keys), At: time.Now().UTC(), Instance: s.instanceName(), Keys: keys}
		if s.beforeCommit != nil {
			s.beforeCommit()
		}
		rev, ok, whole, err := s.commit(ctx, cli, kv, puts, dels, rec, true)
		if err != nil && !errors.Is(err, errPartial) && outcomeUnknown(err) {
			// Sent, perhaps applied: only etcd can say. Its record found, the
			// change stands as if the answer had come.
			rev, err = s.readBack(ctx, cli, rec, err)
			ok, whole = err == nil, true
		}
		if err != nil {
			if errors.Is(err, errPartial) || errors.Is(err, ErrOutcomeUnknown) {
				return cur, err
			}
			return cur, s.downError(err)
		}
		if !ok {
			backoff(ctx, try) // another writer came first: read again
			continue
		}
		s.markUp()
		next.Revision = rev
		s.deliverMu.Lock()
		s.mu.Lock()
		for k, v := range puts {
			kv[k] = kvEntry{val: v, mod: rev}
		}
		for _, k := range dels {
			delete(kv, k)
		}
		kv[keyLastChange] = kvEntry{mod: rev}
		// The watch brings the same keys; taking them now makes status right at once.
		// A change written in parts may have let another writer in between: then
		// only the watch knows the whole story.
		if whole && rev > s.kvRev {
			s.kv, s.kvRev, s.rev = kv, rev, rev
		}
		s.mu.Unlock()
		s.handOut(next)
		s.saveMirror(next)
		s.deliverMu.Unlock()
		s.log.Info("override change written to the fleet", "store", s.Describe(), "revision", rev, "keys", len(keys), "who", rec.Who)
		return next, nil
	}
	return s.current(), fmt.Errorf("override change not written: %d other writers came first, try again", maxWriteTries)
}

// commit writes puts and dels and the last-change record in one transaction. With
// guard, it succeeds only if no key it read in kv changed since (ok false otherwise).
// When etcd refuses a transaction that large (its --max-txn-ops, 128 by default) it
// writes the change in parts, in order, and whole is false.
func (s *Etcd) commit(ctx context.Context, cli *clientv3.Client, kv map[string]kvEntry,
	puts map[string][]byte, dels []string, rec lastChange, guard bool) (rev int64, ok, whole bool, err error) {
	p := s.cfg.Prefix + keyOverrides
	var cmps []clientv3.Cmp
	if guard {
		// Every change writes last-change, so one comparison catches any writer;
		// the changed keys are compared too, against a hand edit.
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p+keyLastChange), "=", kv[keyLastChange].mod))
	}
	ops := make([]clientv3.Op, 0, len(puts)+len(dels)+1)
	for _, k := range changedKeys(puts, dels) {
		if guard && len(cmps) < maxGuardedKeys {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p+k), "=", kv[k].mod))
		}
		if v, put := puts[k]; put {
			ops = append(ops, clientv3.OpPut(p+k, string(v)))
		} else {
			ops = append(ops, clientv3.OpDelete(p+k))
		}
	}
	b, _ := json.Marshal(rec)
	ops = append(ops, clientv3.OpPut(p+keyLastChange, string(b)))
	rev, ok, err = s.txn(ctx, cli, cmps, ops)
	if !errors.Is(err, rpctypes.ErrTooManyOps) {
		return rev, ok, true, err
	}
	s.log.Warn("etcd refused this change as one transaction (its --max-txn-ops is too low): writing it in parts, which other instances may apply a moment apart; run etcd with --max-txn-ops above the number of routes + 2",
		"keys", len(ops))
	for i := 0; i < len(ops); i += txnPart {
		part := ops[i:min(i+txnPart, len(ops))]
		var pc []clientv3.Cmp
		if i == 0 && guard {
			pc = cmps[:1]
		}
		rev, ok, err = s.txn(ctx, cli, pc, part)
		if err != nil || !ok {
			if i > 0 {
				return rev, ok, false, fmt.Errorf("%w: %d of %d keys were written before: %v; make the change again", errPartial, i, len(ops)-1, err)
			}
			return rev, ok, false, err
		}
	}
	return rev, true, false, nil
}

// txnPart is the size of the parts of a change too large for one transaction.
const txnPart = 100

// errPartial is wrapped by the error of a change written in parts that failed midway.
var errPartial = errors.New("override change written only in part")

func (s *Etcd) txn(ctx context.Context, cli *clientv3.Client, cmps []clientv3.Cmp, ops []clientv3.Op) (int64, bool, error) {
	rctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := cli.Txn(rctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, false, err
	}
	return resp.Header.Revision, resp.Succeeded, nil
}

// backoff waits before a write's next try, growing and jittered so that writers that
// collided spread out.
func backoff(ctx context.Context, try int) {
	d := time.Duration(rand.Int64N(int64(5*time.Millisecond) << min(try, 6)))
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// maxGuardedKeys caps the comparisons of one transaction well under etcd's default
// --max-txn-ops (128); the last-change comparison guards the rest.
const maxGuardedKeys = 64

// current returns the overrides this instance serves.
func (s *Etcd) current() conf.Overrides {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.effectiveLocked()
}

// equalDelivered reports whether o encodes to b, the value handed out last.
func equalDelivered(o conf.Overrides, b []byte) bool {
	ob, _ := json.Marshal(o)
	return bytes.Equal(ob, b)
}

// Fleet implements Store: an etcd store is shared by a fleet.
func (s *Etcd) Fleet() Fleet { return s }
