// Package mirror copies a sample of a route's requests to another region after the
// client has been answered, compares the answers field by field, and tells real
// differences from noise the way Diffy does: a share of the copies also goes to a
// second upstream of the client's own region, and a field is reported as differing
// only if the mirror differs clearly more often than that second upstream does.
//
// The request path pays for mirroring only on sampled requests, and then only a copy
// into a pooled job: the client's answer never waits for a mirror, a full queue drops
// the copy and counts it, and a mirror that is down costs the client nothing.
//
// Use from the proxy, after the client's answer is in ctx.Response:
//
//	if m.Sampled(route, ctx.Method(), ctx.ID()) { // fast path: no allocation, no lock
//		x := mirror.Capture(ctx, upstreamLatency)
//		m.Offer(route, &x)
//	}
package mirror

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/time/rate"
)

// Mirror mirrors and compares the routes it was built with. All methods are safe for
// concurrent use; a nil *Mirror mirrors nothing. Close it when its config is retired.
type Mirror struct {
	opts    Options
	routes  []route
	clients map[string]*fasthttp.HostClient // one per upstream address, owned here

	queue chan *job
	free  chan *job
	// made counts the jobs in existence, at most maxJobs: the free list grows on
	// demand and then only recycles.
	made    atomic.Int64
	maxJobs int64

	closed    atomic.Bool
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// route is a Route compiled for the request path.
type route struct {
	percent    uint64 // basis points; 0 is off
	methods    [][]byte
	maxBody    int
	limiter    *rate.Limiter // nil: no cap
	region     string
	noiseReg   string
	targets    []*fasthttp.HostClient
	noise      []*fasthttp.HostClient
	noiseShare uint64
	next       atomic.Uint32
	nextNoise  atomic.Uint32
	rules      *rules
	stats      *routeStats
}

// Exchange is what the client asked and was answered, as the proxy hands it to Offer.
// Offer copies what it keeps; the caller may reuse everything after Offer returns.
type Exchange struct {
	// Req is the request head as forwarded. Without one nothing is mirrored.
	Req *fasthttp.RequestHeader
	// ReqBody is the whole request body; nil when there is none.
	ReqBody []byte
	// ReqBodyCut says the request had a body the caller does not hold whole (it was
	// streamed to the upstream): such a request is not mirrored.
	ReqBodyCut bool
	// Status is the status the client got.
	Status int
	// Resp is the response head the client got; may be nil.
	Resp *fasthttp.ResponseHeader
	// RespBody is the client's answer body, or its first bytes.
	RespBody []byte
	// RespBodyCut says RespBody is not the whole body (it was streamed to the
	// client). With RespBody empty the bodies are not compared.
	RespBodyCut bool
	// Latency is how long the upstream took to answer the client.
	Latency time.Duration
	// Upstream is the address of the upstream that answered the client: the noise
	// copy goes to another one of NoiseAddrs when there is one.
	Upstream string
}

// Capture fills an Exchange from a served request: the request head, the request
// body when the server held it whole, and the answer's body when it is in memory
// (not streamed). It never reads a body stream, so it is safe after the body was
// forwarded. The Exchange refers to ctx's memory: use it before the handler returns.
func Capture(ctx *fasthttp.RequestCtx, latency time.Duration) Exchange {
	x := Exchange{Req: &ctx.Request.Header, Status: ctx.Response.StatusCode(), Resp: &ctx.Response.Header, Latency: latency}
	if ctx.Request.IsBodyStream() {
		// Already sent upstream; -2 is fasthttp's "no body".
		cl := ctx.Request.Header.ContentLength()
		x.ReqBodyCut = cl != 0 && cl != -2
	} else {
		x.ReqBody = ctx.Request.Body()
	}
	if ctx.Response.IsBodyStream() {
		x.RespBodyCut = true
	} else {
		x.RespBody = ctx.Response.Body()
	}
	return x
}

// job is one copy on its way to a worker: everything it needs, owned by the job.
type job struct {
	route     int
	req       fasthttp.Request
	status    int
	resp      fasthttp.ResponseHeader
	hasResp   bool
	body      []byte
	bodyCut   bool
	latency   time.Duration
	noBodyCmp bool
	upstream  string // that answered the client (Exchange.Upstream)
}

var errNoRoutes = errors.New("mirror: no route mirrors anything")

// New builds a Mirror and starts its workers. It refuses an invalid route and a set
// of routes in which none mirrors (the caller keeps a nil *Mirror instead).
func New(o Options) (*Mirror, error) {
	m, err := build(o)
	if err != nil {
		return nil, err
	}
	m.start()
	return m, nil
}

// build compiles o without starting workers.
func build(o Options) (*Mirror, error) {
	o = o.withDefaults()
	o.Routes = append([]Route(nil), o.Routes...)
	m := &Mirror{
		opts:    o,
		routes:  make([]route, len(o.Routes)),
		clients: map[string]*fasthttp.HostClient{},
		queue:   make(chan *job, o.Queue),
		free:    make(chan *job, o.Queue+o.Workers),
		maxJobs: int64(o.Queue + o.Workers),
		done:    make(chan struct{}),
	}
	some := false
	for i := range o.Routes {
		cfg := &o.Routes[i]
		if err := cfg.check(i); err != nil {
			return nil, err
		}
		r := &m.routes[i]
		r.stats = newRouteStats(cfg.Name, &m.opts)
		if cfg.Percent == 0 {
			continue
		}
		some = true
		r.percent = uint64(cfg.Percent)
		methods := cfg.Methods
		if len(methods) == 0 {
			methods = []string{fasthttp.MethodGet, fasthttp.MethodHead}
		}
		for _, s := range methods {
			r.methods = append(r.methods, []byte(s))
		}
		r.maxBody = cfg.MaxBody
		switch {
		case r.maxBody == 0:
			r.maxBody = defaultMaxBody
		case r.maxBody < 0:
			r.maxBody = 0
		}
		if cfg.Rate > 0 {
			burst := cfg.Burst
			if burst <= 0 {
				burst = max(1, int(cfg.Rate))
			}
			r.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), burst)
		}
		r.region, r.noiseReg = cfg.Region, cfg.NoiseRegion
		for _, a := range cfg.TargetAddrs {
			r.targets = append(r.targets, m.client(a))
		}
		for _, a := range cfg.NoiseAddrs {
			r.noise = append(r.noise, m.client(a))
		}
		if len(r.noise) > 0 {
			r.noiseShare = uint64(cfg.NoiseShare)
			if r.noiseShare == 0 {
				r.noiseShare = defaultNoiseShare
			}
		}
		r.rules = compileRules(cfg)
	}
	if !some {
		return nil, errNoRoutes
	}
	return m, nil
}

