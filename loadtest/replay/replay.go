// Package replay sends the requests of a captured shiftgate access log against a
// target at a fixed rate: "trust, but verify" a new region with real traffic before
// it takes any. Only GET and HEAD are replayed unless others are asked for: the log
// holds no bodies, and a replayed write is a real write.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Options configure a replay. Zero values take the defaults named on each field.
type Options struct {
	// File is the access log: JSON lines with "method" (default GET), "uri" (or
	// "path") and "host"; other fields are ignored.
	File string
	// Target is the host:port requests are sent to.
	Target string
	// Rate is requests per second, sent open loop: on schedule whether or not earlier
	// ones were answered. Default 100.
	Rate float64
	// Methods are replayed; lines with another method are skipped and counted.
	// Default GET and HEAD.
	Methods []string
	// Max stops the replay after this many requests; 0 is no limit.
	Max int
	// Duration stops the replay after this long; 0 is no limit.
	Duration time.Duration
	// Loop starts the log over at its end (bounded by Max, Duration or ctx).
	Loop bool
	// Headers are added to every request, each "Name: value".
	Headers []string
	// Host replaces the log's Host; default the line's host, else Target.
	Host string
	// Timeout bounds each request. Default 5 s.
	Timeout time.Duration
	// MaxInFlight bounds requests awaiting an answer; a send due while that many are
	// out is missed and counted, never queued (that would turn the open loop
	// closed). Default 512.
	MaxInFlight int
}

// Result is what a replay did. Sent == OK + (answers with other statuses) + Errors.
type Result struct {
	// Sent counts requests sent.
	Sent int64 `json:"sent"`
	// OK counts 2xx and 3xx answers.
	OK int64 `json:"ok"`
	// Errors counts requests that got no answer (refused, timed out, reset).
	Errors int64 `json:"errors"`
	// Status counts answers by status.
	Status map[int]int64 `json:"status"`
	// Missed counts sends that were due while MaxInFlight requests were out.
	Missed int64 `json:"missed"`
	// Filtered counts log lines skipped for their method; BadLines lines that are
	// not requests.
	Filtered int64 `json:"filtered"`
	BadLines int64 `json:"bad_lines"`
	// P50 and P99 are latencies of answered requests (over a uniform sample of at
	// most 100,000 of them).
	P50     time.Duration `json:"p50"`
	P99     time.Duration `json:"p99"`
	Elapsed time.Duration `json:"elapsed"`
}

const (
	defaultRate        = 100
	defaultTimeout     = 5 * time.Second
	defaultMaxInFlight = 512
	maxLatencySamples  = 100_000
	minTick            = time.Millisecond
)

// Run replays o.File against o.Target until the log ends, Max requests were sent,
// Duration passed or ctx is done, then waits for the answers still due (each bounded
// by Timeout). An error means the replay could not start or the log could not be
// read; what was sent until then is in the Result.
func Run(ctx context.Context, o Options) (Result, error) {
	o, headers, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	lr, err := openLog(o.File, o.Loop)
	if err != nil {
		return Result{}, err
	}
	defer lr.close() //nolint:errcheck // read only
	hc := &fasthttp.HostClient{
		Addr:                          o.Target,
		MaxConns:                      o.MaxInFlight,
		ReadTimeout:                   o.Timeout,
		WriteTimeout:                  o.Timeout,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		MaxIdemponentCallAttempts:     1,
	}
	defer hc.CloseIdleConnections()
	c := &collector{status: map[int]int64{}, rng: rand.New(rand.NewPCG(1, 2))}
	sem := make(chan struct{}, o.MaxInFlight)
	var wg sync.WaitGroup
	allowed := func(method string) bool { return slices.Contains(o.Methods, method) }

	start := time.Now()
	var stop <-chan time.Time
	if o.Duration > 0 {
		t := time.NewTimer(o.Duration)
		defer t.Stop()
		stop = t.C
	}
	tick := time.NewTicker(max(time.Duration(float64(time.Second)/o.Rate), minTick))
	defer tick.Stop()
	var scheduled int64 // sends due so far, made or missed
	var runErr error
loop:
	for {
		// Open loop: the sends due by now, one at the start.
		due := int64(time.Since(start).Seconds()*o.Rate) + 1 - scheduled
		for ; due > 0; due-- {
			if o.Max > 0 && c.sent() >= int64(o.Max) {
				break loop
			}
			e, err := nextEntry(lr, c, allowed)
			if err != nil {
				if err != io.EOF {
					runErr = err
				}
				break loop
			}
			scheduled++
			select {
			case sem <- struct{}{}:
			default:
				c.miss()
				continue
			}
			c.send()
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				c.record(do(hc, e, &o, headers))
			}()
		}
		select {
		case <-ctx.Done():
			break loop
		case <-stop:
			break loop
		case <-tick.C:
		}
	}
	wg.Wait()
	return c.result(time.Since(start)), runErr
}

