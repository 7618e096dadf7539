package wire

import (
	"syscall"
	"testing"
	"time"
)

// A second Close must not write to the descriptors the epoll goroutine closed after
// the first: their numbers belong to other files by then (a test's certificate was
// once corrupted that way).
func TestParkingCloseTwice(t *testing.T) {
	p := &Parking{After: time.Second}
	p.mu.Lock()
	pp := p.pollLocked()
	p.mu.Unlock()
	if pp == nil {
		t.Fatal("no epoll set")
	}
	wake := pp.wake[1]
	p.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(wake), syscall.F_GETFD, 0); e == syscall.EBADF {
			break // the loop ended and closed its descriptors
		}
		if time.Now().After(deadline) {
			t.Fatal("the epoll goroutine did not end after Close")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Another file now has the wake pipe's number.
	var q [2]int
	if err := syscall.Pipe2(q[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(q[0])
	defer syscall.Close(q[1])
	if err := syscall.Dup2(q[1], wake); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(wake)
	p.Close()
	if n, err := syscall.Read(q[0], make([]byte, 1)); n > 0 || err != syscall.EAGAIN {
		t.Fatalf("a second Close wrote to a descriptor it no longer owns (read %d, %v)", n, err)
	}
}
