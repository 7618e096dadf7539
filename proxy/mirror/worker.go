package mirror

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Header names the mirror sets on its copies.
const (
	// HeaderMirror marks a copy: its answer goes nowhere, so a backend may suppress
	// side effects (writes, emails) for it.
	HeaderMirror = "X-Shift-Mirror"
	headerRegion = "X-Shift-Region"
)

// hopByHop are the fields that belong to one connection, never to a copy.
var hopByHop = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
	"TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

// worker is one worker's scratch space, reused for every job.
type worker struct {
	resp  fasthttp.Response
	buf   []byte
	uri   []byte
	diffs []Difference
	seen  map[string]bool
}

func (m *Mirror) work() {
	defer m.wg.Done()
	w := &worker{seen: map[string]bool{}}
	for {
		select {
		case <-m.done:
			return
		case j := <-m.queue:
			m.handle(w, j)
			m.putJob(j)
		}
	}
}

// handle sends one copy to the mirror target, compares the answer with the client's,
// and, for a share of copies, does the same with a noise upstream.
func (m *Mirror) handle(w *worker, j *job) {
	r := &m.routes[j.route]
	st := r.stats
	defer st.completed.Add(1)
	// The job's Request kept the URI parsed for the previous copy, and would send
	// that one: the head just copied in is the truth.
	w.uri = append(w.uri[:0], j.req.Header.RequestURI()...)
	j.req.SetRequestURIBytes(w.uri)
	prepare(&j.req.Header)
	path := requestPath(j.req.Header.RequestURI())
	primary := answer{status: j.status, body: j.body, truncated: j.bodyCut}
	if j.hasResp {
		primary.header = &j.resp
	}
	bodies := !j.noBodyCmp

	setRegion(&j.req.Header, r.region)
	start := m.opts.Now()
	got, err := m.send(w, pick(r.targets, &r.next), &j.req)
	took := m.opts.Now().Sub(start)
	if err != nil {
		st.errors.Add(1)
	} else {
		w.diffs = compareAnswers(&primary, &got, r.rules, bodies, w.diffs[:0])
		// An answer streamed to the client (chunked, or over the gateway's in-memory
		// size) was not held: its body is compared up to nothing, which is a
		// truncated comparison, never a "same" body.
		st.recordRaw(path, w.diffs, !bodies || got.truncated || primary.truncated, j.latency, took, w.seen)
	}

	// The noise copy goes to the from region itself, which serves production: a
	// write is never sent there a second time, whatever the route mirrors.
	if len(r.noise) == 0 || !safeMethod(j.req.Header.Method()) || mix(st.noiseSequencer.Add(1))%10000 >= r.noiseShare {
		return
	}
	setRegion(&j.req.Header, r.noiseReg)
	got, err = m.send(w, pickOther(r.noise, &r.nextNoise, j.upstream), &j.req)
	if err != nil {
		st.noiseErrors.Add(1)
		return
	}
	w.diffs = compareAnswers(&primary, &got, r.rules, bodies, w.diffs[:0])
	st.recordNoise(w.diffs, w.seen)
}

// send makes one exchange and returns the answer, its body cut at MaxAnswer. The
// answer refers to w's memory until the next send.
func (m *Mirror) send(w *worker, hc *fasthttp.HostClient, req *fasthttp.Request) (answer, error) {
	if len(req.Header.Host()) == 0 {
		// An HTTP/1.0 client may send none; HTTP/1.1 upstreams require one.
		req.Header.SetHost(hc.Addr)
	}
	if err := hc.DoTimeout(req, &w.resp, m.opts.Timeout); err != nil {
		return answer{}, err
	}
	body, truncated, err := readCapped(&w.resp, &w.buf, m.opts.MaxAnswer)
	if err != nil {
		return answer{}, err
	}
	return answer{status: w.resp.StatusCode(), header: &w.resp.Header, body: body, truncated: truncated}, nil
}

// readCapped reads at most limit bytes of resp's body into buf and reports whether
// there was more. An answer read only in part costs its connection, which is the
// price of never reading a huge answer whole.
func readCapped(resp *fasthttp.Response, buf *[]byte, limit int) ([]byte, bool, error) {
	bs := resp.BodyStream()
	if bs == nil {
		b := resp.Body()
		if len(b) > limit {
			return b[:limit], true, nil
		}
		return b, false, nil
	}
	defer resp.CloseBodyStream() //nolint:errcheck // the body is read or given up
	if cap(*buf) < limit+1 {
		*buf = make([]byte, limit+1)
	}
	b := (*buf)[:limit+1]
	n, err := io.ReadFull(bs, b)
	switch err {
	case nil:
		return b[:limit], true, nil
	case io.EOF, io.ErrUnexpectedEOF:
		return b[:n], false, nil
	}
	return nil, false, err
}

// prepare makes the copied head fit to send: no connection-level fields, and the
// mark of a copy.
func prepare(h *fasthttp.RequestHeader) {
	// Fields named in Connection are hop-by-hop too.
	for _, name := range bytes.Split(h.Peek("Connection"), []byte{','}) {
		if name = bytes.TrimSpace(name); len(name) > 0 {
			h.DelBytes(name)
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
	h.ResetConnectionClose()
	h.Set(HeaderMirror, "1")
}

func setRegion(h *fasthttp.RequestHeader, region string) {
	if region == "" {
		h.Del(headerRegion)
		return
	}
	h.Set(headerRegion, region)
}

// requestPath is the path of a request target, without its query.
func requestPath(uri []byte) string {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return string(uri)
}

func pick(cs []*fasthttp.HostClient, next *atomic.Uint32) *fasthttp.HostClient {
	if len(cs) == 1 {
		return cs[0]
	}
	return cs[next.Add(1)%uint32(len(cs))]
}

// pickOther is pick, avoiding the client for addr when there is another: a noise
// copy measures how two upstreams of the same region differ, so it must not go back
// to the one that answered the client.
func pickOther(cs []*fasthttp.HostClient, next *atomic.Uint32, addr string) *fasthttp.HostClient {
	c := pick(cs, next)
	if len(cs) > 1 && c.Addr == addr {
		c = pick(cs, next)
		if c.Addr == addr { // the same address listed twice
			c = pick(cs, next)
		}
	}
	return c
}

// client returns the Mirror's client for addr, made on first use. Its own pool, its
// own timeouts: a slow mirror never holds a connection the proxy needs.
func (m *Mirror) client(addr string) *fasthttp.HostClient {
	if c := m.clients[addr]; c != nil {
		return c
	}
	connect := m.opts.ConnectTimeout
	c := &fasthttp.HostClient{
		Addr:                          addr,
		MaxConns:                      m.opts.MaxConnsPerHost,
		ReadTimeout:                   m.opts.Timeout,
		WriteTimeout:                  m.opts.Timeout,
		MaxIdleConnDuration:           30 * time.Second,
		MaxConnWaitTimeout:            m.opts.Timeout,
		StreamResponseBody:            true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		// A copy is sent once: a retry would double a side effect the mark may not
		// have suppressed.
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		Dial: func(addr string) (net.Conn, error) {
			return fasthttp.DialTimeout(addr, connect)
		},
	}
	m.clients[addr] = c
	return c
}

// safeMethod reports whether a request of method m only reads (GET, HEAD, OPTIONS).
func safeMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS":
		return true
	}
	return false
}
