// Package freeport finds loopback ports for servers that a test or the bench starts a
// moment later (a child process, a gateway reading its config).
//
// The usual trick, listening on port 0 and closing, returns a port from the kernel's
// ephemeral range, the range it also hands to outgoing connections: on a busy machine
// another test's client took such a port before the server meant to bind it did, and
// the server failed with "address already in use". Ports here are drawn below that
// range, where no outgoing connection is given one, are checked free by binding them,
// and are never handed out twice by one process.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the first port drawn: below it live well-known and registered services
// (and the reference config's 8080, 9001, 9002, 9011, 9090).
const lowest = 10000

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// Addr returns "127.0.0.1:PORT" for a port that was free a moment ago and lies
// outside the ephemeral range.
func Addr() (string, error) {
	p, err := Port()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// Port returns a loopback port that was free a moment ago and lies outside the
// ephemeral range.
func Port() (int, error) {
	top := ephemeralLow()
	if top-lowest < 1000 {
		// No room below the ephemeral range: fall back to the kernel's choice.
		return kernelPort()
	}
	mu.Lock()
	defer mu.Unlock()
	for range 500 {
		p := lowest + rand.IntN(top-lowest)
		if handed[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		handed[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("freeport: no free port found in %d..%d", lowest, top-1)
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's default
// when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return 32768
	}
	return n
}

func kernelPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
