package loadtest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const idleUsageText = `usage: shiftgate loadtest idle [flags] -pid PID URL
       shiftgate loadtest idle [flags] -floor

Measures what an idle keep-alive client costs a server. It reads the resident set
(VmRSS in /proc/PID/status) of process PID, opens -n connections to URL (loopback
only; https:// opens them over TLS), sends one GET on each and reads the answer, leaves them idle, reads the RSS
again, closes them all and reads it once more after -after. It prints the three
figures and the cost per idle connection, (peak - before) / n.

-floor measures the same against a built-in server whose goroutines, once they have
answered, only block in a read: what an idle connection costs any Go server.

`

// IdleOptions configures an idle-memory run.
type IdleOptions struct {
	URL        string        // http://host:port/path; loopback only
	PID        int           // process whose RSS is read
	N          int           // idle clients
	Settle     time.Duration // wait before the first reading
	Hold       time.Duration // how long the clients stay idle before the second reading
	After      time.Duration // wait after the clients leave before the last reading
	MetricsURL string        // optional: Prometheus text whose go_memstats are read too
	Timeout    time.Duration // per-connection dial, write and read timeout
	// Insecure accepts any certificate of an https:// URL (a self-signed one on
	// loopback); otherwise it is verified against the system roots.
	Insecure bool
}

// IdleResult is what an idle-memory run measured. RSS figures are in bytes.
type IdleResult struct {
	Target        string             `json:"target,omitempty"`
	PID           int                `json:"pid"`
	Clients       int                `json:"clients"`
	RSSBefore     int64              `json:"rss_before"`
	RSSPeak       int64              `json:"rss_peak"`
	RSSAfter      int64              `json:"rss_after"`
	PerConnBytes  float64            `json:"per_conn_bytes"`
	MetricsBefore map[string]float64 `json:"metrics_before,omitempty"`
	MetricsPeak   map[string]float64 `json:"metrics_peak,omitempty"`
	MetricsAfter  map[string]float64 `json:"metrics_after,omitempty"`
}

// WriteText prints r for a reader.
func (r IdleResult) WriteText(w io.Writer) error {
	kib := func(b int64) float64 { return float64(b) / 1024 }
	target := r.Target
	if target == "" {
		target = "pid " + strconv.Itoa(r.PID)
	}
	_, err := fmt.Fprintf(w, "%s: %d idle clients\n  RSS before %.0f KiB, with them %.0f KiB, after they left %.0f KiB\n  per idle connection: %.2f KiB\n",
		target, r.Clients, kib(r.RSSBefore), kib(r.RSSPeak), kib(r.RSSAfter), r.PerConnBytes/1024)
	if err != nil {
		return err
	}
	for _, m := range idleMetrics {
		b, ok1 := r.MetricsBefore[m]
		p, ok2 := r.MetricsPeak[m]
		a, ok3 := r.MetricsAfter[m]
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		if _, err := fmt.Fprintf(w, "  %s: %.0f KiB, %.0f KiB, %.0f KiB (%.2f KiB per connection)\n",
			m, b/1024, p/1024, a/1024, (p-b)/1024/float64(r.Clients)); err != nil {
			return err
		}
	}
	return nil
}

// idleMetrics are the go_memstats families an idle run reads from -metrics.
var idleMetrics = []string{
	"go_memstats_heap_inuse_bytes",
	"go_memstats_stack_inuse_bytes",
	"go_memstats_heap_released_bytes",
	"go_memstats_sys_bytes",
}

// IdleMain runs `loadtest idle`: args are the arguments after "idle".
func IdleMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return idleMain(ctx, args, stdout, stderr)
}

