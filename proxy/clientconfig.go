package proxy

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
	"github.com/shiftgate/shiftgate/routing/clientcfg"
)

// This file is the gateway side of the client-side switch: the client config built
// once per snapshot and served on the traffic listener, and the X-Shift-Client /
// X-Shift-Config-Version exchange with apps that decide their region themselves.

// ClientConfigPath is where the traffic listener serves the client config. It is
// answered before routing, whatever the routes match.
const ClientConfigPath = "/.well-known/shiftgate/client-config"

// Header names of the client-side switch.
const (
	// ClientHeader carries an app's own decision: "REGION;v=VERSION".
	ClientHeader = "X-Shift-Client"
	// ConfigVersionHeader answers the version of the client config in force.
	ConfigVersionHeader = "X-Shift-Config-Version"
)

var (
	strClientHeader        = []byte(ClientHeader)
	strConfigVersionHeader = []byte(ConfigVersionHeader)
	strClientConfigPath    = []byte(ClientConfigPath)
)

// clientDoc is the client config of one snapshot, marshalled once when the snapshot is
// compiled: serving it and answering X-Shift-Config-Version copy nothing per request.
// It is immutable.
type clientDoc struct {
	// cfg is what body encodes (status and tests read it).
	cfg          clientcfg.Config
	body         []byte
	etag         string
	version      []byte // the document's version, for X-Shift-Config-Version
	cacheControl string // public, max-age=TTL
}

// buildClientDoc maps the snapshot onto the client config: per route the splits in
// force (overrides and a rollback ramp applied), rollback, the cut-off, each region's
// public_url and the ttl. It publishes nothing else of the config: no forced keys,
// tokens, trusted networks or upstream addresses.
//
// The version is the hex xxhash64 of the document's canonical bytes with an empty
// version: it changes whenever anything in the document does, and every instance of a
// fleet that serves the same document gives it the same version, so clients behind
// a load balancer or CDN do not look stale for hitting another instance.
func buildClientDoc(c *conf.Config, splits []conf.SplitBP, rollback bool, cut conf.Cutoff) (*clientDoc, error) {
	ttl := int(c.ClientConfig.TTL.D / time.Second)
	doc := clientcfg.Config{
		Algorithm: clientcfg.Algorithm,
		TTL:       ttl,
		Rollback:  rollback,
		Cutoff:    cut.On,
		Regions:   make(map[string]clientcfg.Region, len(c.RegionList)),
		Routes:    make([]clientcfg.Route, 0, len(c.Routes)),
	}
	for _, r := range c.RegionList {
		doc.Regions[r.Name] = clientcfg.Region{PublicURL: r.PublicURL}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		keys := make([]string, len(r.KeySources))
		for j, k := range r.KeySources {
			keys[j] = k.String()
		}
		doc.Routes = append(doc.Routes, clientcfg.Route{
			Name:         r.Name,
			Match:        clientcfg.Match{Host: r.Match.Host, PathPrefix: r.Match.PathPrefix},
			From:         c.RegionList[r.FromID].Name,
			To:           c.RegionList[r.ToID].Name,
			Salt:         r.SaltValue,
			Keys:         keys,
			Percent:      pct(splits[i].Read),
			WritePercent: pct(splits[i].Write),
			Cutoff:       cut.Route(r.Name),
		})
	}
	unversioned, _, err := clientcfg.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("client config: %w", err)
	}
	doc.Version = fmt.Sprintf("%016x", xxhash.Sum64(unversioned))
	body, etag, err := clientcfg.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("client config: %w", err)
	}
	return &clientDoc{cfg: doc, body: body, etag: etag, version: []byte(doc.Version),
		cacheControl: "public, max-age=" + strconv.Itoa(ttl)}, nil
}

// isClientConfigPath is the check every request pays: a length comparison first.
func isClientConfigPath(path []byte) bool {
	return len(path) == len(strClientConfigPath) && bytes.Equal(path, strClientConfigPath)
}