func (m *Mirror) start() {
	for range m.opts.Workers {
		m.wg.Add(1)
		go m.work()
	}
}

// Sampled reports whether the request of route with this method is to be mirrored.
// key is any per-request number (fasthttp's ctx.ID(), a hash of X-Request-Id): it is
// mixed here, so a counter samples evenly. The fast path of a route that is off is a
// bounds check and a comparison; no allocation, no lock, nil-safe.
func (m *Mirror) Sampled(routeIdx int, method []byte, key uint64) bool {
	if m == nil || uint(routeIdx) >= uint(len(m.routes)) {
		return false
	}
	r := &m.routes[routeIdx]
	if r.percent == 0 || mix(key)%10000 >= r.percent {
		return false
	}
	for _, x := range r.methods {
		if bytes.Equal(x, method) {
			return true
		}
	}
	return false
}

// mix is the splitmix64 finalizer: sequential keys become evenly spread.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Offer queues a copy of x for the route's mirror and returns at once: true if it
// was queued; false if it was skipped (no head, a body over the cap or not held),
// refused by the rate cap, or dropped (queue full, or the Mirror closed); each is
// counted. Call it only for requests Sampled said yes to, after the client's answer
// was produced. It copies x into a pooled job and keeps nothing of x; with the pool
// warm it does not allocate. Answer bodies past MaxAnswer are copied up to it.
func (m *Mirror) Offer(routeIdx int, x *Exchange) bool {
	if m == nil || uint(routeIdx) >= uint(len(m.routes)) || m.routes[routeIdx].percent == 0 {
		return false
	}
	r := &m.routes[routeIdx]
	st := r.stats
	st.offered.Add(1)
	if x.Req == nil || x.ReqBodyCut || len(x.ReqBody) > r.maxBody {
		st.skipped.Add(1)
		return false
	}
	if r.limiter != nil && !r.limiter.AllowN(m.opts.Now(), 1) {
		st.limited.Add(1)
		return false
	}
	if m.closed.Load() {
		st.dropped.Add(1)
		return false
	}
	j := m.getJob()
	if j == nil {
		st.dropped.Add(1)
		return false
	}
	j.route = routeIdx
	x.Req.CopyTo(&j.req.Header)
	j.req.SetBody(x.ReqBody)
	j.status = x.Status
	j.hasResp = x.Resp != nil
	if j.hasResp {
		x.Resp.CopyTo(&j.resp)
	}
	n := min(len(x.RespBody), m.opts.MaxAnswer)
	j.body = append(j.body[:0], x.RespBody[:n]...)
	j.bodyCut = x.RespBodyCut || len(x.RespBody) > m.opts.MaxAnswer
	j.noBodyCmp = x.RespBodyCut && n == 0
	j.latency = x.Latency
	j.upstream = x.Upstream
	select {
	case m.queue <- j:
		return true
	default:
		st.dropped.Add(1)
		m.putJob(j)
		return false
	}
}

