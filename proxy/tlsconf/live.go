package tlsconf

import (
	"crypto/tls"
	"errors"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Live holds the certificates in service: the traffic listener's Set behind one
// atomic pointer, and the client certificates upstream regions present for mutual
// TLS. Reload reads their files again: a pair whose files changed and load is put in
// service for new handshakes at once; one that does not load (a renewal half
// written, a key that does not match, a certificate not valid now) is refused and the
// last good one keeps serving. Its methods are safe for concurrent use; handshakes
// (GetCertificate, ClientCert.Get) take no lock.
type Live struct {
	set atomic.Pointer[Set]

	// OnEvent, when set, receives every reload outcome that changes something: a
	// new certificate in service, or a refused one (once per distinct content of
	// the files). It is called with Live's lock held: it must not call back.
	OnEvent func(Event)
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	server  []Pair
	pairs   map[Pair]*livePair
	bundles map[string]*liveBundle // CA bundles by file
	changed chan struct{}
}

// livePair is one pair in service; cur is read by handshakes without a lock, the
// rest only under Live.mu.
type livePair struct {
	cur    atomic.Pointer[Cert]
	server bool
	client bool
	reloads
}

// reloads is what a watched file keeps besides its load in service: when that went
// in service and the last refusal, reported once per content. Used under Live.mu.
type reloads struct {
	err      error     // the last refusal, nil once a load succeeds
	errAt    time.Time // when it was refused
	badHash  uint64    // the content refused, reported once
	reloaded time.Time // when the load in service was put there
}

// unchanged notes a reread that found the content in service.
func (r *reloads) unchanged() { r.err, r.badHash = nil, 0 }

// loaded notes a new load put in service at now.
func (r *reloads) loaded(now time.Time) { r.err, r.badHash, r.reloaded = nil, 0, now }

// refused notes a refused load of content h; false when the same content was
// refused last time (nothing new to report).
func (r *reloads) refused(h uint64, err error, now time.Time) bool {
	if r.badHash == h && r.err != nil {
		return false
	}
	r.err, r.errAt, r.badHash = err, now, h
	return true
}

// Event is a reload outcome for one pair: a new certificate in service (Cert set) or
// a refusal (Err set, a *LoadError naming the file and the reason); Old is the
// certificate that serves on. For a CA bundle, Bundle names its file and CAs,
// OldCAs and Err say the same of it.
type Event struct {
	Pair Pair
	Cert *Cert
	Old  *Cert
	Err  error

	Bundle string
	CAs    *CAs
	OldCAs *CAs
}

// NewLive returns an empty Live: no server certificates, no client certificates.
func NewLive() *Live {
	l := &Live{pairs: map[Pair]*livePair{}, bundles: map[string]*liveBundle{}, changed: make(chan struct{}, 1)}
	l.set.Store(NewSet(nil))
	return l
}

func (l *Live) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// GetCertificate is tls.Config.GetCertificate over the Set in service.
func (l *Live) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := l.set.Load().Select(hello)
	if c == nil {
		return nil, errNoServerCert
	}
	return c.TLS, nil
}

var errNoServerCert = errors.New("tls: no certificate configured")

// Set returns the server certificates in service.
func (l *Live) Set() *Set { return l.set.Load() }

// SetServer makes pairs the traffic listener's certificates, in this order (the
// first is the default). A pair new to Live must load, or nothing changes and the
// error (a *LoadError) is returned; a pair already in service is read again, and
// keeps its last good certificate if that fails. Pairs no longer used are forgotten.
func (l *Live) SetServer(pairs []Pair) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	fresh := map[Pair]*Cert{}
	for _, p := range pairs {
		if lp := l.pairs[p]; lp != nil {
			l.reloadLocked(p, lp)
			continue
		}
		c, err := Load(p)
		if err != nil {
			return err
		}
		fresh[p] = c
	}
	for p, c := range fresh {
		lp := &livePair{reloads: reloads{reloaded: l.now()}}
		lp.cur.Store(c)
		l.pairs[p] = lp
	}
	for p, lp := range l.pairs {
		lp.server = slices.Contains(pairs, p)
	}
	l.server = slices.Clone(pairs)
	l.dropUnusedLocked()
	l.publishLocked()
	return nil
}

// ClientCert is a client certificate in service; Get always returns the latest
// good one.
type ClientCert struct{ lp *livePair }

// Get is tls.Config.GetClientCertificate.
func (c *ClientCert) Get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.lp.cur.Load().TLS, nil
}

// Current returns the certificate in service.
func (c *ClientCert) Current() *Cert { return c.lp.cur.Load() }

// AddClients puts pairs in service as client certificates (those already in
// service are read again) and returns their handles, in order. A new pair must load
// or nothing changes. Pairs are only added: RetainClients, once the config that
// names them is in service, drops the others, so a refused config takes nothing
// out of service.
func (l *Live) AddClients(pairs []Pair) ([]*ClientCert, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fresh := map[Pair]*Cert{}
	for _, p := range pairs {
		if lp := l.pairs[p]; lp != nil {
			l.reloadLocked(p, lp)
			continue
		}
		if _, dup := fresh[p]; dup {
			continue
		}
		c, err := Load(p)
		if err != nil {
			return nil, err
		}
		fresh[p] = c
	}
	for p, c := range fresh {
		lp := &livePair{reloads: reloads{reloaded: l.now()}}
		lp.cur.Store(c)
		l.pairs[p] = lp
	}
	out := make([]*ClientCert, len(pairs))
	for i, p := range pairs {
		lp := l.pairs[p]
		lp.client = true
		out[i] = &ClientCert{lp: lp}
	}
	l.changedLocked()
	return out, nil
}

