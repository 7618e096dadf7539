// Command floor runs one of the bench's floor proxies: the least a Go program can do
// to forward the bench's HTTP/1.1 keep-alive requests to its backend, with no
// routing and no features, so that the bench can show what Go itself reaches on the
// same workload as nginx and shiftgate.
//
//	floor -mode netpoll|fasthttp|epoll [-raw] [-wait syscall|netpoll|held] -listen ADDR -backend ADDR
//
// netpoll is net.Conn with a goroutine per client connection (Go's netpoller);
// fasthttp is fasthttp.Server in front of a fasthttp.HostClient; epoll is one
// event loop per GOMAXPROCS on raw nonblocking sockets, edge-triggered, the way
// nginx works; -raw makes its reads and writes with syscall.RawSyscall, without the
// runtime's system call bookkeeping, and -wait chooses how an event loop waits for
// its next events (see waitSyscall, waitNetpoll, waitHeld). Every mode keeps one upstream connection per
// client connection and frames messages by Content-Length only (chunked requests
// are refused). It serves until SIGTERM or SIGINT.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("mode", "netpoll", "netpoll, fasthttp or epoll")
	listen := fs.String("listen", "127.0.0.1:0", "listen `address` (loopback)")
	backend := fs.String("backend", "", "backend `address` (host:port)")
	raw := fs.Bool("raw", false, "epoll: read and write with syscall.RawSyscall")
	wait := fs.String("wait", waitSyscall, "epoll: wait for events in a blocking system call (syscall), in Go's netpoller (netpoll), or in a blocking raw call that keeps the processor (held)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *backend == "" || fs.NArg() != 0 || (*raw && *mode != "epoll") || (*wait != waitSyscall && *mode != "epoll") {
		fmt.Fprintln(stderr, "usage: floor -mode netpoll|fasthttp|epoll [-raw] [-wait syscall|netpoll|held] -listen ADDR -backend ADDR")
		return 2
	}
	s, err := start(*mode, *listen, *backend, *raw, *wait)
	if err != nil {
		fmt.Fprintln(stderr, "floor:", err)
		return 1
	}
	fmt.Fprintln(stdout, "listening", s.addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	s.close()
	return 0
}

// server is a running floor proxy.
type server interface {
	addr() string
	close()
}

func start(mode, listen, backend string, raw bool, wait string) (server, error) {
	switch mode {
	case "netpoll":
		return startNetpoll(listen, backend)
	case "fasthttp":
		return startFasthttp(listen, backend)
	case "epoll":
		return startEpoll(listen, backend, raw, wait)
	}
	return nil, fmt.Errorf("unknown mode %q", mode)
}
