package tlsconf

import (
	"crypto/x509"
	"fmt"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/shiftgate/shiftgate/conf"
)

// CAs is a CA bundle loaded from a PEM file: the pool upstream certificates are
// verified against, and what status shows of it. It is immutable once loaded.
type CAs struct {
	File string
	Pool *x509.CertPool
	// Subjects are the common names (else the full subjects) of its certificates,
	// in file order.
	Subjects []string
	// NotAfter is the earliest end of validity among its certificates: the bundle
	// stops verifying some upstreams then.
	NotAfter time.Time
	// latest is the latest end of validity: past it, the bundle verifies nothing.
	latest time.Time
	hash   uint64
}

// LoadCABundle reads a PEM bundle of CA certificates. Every CERTIFICATE block must
// parse, and a BEGIN line that does not end in a whole block (a file half written)
// is an error: AppendCertsFromPEM would skip both quietly and trust fewer CAs than
// the file names. Other PEM blocks are skipped. A file without any certificate is
// an error (an empty pool would refuse every upstream, quietly). Errors are
// *LoadError.
func LoadCABundle(file string) (*CAs, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, &LoadError{File: file, Reason: readReason(err)}
	}
	return parseCAs(file, b)
}

func parseCAs(file string, b []byte) (*CAs, error) {
	certs, err := conf.ParseCABundle(b)
	if err != nil {
		return nil, &LoadError{File: file, Reason: err.Error()}
	}
	c := &CAs{File: file, Pool: x509.NewCertPool(), hash: xxhash.Sum64(b)}
	for _, cert := range certs {
		c.Pool.AddCert(cert)
		name := cert.Subject.CommonName
		if name == "" {
			name = cert.Subject.String()
		}
		c.Subjects = append(c.Subjects, name)
		if c.NotAfter.IsZero() || cert.NotAfter.Before(c.NotAfter) {
			c.NotAfter = cert.NotAfter
		}
		if cert.NotAfter.After(c.latest) {
			c.latest = cert.NotAfter
		}
	}
	return c, nil
}

// LoadCAs reads a PEM bundle of CA certificates into a pool, as LoadCABundle.
func LoadCAs(file string) (*x509.CertPool, error) {
	c, err := LoadCABundle(file)
	if err != nil {
		return nil, err
	}
	return c.Pool, nil
}

// CABundle is a CA bundle in service; Current always returns the latest good load
// of its file.
type CABundle struct{ lb *liveBundle }

// Current returns the bundle in service.
func (b *CABundle) Current() *CAs { return b.lb.cur.Load() }

// liveBundle is one bundle in service; cur is read by dialers without a lock, the
// rest only under Live.mu.
type liveBundle struct {
	cur atomic.Pointer[CAs]
	reloads
}

// AddCAs puts the CA bundles in files in service (those already in service are read
// again, keeping their last good load if that fails) and returns their handles, in
// order. A file new to Live must load or nothing changes. Bundles are only added:
// RetainCAs, once the config that names them is in service, drops the others.
func (l *Live) AddCAs(files []string) ([]*CABundle, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fresh := map[string]*CAs{}
	for _, f := range files {
		if lb := l.bundles[f]; lb != nil {
			l.reloadBundleLocked(f, lb)
			continue
		}
		if _, dup := fresh[f]; dup {
			continue
		}
		c, err := LoadCABundle(f)
		if err != nil {
			return nil, err
		}
		fresh[f] = c
	}
	for f, c := range fresh {
		lb := &liveBundle{reloads: reloads{reloaded: l.now()}}
		lb.cur.Store(c)
		l.bundles[f] = lb
	}
	out := make([]*CABundle, len(files))
	for i, f := range files {
		out[i] = &CABundle{lb: l.bundles[f]}
	}
	l.changedLocked()
	return out, nil
}

// RetainCAs keeps only the bundles of files in service; the others stop being
// reloaded (handles to them keep their last load).
func (l *Live) RetainCAs(files []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := map[string]bool{}
	for _, f := range files {
		keep[f] = true
	}
	for f := range l.bundles {
		if !keep[f] {
			delete(l.bundles, f)
		}
	}
	l.changedLocked()
}

// reloadBundleLocked reads one bundle again; true when a new load went in service.
// A bundle that does not load, or whose every certificate has expired, is refused
// and the old one kept.
func (l *Live) reloadBundleLocked(f string, lb *liveBundle) bool {
	old := lb.cur.Load()
	b, err := os.ReadFile(f)
	if err != nil {
		return l.refuseBundleLocked(f, lb, 1, &LoadError{File: f, Reason: readReason(err)})
	}
	h := xxhash.Sum64(b)
	if h == old.hash {
		lb.unchanged()
		return false
	}
	c, err := parseCAs(f, b)
	if err == nil && l.now().After(c.latest) {
		err = &LoadError{File: f, Reason: fmt.Sprintf("every certificate in the bundle has expired (the last at %s)", c.latest.UTC().Format(time.RFC3339))}
	}
	if err != nil {
		return l.refuseBundleLocked(f, lb, h, err)
	}
	lb.cur.Store(c)
	lb.loaded(l.now())
	if l.OnEvent != nil {
		l.OnEvent(Event{Bundle: f, CAs: c, OldCAs: old})
	}
	return true
}

// refuseBundleLocked records a refused bundle, reported once per content (h).
func (l *Live) refuseBundleLocked(f string, lb *liveBundle, h uint64, err error) bool {
	if lb.refused(h, err, l.now()) && l.OnEvent != nil {
		l.OnEvent(Event{Bundle: f, OldCAs: lb.cur.Load(), Err: err})
	}
	return false
}

// CAStatus is one CA bundle in service as status shows it.
type CAStatus struct {
	File string `json:"file"`
	// Regions are the regions whose upstreams it verifies (filled in by the proxy).
	Regions  []string  `json:"regions,omitempty"`
	Subjects []string  `json:"subjects"`
	NotAfter time.Time `json:"not_after"` // the earliest end of validity among them
	Loaded   time.Time `json:"loaded"`
	// Error is the last refused reload (the bundle above stays in use), cleared by
	// the next successful load.
	Error   string    `json:"reload_error,omitempty"`
	ErrorAt time.Time `json:"reload_error_at,omitzero"`
}

// CAStatus lists the CA bundles in service, by file.
func (l *Live) CAStatus() []CAStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]CAStatus, 0, len(l.bundles))
	for f, lb := range l.bundles {
		c := lb.cur.Load()
		s := CAStatus{File: f, Subjects: c.Subjects, NotAfter: c.NotAfter, Loaded: lb.reloaded}
		if lb.err != nil {
			s.Error, s.ErrorAt = lb.err.Error(), lb.errAt
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	return out
}