// serveClientConfig answers the client config: 200 with the body, 304 when
// If-None-Match names its ETag, 204 to a CORS preflight, 405 otherwise. The answer is
// public and cacheable by a CDN for the ttl; any origin may read it.
func (s *Server) serveClientConfig(ctx *fasthttp.RequestCtx, st *state) {
	doc := st.client
	h := &ctx.Request.Header
	rh := &ctx.Response.Header
	// The body of a request here is never read: its connection cannot be reused.
	if cl := h.ContentLength(); cl != 0 && cl != -2 {
		ctx.SetConnectionClose()
	}
	rh.Set("Access-Control-Allow-Origin", "*")
	switch {
	case h.IsGet() || h.IsHead():
	case h.IsOptions():
		rh.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		rh.Set("Access-Control-Allow-Headers", "If-None-Match")
		rh.Set("Access-Control-Max-Age", "86400")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	default:
		errorResponse(ctx, fasthttp.StatusMethodNotAllowed, "the client config is read with GET")
		rh.Set("Allow", "GET, HEAD, OPTIONS")
		return
	}
	rh.Set("Access-Control-Expose-Headers", "ETag, "+ConfigVersionHeader)
	rh.Set(fasthttp.HeaderETag, doc.etag)
	rh.Set(fasthttp.HeaderCacheControl, doc.cacheControl)
	rh.SetBytesKV(strConfigVersionHeader, doc.version)
	if inm := h.Peek(fasthttp.HeaderIfNoneMatch); len(inm) > 0 && clientcfg.MatchETag(string(inm), doc.etag) {
		s.stats.clientConfigNotModified.Inc()
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	s.stats.clientConfigServed.Inc()
	rh.SetContentType("application/json")
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.SetBodyRaw(doc.body)
}

// Outcomes of comparing an app's X-Shift-Client with the gateway's decision, indexing
// routeMetrics.clients.
const (
	clientAgree = iota
	clientDisagree
	clientStale
	clientOutcomes
)

var clientOutcomeNames = [clientOutcomes]string{"agree", "disagree", "stale"}

// clientOutcome compares an X-Shift-Client value with the gateway's decision for the
// request: stale when the app's config version is not the one in force (or it names
// none), else disagree when it chose another region, else agree. A region decided
// with a stale config may differ for good reason (a split moved since), so stale is
// told first. It allocates nothing.
func clientOutcome(value, decided, version []byte) int {
	region, v := parseClientHeader(value)
	switch {
	case !bytes.Equal(v, version):
		return clientStale
	case !bytes.Equal(region, decided):
		return clientDisagree
	}
	return clientAgree
}

// parseClientHeader splits "REGION;v=VERSION" (spaces around the parts allowed, other
// parameters ignored) into the region and the version, nil when absent. The results
// point into value.
func parseClientHeader(value []byte) (region, version []byte) {
	region, rest := cutByte(value, ';')
	region = bytes.TrimSpace(region)
	for len(rest) > 0 {
		var param []byte
		param, rest = cutByte(rest, ';')
		param = bytes.TrimSpace(param)
		if len(param) > 2 && (param[0] == 'v' || param[0] == 'V') && param[1] == '=' {
			return region, bytes.Trim(param[2:], `" `)
		}
	}
	return region, nil
}

// cutByte is bytes.Cut for one separator byte.
func cutByte(s []byte, sep byte) (before, after []byte) {
	if i := bytes.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, nil
}

// clientMetrics creates a route's series of the client-side switch: the outcomes of
// X-Shift-Client and, with self_region set, the requests this region's gateway had to
// send across to another region. Called only while compiling.
func (s *Server) clientMetrics(c *conf.Config, r *conf.Route, m *routeMetrics) {
	for i, name := range clientOutcomeNames {
		m.clients[i] = s.metrics.routeCounter(r.Name, `shiftgate_client_decisions_total{route=%q,outcome=%q}`, r.Name, name)
	}
	if c.SelfRegionID == conf.NoRegion {
		return
	}
	self := c.RegionList[c.SelfRegionID].Name
	m.crossRegion = make([]*counter, len(c.RegionList))
	for _, reg := range c.RegionList {
		if reg.ID != c.SelfRegionID {
			m.crossRegion[reg.ID] = s.metrics.routeCounter(r.Name, `shiftgate_cross_region_requests_total{route=%q,from=%q,to=%q}`, r.Name, self, reg.Name)
		}
	}
}

// noteClient counts what the request's X-Shift-Client says against the gateway's
// decision d for route rt (nil when no route matched), and whether the request must
// cross to another region. It reports whether the request carried X-Shift-Client:
// only then does the answer carry X-Shift-Config-Version.
func noteClient(st *state, rt *routeState, d routing.Decision, h *fasthttp.RequestHeader) bool {
	if rt != nil && rt.metrics.crossRegion != nil {
		if c := rt.metrics.crossRegion[d.Region]; c != nil {
			c.Inc()
		}
	}
	// The traffic server normalizes header names as it reads them, so the canonical
	// spelling finds any case at a sixth of Peek's cost (no copy, no normalizing).
	v := h.PeekCanonical(strClientHeader)
	if len(v) == 0 {
		return false
	}
	if rt != nil {
		rt.metrics.clients[clientOutcome(v, st.regions[d.Region], st.client.version)].Inc()
	}
	return true
}

// answerVersion tells an app that sent X-Shift-Client which client config is in
// force, so that one holding another version fetches it again.
func answerVersion(ctx *fasthttp.RequestCtx, st *state) {
	ctx.Response.Header.SetBytesKV(strConfigVersionHeader, st.client.version)
}