// RetainClients keeps only pairs as client certificates; the others stop being
// reloaded (handles to them keep their last certificate).
func (l *Live) RetainClients(pairs []Pair) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, lp := range l.pairs {
		lp.client = slices.Contains(pairs, p)
	}
	l.dropUnusedLocked()
}

// dropUnusedLocked forgets pairs neither side uses and tells the watcher.
func (l *Live) dropUnusedLocked() {
	for p, lp := range l.pairs {
		if !lp.server && !lp.client {
			delete(l.pairs, p)
		}
	}
	l.changedLocked()
}

// changedLocked tells the watcher the files may have changed; it never blocks.
func (l *Live) changedLocked() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// Changed receives (without blocking the sender) whenever the set of pairs may have
// changed, so a watcher can follow the files.
func (l *Live) Changed() <-chan struct{} { return l.changed }

// Reload reads every pair's files and every CA bundle again and puts changed ones in
// service; one that does not load, or is not valid now, is refused and the old one
// kept. It reports whether anything changed.
func (l *Live) Reload() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := false
	for p, lp := range l.pairs {
		changed = l.reloadLocked(p, lp) || changed
	}
	if changed {
		l.publishLocked()
	}
	for f, lb := range l.bundles {
		changed = l.reloadBundleLocked(f, lb) || changed
	}
	return changed
}

// reloadLocked reads one pair again; true when a new certificate went in service.
func (l *Live) reloadLocked(p Pair, lp *livePair) bool {
	old := lp.cur.Load()
	certPEM, err := os.ReadFile(p.CertFile)
	if err != nil {
		return l.refuseLocked(p, lp, 1, &LoadError{File: p.CertFile, Reason: readReason(err)})
	}
	keyPEM, err := os.ReadFile(p.KeyFile)
	if err != nil {
		return l.refuseLocked(p, lp, 2, &LoadError{File: p.KeyFile, Reason: readReason(err)})
	}
	h := xxhash.Sum64(certPEM) ^ xxhash.Sum64(keyPEM)*31
	if h == old.hash {
		lp.unchanged()
		return false
	}
	c, err := parse(p, certPEM, keyPEM)
	if err == nil {
		err = c.CheckValidity(l.now())
	}
	if err != nil {
		return l.refuseLocked(p, lp, h, err)
	}
	lp.cur.Store(c)
	lp.loaded(l.now())
	if l.OnEvent != nil {
		l.OnEvent(Event{Pair: p, Cert: c, Old: old})
	}
	return true
}

// refuseLocked records a refused load; the event goes out once per content (h), so
// a file that stays broken is not reported on every look. It returns false: nothing
// changed in service.
func (l *Live) refuseLocked(p Pair, lp *livePair, h uint64, err error) bool {
	if lp.refused(h, err, l.now()) && l.OnEvent != nil {
		l.OnEvent(Event{Pair: p, Old: lp.cur.Load(), Err: err})
	}
	return false
}

func (l *Live) publishLocked() {
	certs := make([]*Cert, 0, len(l.server))
	for _, p := range l.server {
		if lp := l.pairs[p]; lp != nil {
			certs = append(certs, lp.cur.Load())
		}
	}
	l.set.Store(NewSet(certs))
}

// filesLocked returns every file of every pair and CA bundle in service, sorted,
// without duplicates.
func (l *Live) filesLocked() []string {
	var out []string
	for p := range l.pairs {
		out = append(out, p.CertFile, p.KeyFile)
	}
	for f := range l.bundles {
		out = append(out, f)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Files returns every file of every pair and CA bundle in service, sorted, without
// duplicates.
func (l *Live) Files() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.filesLocked()
}

// Status is one certificate in service as status and metrics show it.
type Status struct {
	Name     string    `json:"name"`
	Names    []string  `json:"names"`
	CertFile string    `json:"cert_file"`
	KeyFile  string    `json:"key_file"`
	Use      string    `json:"use"` // server, client or both
	NotAfter time.Time `json:"not_after"`
	// Loaded is when the certificate in service was loaded.
	Loaded time.Time `json:"loaded"`
	// Error is the last refused reload of this pair (the certificate above keeps
	// serving), cleared by the next successful load.
	Error   string    `json:"reload_error,omitempty"`
	ErrorAt time.Time `json:"reload_error_at,omitzero"`
}

// Status lists the certificates in service, server ones first in config order.
func (l *Live) Status() []Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Status
	seen := map[Pair]bool{}
	add := func(p Pair) {
		lp := l.pairs[p]
		if lp == nil || seen[p] {
			return
		}
		seen[p] = true
		c := lp.cur.Load()
		s := Status{Name: c.Name(), Names: c.Names, CertFile: p.CertFile, KeyFile: p.KeyFile,
			NotAfter: c.NotAfter, Loaded: lp.reloaded}
		switch {
		case lp.server && lp.client:
			s.Use = "both"
		case lp.server:
			s.Use = "server"
		default:
			s.Use = "client"
		}
		if lp.err != nil {
			s.Error, s.ErrorAt = lp.err.Error(), lp.errAt
		}
		out = append(out, s)
	}
	for _, p := range l.server {
		add(p)
	}
	var rest []Pair
	for p := range l.pairs {
		if !seen[p] {
			rest = append(rest, p)
		}
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].CertFile < rest[j].CertFile })
	for _, p := range rest {
		add(p)
	}
	return out
}
