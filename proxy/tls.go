package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/tlsconf"
	"github.com/shiftgate/shiftgate/proxy/wire"
)

// This file is the proxy's TLS: the traffic listener's certificates (tlsconf.Live,
// reloaded from disk), the listener that bounds and counts handshakes, the TLS
// settings of each region's upstreams, and what status and metrics show of them.

// tlsState is the Server's TLS runtime. The certificate store lives as long as the
// Server; the listener configuration is swapped with each config.
type tlsState struct {
	live    *tlsconf.Live
	watcher *tlsconf.Watcher
	// config is the traffic listener's configuration for new connections.
	config atomic.Pointer[tls.Config]

	handshakes *counter
	errors     map[string]*counter // by tlsconf reason
	reloads    *counter
	refused    *counter
	caReloads  *counter
	caRefused  *counter
}

func (s *Server) initTLS() {
	t := &tlsState{live: tlsconf.NewLive(), errors: map[string]*counter{}}
	t.live.Now = s.now
	t.live.OnEvent = s.onCertEvent
	t.watcher = tlsconf.NewWatcher(t.live)
	t.watcher.OnError = func(err error) { s.log.Error("certificate watcher", "err", err) }
	t.handshakes = s.metrics.counter("shiftgate_tls_handshakes_total")
	for _, r := range tlsconf.Reasons {
		t.errors[r] = s.metrics.counter(`shiftgate_tls_handshake_errors_total{reason=%q}`, r)
	}
	t.reloads = s.metrics.counter("shiftgate_tls_certificate_reloads_total")
	t.refused = s.metrics.counter("shiftgate_tls_certificate_reload_errors_total")
	t.caReloads = s.metrics.counter("shiftgate_tls_ca_bundle_reloads_total")
	t.caRefused = s.metrics.counter("shiftgate_tls_ca_bundle_reload_errors_total")
	s.metrics.set.RegisterMetricsWriter(func(w io.Writer) {
		// A gauge operators alert on: the end of validity, as a Unix time.
		for _, c := range t.live.Status() {
			fmt.Fprintf(w, "shiftgate_tls_certificate_expiry_seconds{name=%q,file=%q,use=%q} %d\n",
				c.Name, c.CertFile, c.Use, c.NotAfter.Unix())
		}
		for _, b := range t.live.CAStatus() {
			fmt.Fprintf(w, "shiftgate_tls_ca_bundle_expiry_seconds{file=%q} %d\n", b.File, b.NotAfter.Unix())
		}
	})
	s.tls = t
}

// onCertEvent logs and counts a certificate or CA bundle reload; called under
// Live's lock.
func (s *Server) onCertEvent(ev tlsconf.Event) {
	if ev.Bundle != "" {
		s.onCAEvent(ev)
		return
	}
	if ev.Err != nil {
		s.tls.refused.Inc()
		var le *tlsconf.LoadError
		file, reason := ev.Pair.CertFile, ev.Err.Error()
		if errors.As(ev.Err, &le) {
			file, reason = le.File, le.Reason
		}
		s.log.Error("certificate refused; the last good one keeps serving", "file", file, "reason", reason,
			"serving", ev.Old.Name(), "serving_not_after", ev.Old.NotAfter)
		return
	}
	s.tls.reloads.Inc()
	s.log.Info("certificate reloaded", "file", ev.Pair.CertFile, "name", ev.Cert.Name(),
		"not_after", ev.Cert.NotAfter, "previous_not_after", ev.Old.NotAfter)
}

// onCAEvent logs and counts a CA bundle reload; called under Live's lock.
func (s *Server) onCAEvent(ev tlsconf.Event) {
	if ev.Err != nil {
		s.tls.caRefused.Inc()
		file, reason := ev.Bundle, ev.Err.Error()
		var le *tlsconf.LoadError
		if errors.As(ev.Err, &le) {
			file, reason = le.File, le.Reason
		}
		s.log.Error("CA bundle refused; the last good one stays in use for upstream connections", "file", file, "reason", reason,
			"in_use", strings.Join(ev.OldCAs.Subjects, ", "), "in_use_not_after", ev.OldCAs.NotAfter)
		return
	}
	s.tls.caReloads.Inc()
	s.log.Info("CA bundle reloaded; new upstream connections verify against it", "file", ev.Bundle,
		"cas", strings.Join(ev.CAs.Subjects, ", "), "not_after", ev.CAs.NotAfter,
		"previous", strings.Join(ev.OldCAs.Subjects, ", "))
}

