package loadtest

import (
	"errors"
	"slices"
)

// Floor targets: the smallest Go proxies for the bench's workload (the floor binary,
// loadtest/bench/floor), with no routing and no features, to show what Go itself
// reaches where nginx and shiftgate are measured.
const (
	// targetFloorNetpoll is net.Conn with a goroutine per client connection.
	targetFloorNetpoll = "floor-netpoll"
	// targetFloorFasthttp is fasthttp.Server handing every request to a HostClient.
	targetFloorFasthttp = "floor-fasthttp"
	// targetFloorEpoll is an edge-triggered epoll loop per GOMAXPROCS, no goroutine
	// per connection: nginx's model in Go.
	targetFloorEpoll = "floor-epoll"
	// targetFloorEpollRaw is floor-epoll reading and writing with
	// syscall.RawSyscall, without the runtime's system call bookkeeping.
	targetFloorEpollRaw = "floor-epoll-raw"
	// targetFloorEpollNetpoll is floor-epoll-raw waiting for its events in Go's
	// netpoller, where every goroutine-per-connection server's wake-ups go.
	targetFloorEpollNetpoll = "floor-epoll-netpoll"
	// targetFloorEpollHeld is floor-epoll-raw blocking in epoll_wait without
	// giving up its processor, as nginx's worker does: no runtime work per wake-up.
	targetFloorEpollHeld = "floor-epoll-held"
)

var floorTargets = []string{targetFloorNetpoll, targetFloorFasthttp, targetFloorEpoll, targetFloorEpollRaw,
	targetFloorEpollNetpoll, targetFloorEpollHeld}

// floorArgs are the floor binary's flags for the named target.
func floorArgs(name, listen, backend string) []string {
	args := []string{"-listen", listen, "-backend", backend, "-mode"}
	switch name {
	case targetFloorNetpoll:
		return append(args, "netpoll")
	case targetFloorFasthttp:
		return append(args, "fasthttp")
	case targetFloorEpollRaw:
		return append(args, "epoll", "-raw")
	case targetFloorEpollNetpoll:
		return append(args, "epoll", "-raw", "-wait", "netpoll")
	case targetFloorEpollHeld:
		return append(args, "epoll", "-raw", "-wait", "held")
	}
	return append(args, "epoll")
}

func hasFloor(targets []string) bool {
	return slices.ContainsFunc(targets, func(t string) bool { return slices.Contains(floorTargets, t) })
}

var errNoFloor = errors.New("bench: the floor targets need the floor binary: " +
	"go build -o floor ./loadtest/bench/floor and pass -floor ./floor (bench.sh does both)")