// getJob returns a free job, a new one while fewer than maxJobs exist, or nil. A
// free list rather than a sync.Pool: a pool is emptied at every GC, which would put
// allocations back on the request path, and the number of jobs is bounded anyway.
func (m *Mirror) getJob() *job {
	select {
	case j := <-m.free:
		return j
	default:
	}
	if m.made.Add(1) > m.maxJobs {
		m.made.Add(-1)
		return nil
	}
	return new(job)
}

func (m *Mirror) putJob(j *job) {
	select {
	case m.free <- j:
	default:
		m.made.Add(-1)
	}
}

// Close stops the workers, waits for the copies in flight (each bounded by
// Options.Timeout), discards queued ones and closes the Mirror's connections. Offer
// after Close drops and counts. Close is idempotent.
func (m *Mirror) Close() {
	if m == nil {
		return
	}
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		close(m.done)
		m.wg.Wait()
		for _, c := range m.clients {
			c.CloseIdleConnections()
		}
	})
}

// Snapshot returns every mirrored route's results, in route order.
func (m *Mirror) Snapshot() Snapshot {
	s := Snapshot{Routes: []RouteResult{}}
	if m == nil {
		return s
	}
	for i := range m.routes {
		if m.routes[i].percent > 0 {
			s.Routes = append(s.Routes, m.routes[i].stats.result())
		}
	}
	return s
}

// Counters returns route's running totals for metrics; zero for a route that is out
// of range or off. Lock-free.
func (m *Mirror) Counters(routeIdx int) Counters {
	if m == nil || uint(routeIdx) >= uint(len(m.routes)) {
		return Counters{}
	}
	return m.routes[routeIdx].stats.counters()
}

// MaxBody is the largest request body the route's copies carry (0 for a route that
// does not mirror, or mirrors no body).
func (m *Mirror) MaxBody(routeIdx int) int {
	if m == nil || uint(routeIdx) >= uint(len(m.routes)) {
		return 0
	}
	return m.routes[routeIdx].maxBody
}

// Mirrored reports whether route mirrors anything.
func (m *Mirror) Mirrored(routeIdx int) bool {
	return m != nil && uint(routeIdx) < uint(len(m.routes)) && m.routes[routeIdx].percent > 0
}

// QueueLen is the number of copies waiting for a worker, for a gauge.
func (m *Mirror) QueueLen() int {
	if m == nil {
		return 0
	}
	return len(m.queue)
}