// idleFlags parses the arguments of `loadtest idle`. floor reports -floor, serveFloor
// the hidden -serve-floor (the floor server itself, run by -floor as a child).
func idleFlags(args []string, stderr io.Writer) (o IdleOptions, floor, serveFloor, asJSON bool, code int) {
	fs := flag.NewFlagSet("loadtest idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, idleUsageText)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.N, "n", 1000, "idle keep-alive `clients`")
	fs.IntVar(&o.PID, "pid", 0, "`PID` of the server whose RSS is read")
	fs.DurationVar(&o.Settle, "settle", 2*time.Second, "wait before the first RSS reading")
	fs.DurationVar(&o.Hold, "hold", 2*time.Second, "how long the clients stay idle before the RSS is read with them (shiftgate parks idle connections after 1 s and returns the memory they left on a 10 s tick: 25s shows its steady state)")
	fs.DurationVar(&o.After, "after", 15*time.Second, "wait after the clients leave before the last reading (shiftgate returns memory on a 10 s tick)")
	fs.StringVar(&o.MetricsURL, "metrics", "", "optional Prometheus `URL` whose go_memstats gauges are read at each step")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per-connection dial, write and read timeout")
	fs.BoolVar(&o.Insecure, "insecure", false, "accept any certificate of an https:// URL (a self-signed one on loopback)")
	fs.BoolVar(&floor, "floor", false, "measure the built-in Go floor server instead of -pid and URL")
	fs.BoolVar(&serveFloor, "serve-floor", false, "")
	fs.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, false, false, false, 0
		}
		return o, false, false, false, 2
	}
	bad := func(format string, a ...any) (IdleOptions, bool, bool, bool, int) {
		fmt.Fprintf(stderr, "loadtest idle: "+format+"\n", a...)
		return o, false, false, false, 2
	}
	switch {
	case serveFloor:
		return o, false, true, false, -1
	case o.N <= 0:
		return bad("-n must be positive, got %d", o.N)
	case o.Settle < 0 || o.Hold < 0 || o.After < 0 || o.Timeout <= 0:
		return bad("-settle, -hold and -after must not be negative, -timeout must be positive")
	case floor && (o.PID != 0 || fs.NArg() != 0):
		return bad("-floor runs its own server: give neither -pid nor a URL")
	case floor:
		return o, true, false, asJSON, -1
	case o.PID <= 0:
		return bad("-pid is required (the server whose memory is measured)")
	case fs.NArg() != 1:
		return bad("want exactly one URL after the flags")
	}
	o.URL = fs.Arg(0)
	if _, _, err := idleTarget(o.URL); err != nil {
		return bad("%v", err)
	}
	return o, false, false, asJSON, -1
}

// idleTarget splits an http:// or https:// URL into a loopback host:port and a
// request path.
func idleTarget(raw string) (addr, path string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", fmt.Errorf("%q: want an http:// or https:// URL", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && host != "localhost" {
		return "", "", fmt.Errorf("%q: the target must be a loopback address", raw)
	}
	port := u.Port()
	switch {
	case port != "":
	case u.Scheme == "https":
		port = "443"
	default:
		port = "80"
	}
	path = u.RequestURI()
	return net.JoinHostPort(host, port), path, nil
}

func idleMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, floor, serveFloor, asJSON, code := idleFlags(args, stderr)
	if code >= 0 {
		return code
	}
	if serveFloor {
		return floorServerMain(ctx, stdout, stderr)
	}
	target := ""
	if floor {
		stopFloor, err := startFloorChild(&o)
		if err != nil {
			fmt.Fprintln(stderr, "loadtest idle:", err)
			return 1
		}
		defer stopFloor()
		target = "Go floor"
	}
	res, err := RunIdle(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest idle:", err)
		return 1
	}
	res.Target = target
	return writeResult(stdout, stderr, asJSON, res)
}

// RunIdle opens o.N idle keep-alive clients against o.URL and reads the RSS of o.PID
// before, while they are open, and after they left.
func RunIdle(ctx context.Context, o IdleOptions) (IdleResult, error) {
	addr, path, err := idleTarget(o.URL)
	if err != nil {
		return IdleResult{}, err
	}
	res := IdleResult{PID: o.PID, Clients: o.N}
	read := func(wait time.Duration, rss *int64, m *map[string]float64) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		v, err := procRSS(o.PID)
		if err != nil {
			return err
		}
		*rss = v
		if o.MetricsURL != "" {
			if *m, err = scrapeMemstats(ctx, o.MetricsURL); err != nil {
				return err
			}
		}
		return nil
	}
	if err := read(o.Settle, &res.RSSBefore, &res.MetricsBefore); err != nil {
		return res, err
	}
	var tlsCfg *tls.Config
	if strings.HasPrefix(o.URL, "https:") {
		host, _, _ := net.SplitHostPort(addr)
		tlsCfg = &tls.Config{ServerName: host, InsecureSkipVerify: o.Insecure, NextProtos: []string{"http/1.1"}} //nolint:gosec // opt-in, loopback
	}
	conns, err := openIdle(ctx, addr, path, o.N, o.Timeout, tlsCfg)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return res, err
	}
	if err := read(o.Hold, &res.RSSPeak, &res.MetricsPeak); err != nil {
		return res, err
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	if err := read(o.After, &res.RSSAfter, &res.MetricsAfter); err != nil {
		return res, err
	}
	res.PerConnBytes = float64(res.RSSPeak-res.RSSBefore) / float64(o.N)
	return res, nil
}

