package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

const usageText = `usage: shiftgate loadtest [flags] URL
       shiftgate loadtest bench [flags]      (side-by-side bench; see -h there)
       shiftgate loadtest idle [flags] -pid PID URL   (memory per idle keep-alive client; see -h there)

Drives HTTP/1.1 load at URL (http:// or https://; loopback only, unless
-allow-remote) and prints req/s, errors by kind, answers per region (header
X-Shift-Region) and latency percentiles. Bound the run with -duration, -n or both.

`

// Main runs the loadtest verb: args are the arguments after "loadtest". It writes the
// result to stdout, the progress line and diagnostics to stderr, and returns the exit
// status: 0 when the run completed (whatever its error count), 1 when it could not run,
// 2 for bad usage. SIGINT or SIGTERM ends the run early and prints what it measured.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "bench" {
		return benchMain(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "idle" {
		return IdleMain(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	var (
		o       Options
		headers headerFlags
		body    string
		asJSON  bool
		quiet   bool
		mark    bool
	)
	fs.IntVar(&o.Conns, "conns", DefaultConns, "keep-alive `connections`, one worker each")
	fs.Float64Var(&o.Rate, "rate", 0, "open loop: total `req/s` at fixed intended send times (latency counted from them); 0 = closed loop")
	fs.DurationVar(&o.Duration, "duration", 0, "stop after this long (default 10s unless -n is set)")
	fs.Int64Var(&o.N, "n", 0, "stop after this many requests (0 = no count bound)")
	fs.DurationVar(&o.Warmup, "warmup", 0, "unmeasured load on the same connections before the measured -duration (needs -duration)")
	fs.BoolVar(&mark, "mark", false, "print \""+markBegin+"\" and \""+markEnd+"\" on stderr when the measured part begins and ends (for a harness that reads the server's CPU around it)")
	fs.IntVar(&o.Users, "users", 1000, "distinct user ids sent in the user-id header (0 = none)")
	fs.StringVar(&o.UserHeader, "user-header", DefaultUserHeader, "user-id header `name`")
	fs.StringVar(&o.UserPrefix, "user-prefix", DefaultUserPrefix, "user-id value prefix (value = prefix + number)")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed of the user-id draw")
	fs.StringVar(&o.Method, "method", "GET", "request method")
	fs.Var(&headers, "H", "extra request header `'Name: value'` (repeatable)")
	fs.StringVar(&body, "body", "", "request body")
	fs.DurationVar(&o.Timeout, "timeout", DefaultTimeout, "per-request read/write timeout")
	fs.StringVar(&o.RegionHeader, "region-header", DefaultRegionHeader, "response header counted per region")
	fs.BoolVar(&o.AllowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	fs.BoolVar(&o.NewConns, "new-conns", false, "every request on a new connection (Connection: close): new connections (TLS handshakes) per second")
	fs.StringVar(&o.TLS.CAFile, "cacert", "", "https: PEM `file` of CAs to verify the server with (default: system roots)")
	fs.StringVar(&o.TLS.ServerName, "sni", "", "https: server `name` to send and verify (default: the URL's host)")
	fs.BoolVar(&o.TLS.InsecureSkipVerify, "insecure", false, "https: accept any certificate")
	fs.StringVar(&o.TLS.Curve, "tls-curve", "", "https: pin the key exchange: x25519 or p256 (default: Go's preferences)")
	fs.BoolVar(&o.TLS.Resume, "tls-resume", false, "https: resume sessions on new connections (default: full handshakes)")
	fs.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	fs.BoolVar(&quiet, "quiet", false, "no progress line on stderr")
	fs.DurationVar(&o.ProgressEvery, "progress-every", DefaultProgressEvery, "interval of the progress line")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "loadtest: want exactly one URL after the flags")
		fs.Usage()
		return 2
	}
	o.URL = fs.Arg(0)
	o.Headers = headers
	// A user id given with -H is sent as given: -users would replace it on every
	// request, so the default -users steps aside, and an explicit one is a conflict.
	usersSet := false
	fs.Visit(func(f *flag.Flag) { usersSet = usersSet || f.Name == "users" })
	for _, h := range headers {
		if strings.EqualFold(h.Name, o.UserHeader) {
			if usersSet && o.Users > 0 {
				fmt.Fprintf(stderr, "loadtest: -H %s and -users %d both set the user id: drop -users to send the -H value, or drop the -H\n", h.Name, o.Users)
				return 2
			}
			o.Users = 0
		}
	}
	if body != "" {
		o.Body = []byte(body)
	}
	if o.Duration == 0 && o.N == 0 {
		o.Duration = defaultDuration
	}
	if !quiet || mark {
		// The progress line and the marks come from different goroutines.
		stderr = &lockedWriter{w: stderr}
	}
	if !quiet {
		o.Progress = stderr
	}
	if mark {
		o.OnMeasure = func(begin bool) {
			line := markEnd
			if begin {
				line = markBegin
			}
			fmt.Fprintln(stderr, line)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := Run(ctx, o)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadtest: interrupted; the result covers the run so far")
	}
	if code := writeResult(stdout, stderr, asJSON, res); code != 0 {
		return code
	}
	if n := res.unanswered(); n > 0 && n == res.Requests {
		// A measurement of nothing: no gateway answered (an answer of any status
		// would be a measurement). Scripts must not read it as a run that passed.
		fmt.Fprintf(stderr, "loadtest: no answer to any of %d requests (%s): is the gateway at %s up?\n", n, res.errorSummary(), o.URL)
		return 1
	}
	return 0
}

// writeResult prints a verb's result as one JSON object or as its text, and returns
// the exit status: 1 when the output could not be written.
func writeResult(stdout, stderr io.Writer, asJSON bool, res interface{ WriteText(io.Writer) error }) int {
	var err error
	if asJSON {
		err = json.NewEncoder(stdout).Encode(res)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// defaultDuration bounds a command-line run that names no bound.
const defaultDuration = 10 * time.Second

// headerFlags collects repeated -H 'Name: value' flags.
type headerFlags []Header

func (h *headerFlags) String() string {
	parts := make([]string, len(*h))
	for i, x := range *h {
		parts[i] = x.Name + ": " + x.Value
	}
	return strings.Join(parts, ", ")
}

func (h *headerFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("want 'Name: value', got %q", s)
	}
	*h = append(*h, Header{Name: name, Value: strings.TrimSpace(value)})
	return nil
}

// The lines -mark prints on stderr; the bench reads the proxy's CPU at each.
const (
	markBegin = "loadtest: measuring"
	markEnd   = "loadtest: measured"
)

// lockedWriter serializes writes from the progress loop and the measure marks.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
