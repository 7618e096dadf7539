package proxy

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// hungRegion is a stand-in region that answers at once, or, while hung, reads the
// request and says nothing until it recovers (like a process stopped with SIGSTOP
// whose kernel still accepts connections).
type hungRegion struct {
	ln   net.Listener
	hung atomic.Bool
	wake chan struct{}
	mu   sync.Mutex
	// heads counts the request heads read.
	heads atomic.Int64
}

func startHungRegion(t *testing.T) *hungRegion {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &hungRegion{ln: ln, wake: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); r.setHung(false) })
	return r
}

func (r *hungRegion) setHung(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hung.Load() && !on {
		close(r.wake)
		r.wake = make(chan struct{})
	}
	r.hung.Store(on)
}

func (r *hungRegion) serve(c net.Conn) {
	defer c.Close()
	// The reader goes on reading while answers wait (pipelined requests), so heads
	// counts every request that arrived.
	type batch struct {
		heads int
		wake  chan struct{} // nil: answer at once
	}
	pending := make(chan batch, 1024)
	go func() {
		for b := range pending {
			if b.wake != nil {
				<-b.wake
			}
			for range b.heads {
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Served-By: cloud\r\n\r\ncloud"))
			}
		}
	}()
	defer close(pending)
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		// One answer per head (pipelined heads may come in one read).
		heads := strings.Count(string(buf[:n]), "\r\n\r\n")
		if heads == 0 {
			continue
		}
		r.heads.Add(int64(heads))
		b := batch{heads: heads}
		r.mu.Lock()
		if r.hung.Load() {
			b.wake = r.wake
		}
		r.mu.Unlock()
		pending <- b
	}
}

const drillConf = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: drill }
timeouts: { connect: 500ms, response_header: 3s }
routes:
  - name: feed
    match: { path_prefix: / }
    percent: 50
    failover: idempotent
    breaker: { min_requests: 20, failure_ratio: 0.5, window: 10s, open_for: 5s {{SLOW}} }
`

// TestHungRegionDrill is the hung-region drill behind the README's figures: 32
// closed-loop clients, half of them moved to cloud, for 4 s of health, then cloud
// hangs for 10 s (it reads requests and answers none), then it recovers for 6 s. It
// prints the time to trip, the requests that waited the full response_header timeout
// (3 s), the failures during the hang and after the recovery, and the reads abandoned,
// for the classic breaker, with slow-call detection, and with abandon_reads too.
// It measures wall time on a busy machine, so it only runs with SHIFTGATE_DRILL=1.
func TestHungRegionDrill(t *testing.T) {
	if os.Getenv("SHIFTGATE_DRILL") == "" {
		t.Skip("a timing drill: run with SHIFTGATE_DRILL=1")
	}
	var table []string
	defer func() {
		t.Logf("%-50s %8s %12s %14s %13s %9s %10s", "breaker", "trip", "waited 3 s", "failed during", "failed after", "requests", "abandoned")
		for _, row := range table {
			t.Log(row)
		}
	}()
	for _, tc := range []struct{ name, slow string }{
		{"classic breaker", ""},
		{"slow calls 500ms + 5 consecutive failures", ", slow_call: { threshold: 500ms, ratio: 0.5 }, consecutive_failures: 5"},
		{"the same + abandon_reads", ", slow_call: { threshold: 500ms, ratio: 0.5, abandon_reads: true }, consecutive_failures: 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idc := startRegion(t, "idc")
			cloud := startHungRegion(t)
			gw := startGateway(t, drillConf, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.ln.Addr().String(), "SLOW": tc.slow})
			client := &fasthttp.Client{MaxConnsPerHost: 64, ReadTimeout: 10 * time.Second}
			var stop atomic.Bool
			var waitedFull, failedAfter, failedDuring, total atomic.Int64
			var recovered atomic.Int64 // unix nanos of the recovery
			var wg sync.WaitGroup
			for w := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
					for i := 0; !stop.Load(); i++ {
						req.SetRequestURI("http://" + gw.addr + "/feed")
						req.Header.Set("X-User-Id", "u-"+itoa(w*100000+i%50))
						start := time.Now()
						err := client.Do(req, resp)
						took := time.Since(start)
						total.Add(1)
						if took >= 3*time.Second {
							waitedFull.Add(1)
						}
						bad := err != nil || resp.StatusCode() >= 500
						if r := recovered.Load(); r != 0 && start.UnixNano() > r && bad {
							failedAfter.Add(1)
						} else if bad {
							failedDuring.Add(1)
						}
					}
				}()
			}
			time.Sleep(4 * time.Second)
			hungAt := time.Now()
			cloud.setHung(true)
			var trippedAt time.Time
			for time.Since(hungAt) < 10*time.Second {
				if trippedAt.IsZero() && gw.srv.Status().Routes[0].Breakers["cloud"] == "open" {
					trippedAt = time.Now()
				}
				time.Sleep(20 * time.Millisecond)
			}
			cloud.setHung(false)
			recovered.Store(time.Now().UnixNano())
			time.Sleep(6 * time.Second)
			stop.Store(true)
			wg.Wait()
			trip := "never"
			if !trippedAt.IsZero() {
				trip = trippedAt.Sub(hungAt).Round(10 * time.Millisecond).String()
			}
			abandoned := max(counterValue(gw.srv, `shiftgate_abandoned_reads_total{route="feed",region="cloud"}`), 0)
			t.Logf("%s: time to trip %s; requests that waited the full 3 s timeout: %d; failed during the hang: %d; failed after recovery: %d; requests: %d; abandoned: %d",
				tc.name, trip, waitedFull.Load(), failedDuring.Load(), failedAfter.Load(), total.Load(), abandoned)
			table = append(table, fmt.Sprintf("%-50s %8s %12d %14d %13d %9d %10d", tc.name, trip, waitedFull.Load(), failedDuring.Load(), failedAfter.Load(), total.Load(), abandoned))
		})
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