// idleDialers bounds how many connections are opened at once, so that a burst does
// not overflow the server's accept queue.
const idleDialers = 32

// openIdle opens n connections to addr (over TLS with tlsCfg, when set), sends one
// GET path on each and reads its answer; it returns the connections, left open and
// idle.
func openIdle(ctx context.Context, addr, path string, n int, timeout time.Duration, tlsCfg *tls.Config) ([]net.Conn, error) {
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: shiftgate-loadtest-idle\r\n\r\n")
	conns := make([]net.Conn, n)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	d := net.Dialer{Timeout: timeout}
	for range min(idleDialers, n) {
		wg.Go(func() {
			for i := range next {
				c, err := idleOne(ctx, &d, addr, req, timeout, tlsCfg)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("client %d: %w", i, err)
				}
				conns[i] = c
				mu.Unlock()
			}
		})
	}
	for i := range n {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	out := conns[:0]
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return out, firstErr
}

// idleOne opens one connection (TLS with tlsCfg, when set), makes one request on it
// and reads the whole answer.
func idleOne(ctx context.Context, d *net.Dialer, addr string, req []byte, timeout time.Duration, tlsCfg *tls.Config) (net.Conn, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout)) //nolint:errcheck // a dead conn fails below
	if tlsCfg != nil {
		tc := tls.Client(c, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.Close {
		err = fmt.Errorf("the server closed the connection after answering %s", resp.Status)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{}) //nolint:errcheck
	return c, nil
}

// scrapeMemstats reads the idleMetrics gauges from a Prometheus text page.
func scrapeMemstats(ctx context.Context, u string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return parseMemstats(resp.Body)
}

// parseMemstats picks the idleMetrics samples out of Prometheus text.
func parseMemstats(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "go_memstats_") {
			continue
		}
		for _, m := range idleMetrics {
			if name == m {
				v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
				if err != nil {
					return nil, fmt.Errorf("metrics: %s: %w", name, err)
				}
				out[name] = v
			}
		}
	}
	return out, sc.Err()
}

// startFloorChild runs this program's floor server as a child process and points o at
// it; the function it returns stops the child.
func startFloorChild(o *IdleOptions) (func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "loadtest", "idle", "-serve-floor")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
		cmd.Wait()                          //nolint:errcheck
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		stop()
		return nil, fmt.Errorf("floor server did not start: %q %v", line, err)
	}
	o.PID = cmd.Process.Pid
	o.URL = "http://" + addr + "/"
	return stop, nil
}

// floorServerMain serves the floor on a free loopback port until ctx ends.
func floorServerMain(ctx context.Context, stdout, stderr io.Writer) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "loadtest idle:", err)
		return 1
	}
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	ServeFloor(ln) //nolint:errcheck // ends when ln closes
	return 0
}

// floorHeads are the buffers the floor server reads request heads into.
var floorHeads = sync.Pool{New: func() any { b := make([]byte, 1024); return &b }}

// floorAnswer is the floor server's answer to every request.
var floorAnswer = []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")

// ServeFloor is the least an idle keep-alive connection can cost a Go server: one
// goroutine per connection that reads a request head into a pooled buffer, answers
// it, gives the buffer back and then blocks in a one-byte read until the client
// leaves. It serves ln until ln is closed.
func ServeFloor(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go floorConn(c)
	}
}

func floorConn(c net.Conn) {
	defer c.Close()
	bp := floorHeads.Get().(*[]byte)
	n := 0
	for n < len(*bp) {
		m, err := c.Read((*bp)[n:])
		n += m
		if err != nil || strings.Contains(string((*bp)[:n]), "\r\n\r\n") {
			break
		}
	}
	floorHeads.Put(bp)
	if _, err := c.Write(floorAnswer); err != nil {
		return
	}
	var b [1]byte
	c.Read(b[:]) //nolint:errcheck // the client leaving ends the wait
}
