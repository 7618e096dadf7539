package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/shiftgate/shiftgate/loadtest/standin"
)

// BackendMain runs the hidden backend verb: a stand-in region (see package standin)
// listening on -listen, labelling answers with -region and, with -body-size N > 0,
// answering a fixed N-byte body. It prints "listening ADDR" on stdout once it accepts
// connections (so -listen 127.0.0.1:0 can be used), serves until SIGINT or SIGTERM,
// and returns the exit status: 0 after a clean stop, 1 when it cannot listen, 2 for
// bad usage.
func BackendMain(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return backendMain(ctx, args, stdout, stderr)
}

// backendMain is BackendMain with the stop signal as a context, for tests.
func backendMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "listen `address`")
	region := fs.String("region", "backend", "region name sent in the X-Served-By header")
	bodySize := fs.Int("body-size", 0, "answer a fixed body of this many `bytes` (0: a short JSON label)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 || *bodySize < 0 {
		fmt.Fprintln(stderr, "usage: shiftgate backend [-listen ADDR] [-region NAME] [-body-size N]")
		return 2
	}
	srv, err := standin.Start(*region, *listen, standin.Options{BodySize: *bodySize})
	if err != nil {
		fmt.Fprintln(stderr, "backend:", err)
		return 1
	}
	fmt.Fprintln(stdout, "listening", srv.Addr)
	<-ctx.Done()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(stderr, "backend:", err)
		return 1
	}
	return 0
}
