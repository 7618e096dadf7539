package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// headWithFields is a GET whose fields add up to about size bytes.
func headWithFields(size int) string {
	var sb strings.Builder
	sb.WriteString("GET /big HTTP/1.1\r\nHost: gw.test\r\n")
	for i := 0; sb.Len() < size; i++ {
		fmt.Fprintf(&sb, "X-Filler-%04d: %s\r\n", i, strings.Repeat("v", 1000))
	}
	sb.WriteString("\r\n")
	return sb.String()
}

// TestHostileHeadLimits checks the head size limit: a request line that does not fit
// gets 414, a head that does not fit 431, nothing is forwarded and the next connection
// is served; a head under the limit passes.
func TestHostileHeadLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		limits string
		raw    string
		status int
	}{
		{"request line over the default 64 KiB", "", "GET /" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\nHost: gw.test\r\n\r\n", 414},
		{"request line over the limit, unterminated", "", "GET /" + strings.Repeat("a", 70<<10), 414},
		{"head over the default 64 KiB", "", headWithFields(70 << 10), 431},
		{"head over the default, one huge field", "", "GET / HTTP/1.1\r\nHost: gw.test\r\nX-Big: " + strings.Repeat("b", 70<<10) + "\r\n\r\n", 431},
		{"head under the default 64 KiB", "", headWithFields(60 << 10), 200},
		{"head over a configured 8 KiB", "limits: { max_header_bytes: 8KiB }", headWithFields(10 << 10), 431},
		{"request line over a configured 8 KiB", "limits: { max_header_bytes: 8KiB }", "GET /" + strings.Repeat("a", 9<<10) + " HTTP/1.1\r\nHost: gw.test\r\n\r\n", 414},
		{"head under a configured 8 KiB", "limits: { max_header_bytes: 8KiB }", headWithFields(6 << 10), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gw, b := startHostile(t, replyOK, tc.limits)
			c := dialRaw(t, gw.addr)
			// The gateway may answer before it has read everything: write on the
			// side and ignore a write error once it has.
			go func() {
				c.c.SetWriteDeadline(time.Now().Add(ioWait))
				io.WriteString(c.c, tc.raw)
			}()
			r, body := c.mustResponse("GET")
			if r.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", r.StatusCode, body, tc.status)
			}
			if tc.status != 200 {
				c.mustClose()
				if n := b.totalBytes(); n != 0 {
					t.Errorf("%d bytes reached the backend", n)
				}
			}
			// The gateway still serves the next connection.
			c2 := dialRaw(t, gw.addr)
			if r, _ := c2.roundTrip("GET", get("/next")); r.StatusCode != 200 {
				t.Errorf("next request: %d", r.StatusCode)
			}
			b.mustBeClean(t)
		})
	}
}

// TestHostileSlowloris opens a few hundred connections that trickle a head one byte
// at a time and checks each is closed within the request-head timeout (1s here, with
// slack for a loaded machine), while ordinary requests on other connections are
// answered meanwhile, each well before that timeout.
func TestHostileSlowloris(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, replyOK, "")
	const n = 300
	const headTimeout = time.Second
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", gw.addr, ioWait)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	start := time.Now()
	// Readers: each records when its connection was closed by the gateway.
	closedAt := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(headTimeout + 4*time.Second))
			_, err := io.Copy(io.Discard, c) // a 408 and then EOF, or a reset
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				closedAt[i] = -1
				return
			}
			closedAt[i] = time.Since(start)
		}()
	}
	// The trickle: one byte per connection, round after round, until all are closed.
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		head := "GET / HTTP/1.1\r\nHost: gw.test\r\nX-Slow: "
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for k := 0; ; k++ {
			for _, c := range conns {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				b := byte('a')
				if k < len(head) {
					b = head[k]
				}
				c.Write([]byte{b})
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	// Meanwhile ordinary requests, each on a new connection.
	var worst time.Duration
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		c := dialRaw(t, gw.addr)
		r, _ := c.roundTrip("GET", get("/normal"))
		if r.StatusCode != 200 {
			t.Fatalf("ordinary request %d under slowloris: %d", i, r.StatusCode)
		}
		worst = max(worst, time.Since(t0))
		c.c.Close()
	}
	wg.Wait()
	close(stop)
	<-trickled
	t.Logf("ordinary requests under %d trickling connections: worst latency %s", n, worst)
	if worst >= headTimeout {
		t.Errorf("an ordinary request took %s, as long as the head timeout: it waited behind the trickle", worst)
	}
	var last time.Duration
	for i, d := range closedAt {
		if d < 0 {
			t.Fatalf("trickling connection %d still open %s after the head timeout", i, 4*time.Second)
		}
		last = max(last, d)
	}
	t.Logf("all %d trickling connections closed after %s (head timeout %s)", n, last, headTimeout)
	if last > headTimeout+2*time.Second {
		t.Errorf("last trickling connection closed after %s, want about %s", last, headTimeout)
	}
	for _, r := range b.requests() {
		if r.Req.URL.Path != "/normal" {
			t.Errorf("a trickled request reached the backend: %s", r.Head)
		}
	}
}

