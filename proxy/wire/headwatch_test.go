package wire

import (
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

type nopWatch struct{}

func (nopWatch) HeadLimit() time.Duration { return 0 }
func (nopWatch) HeadWait(net.Conn) bool   { return true }
func (nopWatch) HeadDone() bool           { return false }

// A watched request finds its watch, an unwatched one none; when a request's probe
// sequence is full it is not watched, and Unwatch of that is harmless.
func TestWatchTable(t *testing.T) {
	if watching(new(fasthttp.Request)) != nil {
		t.Fatal("an unwatched request has a watch")
	}
	reqs := make([]*fasthttp.Request, 64)
	slots := make([]int, len(reqs))
	for i := range reqs {
		reqs[i] = new(fasthttp.Request)
		if slots[i] = Watch(reqs[i], nopWatch{}); slots[i] < 0 {
			t.Fatalf("request %d: table full", i)
		}
	}
	for i, r := range reqs {
		if watching(r) == nil {
			t.Errorf("request %d: no watch", i)
		}
	}
	if watching(new(fasthttp.Request)) != nil {
		t.Error("an unwatched request has a watch")
	}
	// Fill the probe sequence of one request.
	r := new(fasthttp.Request)
	var held []int
	h := watchHash(r)
	for i := uint64(0); i < watchProbes; i++ {
		s := &watches.slots[(h+i)&(watchSlots-1)]
		if s.req.CompareAndSwap(nil, new(fasthttp.Request)) {
			held = append(held, int((h+i)&(watchSlots-1)))
			watches.active.Add(1)
		}
	}
	if got := Watch(r, nopWatch{}); got != -1 {
		t.Errorf("Watch with a full probe sequence = %d, want -1", got)
	}
	Unwatch(-1)
	for _, s := range held {
		Unwatch(s)
	}
	for i, s := range slots {
		Unwatch(s)
		if watching(reqs[i]) != nil {
			t.Errorf("request %d: still watched after Unwatch", i)
		}
	}
	if n := watches.active.Load(); n != 0 {
		t.Errorf("active = %d after every Unwatch, want 0", n)
	}
}
