package replay

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"time"
)

// headerList collects repeated -H flags.
type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

// Main runs `shiftgate loadtest -replay ACCESS_LOG`; it returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shiftgate loadtest -replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("replay", "", "access log to replay (JSON lines, as shiftgate's access_log writes them)")
	target := fs.String("target", "127.0.0.1:8080", "host:port to send the requests to (loopback or your own test hosts)")
	rate := fs.Float64("rate", defaultRate, "requests per second, open loop")
	methods := fs.String("methods", "GET,HEAD", "methods replayed; other lines are skipped (writes replay real writes: only against a test copy)")
	max := fs.Int("max", 0, "stop after this many requests (0: the whole log)")
	dur := fs.Duration("duration", 0, "stop after this long (0: the whole log)")
	loop := fs.Bool("loop", false, "start the log over at its end (needs -max or -duration)")
	host := fs.String("host", "", "Host header for every request (default: the logged host, else -target)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	var headers headerList
	fs.Var(&headers, "H", "header 'Name: value' added to every request (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: shiftgate loadtest -replay ACCESS_LOG [-target HOST:PORT] [-rate N] [-methods GET,HEAD] [-max N] [-duration D] [-loop] [-H 'Name: v']...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // the usage was asked for and printed
		}
		return 2
	}
	if *file == "" && fs.NArg() == 1 {
		*file = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if *file == "" {
		fs.Usage()
		return 2
	}
	if *loop && *max == 0 && *dur == 0 {
		fmt.Fprintln(stderr, "shiftgate loadtest -replay: -loop needs -max or -duration, so that it stops by itself")
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	res, err := Run(ctx, Options{File: *file, Target: *target, Rate: *rate, Methods: strings.Split(*methods, ","),
		Max: *max, Duration: *dur, Loop: *loop, Headers: headers, Host: *host})
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate loadtest -replay:", err)
		return 1
	}
	if *asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	fmt.Fprintf(stdout, "replayed %s against %s: %d sent in %s (%.0f/s), %d ok, %d errors, %d missed, %d lines filtered, %d bad lines\n",
		*file, *target, res.Sent, res.Elapsed.Round(time.Millisecond), float64(res.Sent)/max1(res.Elapsed.Seconds()),
		res.OK, res.Errors, res.Missed, res.Filtered, res.BadLines)
	codes := make([]int, 0, len(res.Status))
	for c := range res.Status {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(stdout, "  %d: %d\n", c, res.Status[c])
	}
	fmt.Fprintf(stdout, "latency p50 %s, p99 %s\n", res.P50, res.P99)
	return 0
}

func max1(x float64) float64 {
	if x <= 0 {
		return 1
	}
	return x
}
