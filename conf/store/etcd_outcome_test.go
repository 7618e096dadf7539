package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store/etcdtest"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// stallRelay forwards loopback TCP connections to an etcd and holds etcd's answers
// back until a time the test sets: requests still reach etcd, which applies them, but
// their answers come late, as from an etcd that stalls or a network that loses the
// way back.
type stallRelay struct {
	ln     net.Listener
	target string
	until  atomic.Int64 // unix nanoseconds; answers wait until then
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newStallRelay(t *testing.T, endpoint string) *stallRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &stallRelay{ln: ln, target: strings.TrimPrefix(endpoint, "http://")}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *stallRelay) endpoint() string { return "http://" + r.ln.Addr().String() }

// hold keeps etcd's answers back for d from now.
func (r *stallRelay) hold(d time.Duration) { r.until.Store(time.Now().Add(d).UnixNano()) }

func (r *stallRelay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, up)
		r.mu.Unlock()
		r.wg.Add(2)
		go func() { defer r.wg.Done(); io.Copy(up, c); up.Close() }() //nolint:errcheck // ends with either side
		go func() { defer r.wg.Done(); r.answers(c, up); c.Close() }()
	}
}

// answers copies etcd's bytes to the client, each read once the hold has passed.
func (r *stallRelay) answers(c, up net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		for {
			wait := time.Until(time.Unix(0, r.until.Load()))
			if wait <= 0 {
				break
			}
			time.Sleep(min(wait, 5*time.Millisecond))
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestEtcdStoreWriteOutcomeUnknown: a fleet write whose transaction reached etcd but
// whose answer did not come in time is not reported as "nothing was changed" (ErrDown,
// with the advice to write with -local): etcd applied it, and the error says the
// change may or may not have taken effect and to check status -fleet first. When etcd
// answers again before the read-back gives up, the write is found and stands. Before,
// both ended as "the shared override store is unreachable ... nothing was changed",
// while every other instance applied the change.
func TestEtcdStoreWriteOutcomeUnknown(t *testing.T) {
	srv := etcdtest.Start(t)
	relay := newStallRelay(t, srv.Endpoint)
	s := newStore(t, relay.endpoint(), "", "gw-a")
	if _, err := s.Load(); err != nil {
		t.Fatal(err)
	}
	raw := rawClient(t, srv.Endpoint) // straight to etcd, past the relay
	rollbackOn := func(o *conf.Overrides) error {
		o.Rollback = conf.Rollback{On: true, Who: "tester", At: time.Now().UTC()}
		return nil
	}

	// The answer stays away past the write's deadline and the read-back's.
	s.beforeCommit = func() { relay.hold(2*testTimeout + time.Second) }
	start := time.Now()
	_, err := s.Update(context.Background(), rollbackOn)
	t.Logf("write whose answer did not come, after %s: %v", time.Since(start), err)
	if !errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrDown) {
		t.Fatalf("error %v, want ErrOutcomeUnknown and not ErrDown", err)
	}
	for _, want := range []string{"may or may not have taken effect", "shiftgate status -fleet", "before trying again or writing with -local"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("error %q says nothing was changed", err)
	}
	resp, err := raw.Get(context.Background(), testPrefix+"overrides/rollback")
	if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), `"on":true`) {
		t.Fatalf("etcd after the unanswered write: %v %v; the write was applied, which is why nothing-was-changed was wrong", resp, err)
	}

	// The answer comes a moment after the deadline: the read-back finds the write.
	s.beforeCommit = func() { relay.hold(testTimeout + 500*time.Millisecond) }
	o, err := s.Update(context.Background(), setSplit("feed", 2500))
	if err != nil {
		t.Fatalf("write found by the read-back: %v", err)
	}
	resp, err = raw.Get(context.Background(), testPrefix+"overrides/routes/feed")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].ModRevision != o.Revision || o.Routes["feed"].PercentBP != 2500 || !o.Rollback.On {
		t.Fatalf("write result %+v, etcd %v %v", o, resp, err)
	}
	if h := s.Health(); !h.Up || h.StoreRevision != o.Revision {
		t.Fatalf("health after the write read back %+v", h)
	}
	s.beforeCommit = nil

	// With etcd gone before the write, nothing was sent: ErrDown, nothing was changed.
	srv.Stop()
	_, err = s.Update(context.Background(), setSplit("feed", 5000))
	if !errors.Is(err, ErrDown) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("write with etcd gone: %v, want ErrDown", err)
	}
}

// TestOutcomeUnknown sorts the errors a write can end with: only a write the client
// had no connection for, or that etcd refused, certainly changed nothing.
func TestOutcomeUnknown(t *testing.T) {
	cases := []struct {
		err     error
		unknown bool
	}{
		{context.DeadlineExceeded, true},
		{fmt.Errorf("wrapped: %w", context.Canceled), true},
		{rpctypes.ErrTimeout, true},
		{rpctypes.ErrLeaderChanged, true},
		{status.Error(codes.Unavailable, "error reading from server: EOF"), true},
		{errors.New("something else"), true},
		{status.Error(codes.Unavailable, "there is no connection available"), false},
		{status.Error(codes.Unavailable, "there is no address available"), false},
		{rpctypes.ErrNoSpace, false},
		{rpctypes.ErrPermissionDenied, false},
		{rpctypes.ErrTooManyOps, false},
	}
	for _, c := range cases {
		if got := outcomeUnknown(c.err); got != c.unknown {
			t.Errorf("outcomeUnknown(%v) = %v, want %v", c.err, got, c.unknown)
		}
	}
}