// nextEntry returns the next replayable line, counting the others.
func nextEntry(lr *logReader, c *collector, allowed func(string) bool) (entry, error) {
	for {
		b, err := lr.next()
		if err != nil {
			return entry{}, err
		}
		e, err := parseLine(b)
		switch {
		case err != nil:
			c.bad()
		case !allowed(e.method):
			c.filter()
		default:
			lr.usable = true
			return e, nil
		}
	}
}

// outcome is one request's fate: status 0 for no answer.
type outcome struct {
	status  int
	latency time.Duration
}

func do(hc *fasthttp.HostClient, e entry, o *Options, headers [][2]string) outcome {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(e.method)
	req.SetRequestURI(e.uri)
	host := o.Host
	if host == "" {
		host = e.host
	}
	if host == "" {
		host = o.Target
	}
	req.Header.SetHost(host)
	for _, h := range headers {
		req.Header.Add(h[0], h[1])
	}
	start := time.Now()
	if err := hc.DoTimeout(req, resp, o.Timeout); err != nil {
		return outcome{}
	}
	return outcome{status: resp.StatusCode(), latency: time.Since(start)}
}

// withDefaults fills defaults and parses the headers.
func (o Options) withDefaults() (Options, [][2]string, error) {
	if o.File == "" {
		return o, nil, errors.New("replay: no access log")
	}
	if o.Target == "" {
		return o, nil, errors.New("replay: no target")
	}
	if o.Rate < 0 || o.Max < 0 || o.Duration < 0 {
		return o, nil, errors.New("replay: rate, max and duration must not be negative")
	}
	if o.Rate == 0 {
		o.Rate = defaultRate
	}
	if len(o.Methods) == 0 {
		o.Methods = []string{"GET", "HEAD"}
	}
	o.Methods = slices.Clone(o.Methods)
	for i, m := range o.Methods {
		o.Methods[i] = strings.ToUpper(m)
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = defaultMaxInFlight
	}
	var headers [][2]string
	for _, h := range o.Headers {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
			return o, nil, fmt.Errorf("replay: header %q: want \"Name: value\"", h)
		}
		headers = append(headers, [2]string{name, strings.TrimSpace(value)})
	}
	return o, headers, nil
}

// collector gathers the outcomes; the sending loop and the request goroutines share
// it.
type collector struct {
	mu                                  sync.Mutex
	nSent, ok, errs, missed, filt, nBad int64
	status                              map[int]int64
	lat                                 []time.Duration
	answered                            int64
	rng                                 *rand.Rand
}

func (c *collector) send() {
	c.mu.Lock()
	c.nSent++
	c.mu.Unlock()
}

func (c *collector) sent() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nSent
}

func (c *collector) miss()   { c.mu.Lock(); c.missed++; c.mu.Unlock() }
func (c *collector) filter() { c.mu.Lock(); c.filt++; c.mu.Unlock() }
func (c *collector) bad()    { c.mu.Lock(); c.nBad++; c.mu.Unlock() }

func (c *collector) record(x outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if x.status == 0 {
		c.errs++
		return
	}
	c.status[x.status]++
	if x.status >= 200 && x.status < 400 {
		c.ok++
	}
	// Reservoir sampling keeps a uniform sample of every answer's latency.
	c.answered++
	if len(c.lat) < maxLatencySamples {
		c.lat = append(c.lat, x.latency)
	} else if i := c.rng.Int64N(c.answered); i < maxLatencySamples {
		c.lat[i] = x.latency
	}
}

func (c *collector) result(elapsed time.Duration) Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Result{Sent: c.nSent, OK: c.ok, Errors: c.errs, Status: c.status, Missed: c.missed,
		Filtered: c.filt, BadLines: c.nBad, Elapsed: elapsed}
	if len(c.lat) > 0 {
		s := slices.Clone(c.lat)
		slices.Sort(s)
		r.P50 = s[(len(s)+1)/2-1]
		r.P99 = s[max((len(s)*99+99)/100-1, 0)]
	}
	return r
}