// applyServerTLS puts the config's traffic certificates and listener settings in
// service; a certificate new to the server that does not load refuses the config.
// Called while putting a new config into service.
func (s *Server) applyServerTLS(c *conf.Config) error {
	var pairs []tlsconf.Pair
	if c.TLS != nil {
		for _, p := range c.TLS.Certs {
			pairs = append(pairs, tlsconf.Pair{CertFile: p.CertFile, KeyFile: p.KeyFile})
		}
	}
	if err := s.tls.live.SetServer(pairs); err != nil {
		return fmt.Errorf("tls.certs: %w", err)
	}
	if c.TLS != nil {
		s.tls.config.Store(tlsconf.ServerConfig(s.tls.live, c.TLS.MinVersionID))
	}
	return nil
}

// ServeTLS accepts TLS connections on ln until Shutdown. The handshake runs on the
// connection's goroutine, bounded by timeouts.request_head, and its failures are
// counted by reason; the requests that follow are served as on the plain listener.
// The config must have a tls block.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.tls.config.Load() == nil {
		return errors.New("serve TLS: the config has no tls block")
	}
	tln := &tlsconf.Listener{
		// Raw reads and writes under the encryption, as on the plain listener.
		Listener:         wire.RawListener{Listener: ln},
		Config:           s.tls.config.Load,
		HandshakeTimeout: s.http.ReadTimeout,
		OnHandshake: func(reason string, err error) {
			if reason == "" {
				s.tls.handshakes.Inc()
				return
			}
			s.tls.errors[reason].Inc()
		},
	}
	s.serving.Store(true)
	// Idle TLS connections park like plain ones (wire.Parking), with their TLS
	// state: never detached from their net.Conn.
	err := s.http.Serve(&wire.LineListener{Listener: peakListener{tln, s}, Park: s.parking})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// WatchCertificates reloads certificate files (the listener's and the upstream
// client certificates) when they change, until ctx ends. A renewed certificate is
// served on new connections; one that does not load is refused and logged, and the
// last good one keeps serving.
func (s *Server) WatchCertificates(ctx context.Context) error { return s.tls.watcher.Run(ctx) }

// ReloadCertificates reads every certificate file again now (SIGHUP).
func (s *Server) ReloadCertificates() { s.tls.watcher.Trigger() }

// regionTLS is a region's upstream TLS, prepared once per config.
type regionTLS struct {
	// key identifies the settings, so that upstream clients with equal ones are
	// kept across reloads. The CA bundle and client certificate are named by file:
	// their contents are followed in service (tlsconf.Live).
	key    string
	opts   tlsconf.ClientOptions
	caFile string
}

// prepareUpstreamTLS loads the CA bundles and client certificates the config's
// regions name (those already in service are read again); the result is indexed by
// RegionID, nil for plain regions.
func (s *Server) prepareUpstreamTLS(c *conf.Config) ([]*regionTLS, error) {
	out := make([]*regionTLS, len(c.RegionList))
	var pairs []tlsconf.Pair
	var owners, caOwners []conf.RegionID
	var caFiles []string
	for _, r := range c.RegionList {
		t := r.TLS
		if t == nil {
			continue
		}
		rt := &regionTLS{opts: tlsconf.ClientOptions{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerifyDangerous},
			caFile: t.CAFile}
		if t.CAFile != "" {
			caFiles = append(caFiles, t.CAFile)
			caOwners = append(caOwners, r.ID)
		}
		if t.CertFile != "" {
			pairs = append(pairs, tlsconf.Pair{CertFile: t.CertFile, KeyFile: t.KeyFile})
			owners = append(owners, r.ID)
		}
		rt.key = fmt.Sprintf("tls|%s|%s|%s|%s|%v", t.ServerName, t.CAFile, t.CertFile, t.KeyFile, t.InsecureSkipVerifyDangerous)
		out[r.ID] = rt
	}
	bundles, err := s.tls.live.AddCAs(caFiles)
	if err != nil {
		var le *tlsconf.LoadError
		for i, f := range caFiles {
			if errors.As(err, &le) && le.File == f {
				return nil, fmt.Errorf("regions.%s.tls.ca_file: %w", c.RegionList[caOwners[i]].Name, err)
			}
		}
		return nil, fmt.Errorf("regions: CA bundle: %w", err)
	}
	for i, id := range caOwners {
		out[id].opts.Roots = bundles[i]
	}
	certs, err := s.tls.live.AddClients(pairs)
	if err != nil {
		return nil, fmt.Errorf("regions: client certificate: %w", err)
	}
	for i, id := range owners {
		out[id].opts.Cert = certs[i]
	}
	return out, nil
}

// retainClientCerts drops the client certificates and CA bundles the config in
// service (st) no longer names; called once it is in service.
func (s *Server) retainClientCerts(st *state) {
	var pairs []tlsconf.Pair
	var cas []string
	for _, rt := range st.upTLS {
		if rt != nil && rt.opts.Cert != nil {
			pairs = append(pairs, rt.opts.Cert.Current().Pair)
		}
		if rt != nil && rt.caFile != "" {
			cas = append(cas, rt.caFile)
		}
	}
	s.tls.live.RetainClients(pairs)
	s.tls.live.RetainCAs(cas)
}