// TestHostileIdle checks the idle timeouts: a connection that never sends a byte is
// closed after the request-head timeout (1s), a keep-alive connection after the idle
// timeout (2s) and not before it.
func TestHostileIdle(t *testing.T) {
	t.Parallel()
	gw, _ := startHostile(t, replyOK, "")
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, gw.addr)
		t0 := time.Now()
		c.c.SetReadDeadline(time.Now().Add(ioWait))
		got, err := io.ReadAll(c.br)
		if err != nil && !isReset(err) {
			t.Fatalf("silent connection not closed: %v", err)
		}
		if len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 408 ") {
			t.Errorf("silent connection got %q, want nothing or a 408", got)
		}
		if d := time.Since(t0); d > 3*time.Second {
			t.Errorf("silent connection closed after %s, want about 1s", d)
		}
	})
	t.Run("keep-alive", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, gw.addr)
		c.roundTrip("GET", get("/idle"))
		// Still open past the head timeout: idle is its own, longer, timeout.
		if ok, why := c.closed(1500 * time.Millisecond); ok || !strings.Contains(why, "timeout") {
			t.Fatalf("keep-alive connection closed before the idle timeout (%s)", why)
		}
		t0 := time.Now()
		if ok, why := c.closed(ioWait); !ok {
			t.Fatalf("keep-alive connection not closed after the idle timeout: %s", why)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("closed %s after the first 1.5s, want about 0.5s", d)
		}
	})
}

// TestHostileConnCap checks the cap on concurrent connections: past it, a connection
// gets a 503 that says why and is closed; once a slot frees, connections are served.
func TestHostileConnCap(t *testing.T) {
	t.Parallel()
	const limit = 20
	gw, _ := startHostile(t, replyOK, fmt.Sprintf("limits: { max_conns: %d }", limit))
	held := make([]*rawConn, 0, limit)
	for i := 0; i < limit; i++ {
		c := dialRaw(t, gw.addr)
		if r, _ := c.roundTrip("GET", get("/held")); r.StatusCode != 200 {
			t.Fatalf("connection %d under the cap: %d", i, r.StatusCode)
		}
		held = append(held, c)
	}
	over := dialRaw(t, gw.addr)
	over.send(get("/over"))
	r, body := over.mustResponse("GET")
	if r.StatusCode != 503 || !r.Close || !strings.Contains(strings.ToLower(string(body)), "concurrency limit") {
		t.Fatalf("connection over the cap: %d close=%v %q; want 503, a close and a reason", r.StatusCode, r.Close, body)
	}
	over.mustClose()
	// Free a slot: a new connection is served.
	held[0].c.Close()
	deadline := time.Now().Add(ioWait)
	for {
		c := dialRaw(t, gw.addr)
		c.send(get("/after"))
		r, _ := c.mustResponse("GET")
		if r.StatusCode == 200 {
			break
		}
		// The gateway may not have seen the close yet; the refusal is immediate,
		// so this loop is bounded by the deadline, not by sleeps.
		if time.Now().After(deadline) {
			t.Fatalf("no slot freed after a held connection closed: %d", r.StatusCode)
		}
		c.c.Close()
	}
}
