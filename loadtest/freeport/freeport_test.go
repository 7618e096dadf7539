package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestPortsOutsideEphemeralRange: every port is below the ephemeral range, bindable,
// and never handed out twice.
func TestPortsOutsideEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if p < lowest || p >= low {
			t.Fatalf("port %d outside %d..%d", p, lowest, low-1)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	a, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("the address handed out cannot be bound: %v", err)
	}
	ln.Close()
}

// TestSkipsBoundPorts: a port someone listens on is not handed out.
func TestSkipsBoundPorts(t *testing.T) {
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	busy := map[int]bool{}
	for i := 0; i < 50; i++ {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		// Forget it was handed out, and hold it: the next calls must skip it.
		mu.Lock()
		delete(handed, p)
		mu.Unlock()
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		busy[p] = true
	}
	for i := 0; i < 300; i++ {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if busy[p] {
			t.Fatalf("port %d is listened on but was handed out", p)
		}
	}
}
