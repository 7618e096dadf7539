package breaker

import (
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// abandoning is a breaker that abandons reads and opens on its first failure.
func abandoning() *Breaker {
	return New(Settings{ConsecutiveFailures: 1, OpenFor: time.Second, SlowCallThreshold: 200 * time.Millisecond, AbandonReads: true}, nil)
}

// readHead stands for the transport: it waits on conn for an answer's head under w,
// and reports what the read returned and whether w said it was abandoned.
func readHead(w *Waiter, conn net.Conn) (abandoned bool, err error) {
	conn.SetReadDeadline(time.Now().Add(time.Hour))
	if !w.HeadWait(conn) {
		return true, nil
	}
	var buf [1]byte
	_, err = conn.Read(buf[:])
	return w.HeadDone(), err
}

func TestWaitOffWithoutAbandonReads(t *testing.T) {
	for _, s := range []Settings{
		{},
		{SlowCallThreshold: time.Second},
		{AbandonReads: true}, // no threshold: ignored
	} {
		b := New(s, nil)
		if w := b.Wait(); w != nil {
			t.Errorf("%+v: Wait = %p, want nil", s, w)
		}
		if n := b.Abandoned(); n != 0 {
			t.Errorf("%+v: Abandoned = %d", s, n)
		}
	}
	if err := (Settings{AbandonReads: true}).Validate(); err == nil {
		t.Error("Validate accepts abandon_reads without a slow-call threshold")
	}
}

// A request blocked reading its head is woken when the breaker opens, and told it
// was abandoned.
func TestOpenCutsWaitingRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := abandoning()
		client, server := net.Pipe()
		defer server.Close()
		defer client.Close()
		type result struct {
			err                 error
			abandoned, unregged bool
		}
		done := make(chan result, 1)
		go b.Do(func() Outcome {
			w := b.Wait()
			ab, err := readHead(w, client)
			done <- result{err, ab, b.Done(w)}
			return Failure
		})
		synctest.Wait() // blocked in Read
		pass(t, b, Failure)
		if b.State() != Open {
			t.Fatalf("state %v, want open", b.State())
		}
		r := <-done
		if !errors.Is(r.err, os.ErrDeadlineExceeded) || !r.abandoned || !r.unregged {
			t.Fatalf("read err %v, HeadDone %v, Done %v; want a deadline error and abandoned", r.err, r.abandoned, r.unregged)
		}
		if n := b.Abandoned(); n != 1 {
			t.Errorf("Abandoned = %d, want 1", n)
		}
	})
}

// A request registered but not yet reading when the breaker opens gives up when it
// gets there; one that got its head before is left alone.
func TestOpenCutsArmedNotAnswered(t *testing.T) {
	b := abandoning()
	armed := make(chan *Waiter)
	gotHead := make(chan *Waiter)
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		b.Do(func() Outcome { w := b.Wait(); armed <- w; <-release; return Success })
	})
	wg.Go(func() {
		b.Do(func() Outcome {
			w := b.Wait()
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			if !w.HeadWait(c1) || w.HeadDone() {
				t.Error("a head read before the breaker opened was abandoned")
			}
			gotHead <- w
			<-release
			return Success
		})
	})
	wa, wh := <-armed, <-gotHead
	pass(t, b, Failure) // opens
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if wa.HeadWait(c1) {
		t.Error("HeadWait on a request registered before the breaker opened: true, want false (abandoned)")
	}
	if !b.Done(wa) {
		t.Error("Done(armed) = false, want abandoned")
	}
	if b.Done(wh) {
		t.Error("Done(answered) = true, want not abandoned")
	}
	close(release)
	wg.Wait()
	if n := b.Abandoned(); n != 1 {
		t.Errorf("Abandoned = %d, want 1", n)
	}
}

// A request registered while the breaker is open (it opened between letting the
// request through and the registration) is abandoned at once.
func TestWaitWhileOpen(t *testing.T) {
	b := abandoning()
	pass(t, b, Failure)
	w := b.Wait()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if w.HeadWait(c1) {
		t.Error("HeadWait = true while open, want false")
	}
	if !b.Done(w) {
		t.Error("Done = false, want abandoned")
	}
}

// A half-open probe waits at most the slow-call threshold; other requests their own
// timeout.
func TestProbeHeadLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := abandoning()
		var limit time.Duration
		b.Do(func() Outcome { w := b.Wait(); limit = w.HeadLimit(); b.Done(w); return Success })
		if limit != 0 {
			t.Errorf("closed: HeadLimit = %v, want 0", limit)
		}
		pass(t, b, Failure)
		time.Sleep(2 * time.Second)
		b.Do(func() Outcome { w := b.Wait(); limit = w.HeadLimit(); b.Done(w); return Failure })
		if b.Transitions(Open, HalfOpen) != 1 {
			t.Fatal("the breaker did not go half-open")
		}
		if limit != 200*time.Millisecond {
			t.Errorf("half-open probe: HeadLimit = %v, want the slow-call threshold 200ms", limit)
		}
	})
}

// Nodes are reused: registering costs no allocation once a node is free.
func TestWaitAllocs(t *testing.T) {
	b := abandoning()
	b.Done(b.Wait())
	if n := testing.AllocsPerRun(1000, func() { b.Done(b.Wait()) }); n != 0 {
		t.Errorf("%.1f allocations per Wait/Done, want 0", n)
	}
	if n := b.WaitNodes(); n != 1 {
		t.Errorf("WaitNodes = %d, want 1", n)
	}
}

// Requests come and go while the breaker opens and closes: every one is unregistered
// whatever happened (run with -race).
func TestWaitConcurrent(t *testing.T) {
	b := New(Settings{ConsecutiveFailures: 1, OpenFor: time.Millisecond, HalfOpenProbes: 1,
		SlowCallThreshold: time.Millisecond, AbandonReads: true}, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				b.Do(func() Outcome {
					w := b.Wait()
					c1, c2 := net.Pipe()
					if w.HeadWait(c1) {
						w.HeadDone()
					}
					c1.Close()
					c2.Close()
					b.Done(w)
					if (g+i)%7 == 0 {
						return Failure
					}
					return Success
				})
			}
		})
	}
	wg.Wait()
	b.waits.mu.Lock()
	defer b.waits.mu.Unlock()
	if b.waits.head != nil {
		t.Error("a request is still registered")
	}
}