// warnInsecure says, at every start and reload, which regions do not verify.
func (s *Server) warnInsecure(c *conf.Config) {
	for _, r := range c.RegionList {
		if r.TLS != nil && r.TLS.InsecureSkipVerifyDangerous {
			s.log.Warn("UPSTREAM CERTIFICATES ARE NOT VERIFIED: anyone on the path to this region can read and change its traffic (regions.R.tls.insecure_skip_verify_dangerous)",
				"region", r.Name)
		}
	}
}

// tlsLimiter keeps the log of upstream TLS failures to one line per region every
// few seconds: a region whose certificate is wrong fails every request.
type tlsLimiter struct {
	last       atomic.Int64 // unix nanoseconds of the last line
	suppressed atomic.Int64
}

const tlsLogEvery = 5 * time.Second

// upstreamTLSFailed counts and (rate-limited) logs a TLS failure to region; addr is
// the upstream's address when known.
func (s *Server) upstreamTLSFailed(p *pool, addr string, err error) {
	p.tlsErrors.Inc()
	now := time.Now().UnixNano()
	last := p.tlsLog.last.Load()
	if now-last < int64(tlsLogEvery) || !p.tlsLog.last.CompareAndSwap(last, now) {
		p.tlsLog.suppressed.Add(1)
		return
	}
	msg := err.Error()
	var he *tlsconf.HandshakeError
	if !errors.As(err, &he) && addr != "" {
		// An alert after the handshake (TLS 1.3 refuses a client certificate on the
		// first read) carries neither address nor name: say them as a handshake does.
		name := ""
		if r, ok := s.state.Load().cfg.Region(p.region); ok && r.TLS != nil {
			name = r.TLS.ServerName
		}
		if host, _, herr := net.SplitHostPort(addr); name == "" && herr == nil {
			name = host
		}
		msg = fmt.Sprintf("TLS to upstream %s (server name %q): %s", addr, name, msg)
	}
	s.log.Error("TLS to upstream failed", "region", p.region, "err", msg,
		"more_since_last_line", p.tlsLog.suppressed.Swap(0))
}

// isTLSFailure reports whether err is a failed TLS handshake with an upstream or a
// TLS alert from it (in TLS 1.3 a refused client certificate shows on the first read).
func isTLSFailure(err error) bool {
	var he *tlsconf.HandshakeError
	if errors.As(err, &he) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// TLSStatus is the TLS part of GET /v1/status.
type TLSStatus struct {
	Listen     string `json:"listen,omitempty"`
	MinVersion string `json:"min_version,omitempty"`
	// Certificates are the certificates in service (server and client), with the
	// last refused reload of each.
	Certificates []tlsconf.Status `json:"certificates"`
	Handshakes   uint64           `json:"handshakes"`
	// HandshakeErrors counts failed handshakes by reason (only reasons seen).
	HandshakeErrors map[string]uint64 `json:"handshake_errors,omitempty"`
	// CABundles are the CA bundles (regions.R.tls.ca_file) in service, with the
	// regions they verify and the last refused reload of each.
	CABundles []tlsconf.CAStatus `json:"ca_bundles,omitempty"`
	// Unverified names the regions whose upstream certificates are not verified.
	Unverified []string `json:"unverified_regions,omitempty"`
}

// tlsStatus returns the TLS status, or nil when no TLS is configured at all.
func (s *Server) tlsStatus(c *conf.Config) *TLSStatus {
	certs := s.tls.live.Status()
	upstream := false
	for _, r := range c.RegionList {
		upstream = upstream || r.TLS != nil
	}
	if c.TLS == nil && !upstream {
		return nil
	}
	out := &TLSStatus{Certificates: certs, Handshakes: s.tls.handshakes.Get()}
	if c.TLS != nil {
		out.Listen, out.MinVersion = c.TLS.Listen, c.TLS.MinVersion
	}
	for r, n := range s.tls.errors {
		if v := n.Get(); v > 0 {
			if out.HandshakeErrors == nil {
				out.HandshakeErrors = map[string]uint64{}
			}
			out.HandshakeErrors[r] = v
		}
	}
	for _, r := range c.RegionList {
		if r.TLS != nil && r.TLS.InsecureSkipVerifyDangerous {
			out.Unverified = append(out.Unverified, r.Name)
		}
	}
	sort.Strings(out.Unverified)
	out.CABundles = s.tls.live.CAStatus()
	for i := range out.CABundles {
		b := &out.CABundles[i]
		for _, r := range c.RegionList {
			if r.TLS != nil && r.TLS.CAFile == b.File {
				b.Regions = append(b.Regions, r.Name)
			}
		}
	}
	return out
}
