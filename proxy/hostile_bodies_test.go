package proxy

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// bigBody is the size of the large transfers.
const bigBody = 50 << 20

// pattern returns size deterministic pseudo-random bytes (no repeating block, so a
// lost, doubled or swapped piece changes the hash) and their sha256.
func pattern(seed uint64, size int64) (io.Reader, [32]byte) {
	h := sha256.New()
	io.Copy(h, patternReader(seed, size))
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return patternReader(seed, size), sum
}

// patternReader is pattern's bytes without their hash: a backend that hashed 50 MB
// before its head (seconds under the race detector on a loaded machine) met the
// gateway's 1 s response_header timeout, and the client a 504.
func patternReader(seed uint64, size int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8(seedBytes(seed)), size)
}

func seedBytes(seed uint64) (s [32]byte) {
	for i := range s {
		s[i] = byte(seed >> (8 * (i % 8)))
	}
	return s
}

// heapPeak runs f and returns by how much the heap in use grew at its highest, sampled
// every 5ms, over what it was before.
func heapPeak(f func()) (growth uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base := m.HeapInuse
	peak := base
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var s runtime.MemStats
			runtime.ReadMemStats(&s)
			peak = max(peak, s.HeapInuse)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	<-sampled
	return peak - base
}

// maxHeapGrowth is how much the heap may grow while 50 MB stream through: the
// buffers of a few connections, nothing proportional to the body.
const maxHeapGrowth = 8 << 20

// replyDownload answers with size pattern bytes of seed, with Content-Length or
// chunked.
func replyDownload(seed uint64, size int64, chunked bool) replyFunc {
	return func(c net.Conn, r *recRequest) bool {
		body := patternReader(seed, size)
		w := bufio.NewWriterSize(c, 64<<10)
		if chunked {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
			cw := httputil.NewChunkedWriter(w)
			if _, err := io.Copy(cw, body); err != nil {
				return false
			}
			cw.Close()
			io.WriteString(w, "\r\n")
		} else {
			fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
			if _, err := io.Copy(w, body); err != nil {
				return false
			}
		}
		return w.Flush() == nil
	}
}

// TestHostileLargeBodies moves 50 MB up and down, with Content-Length and chunked,
// checks every byte, and checks the heap stayed flat: bodies are streamed, never
// buffered whole. Not parallel: the heap is measured.
func TestHostileLargeBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB transfers")
	}
	t.Run("upload", func(t *testing.T) {
		gw, b := startHostile(t, replyOK, "")
		for _, chunked := range []bool{false, true} {
			body, sum := pattern(1, bigBody)
			var growth uint64
			growth = heapPeak(func() {
				c := dialRaw(t, gw.addr)
				done := make(chan error, 1)
				go func() {
					w := bufio.NewWriterSize(c.c, 64<<10)
					if chunked {
						io.WriteString(w, "POST /up HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n")
						cw := httputil.NewChunkedWriter(w)
						if _, err := io.Copy(cw, body); err != nil {
							done <- err
							return
						}
						cw.Close()
						io.WriteString(w, "\r\n")
					} else {
						fmt.Fprintf(w, "POST /up HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n", bigBody)
						if _, err := io.Copy(w, body); err != nil {
							done <- err
							return
						}
					}
					done <- w.Flush()
				}()
				c.c.SetReadDeadline(time.Now().Add(time.Minute))
				r, err := http.ReadResponse(c.br, nil)
				if err != nil {
					t.Fatalf("chunked=%v: %v", chunked, err)
				}
				io.Copy(io.Discard, r.Body)
				if r.StatusCode != 200 {
					t.Fatalf("chunked=%v: status %d", chunked, r.StatusCode)
				}
				if err := <-done; err != nil {
					t.Fatalf("chunked=%v: writing: %v", chunked, err)
				}
			})
			reqs := b.requests()
			got := reqs[len(reqs)-1]
			if got.BodyLen != bigBody || got.BodySum != sum {
				t.Errorf("chunked=%v: backend got %d bytes, hash match %v", chunked, got.BodyLen, got.BodySum == sum)
			}
			t.Logf("upload chunked=%v: heap grew by %.1f MB at most", chunked, float64(growth)/(1<<20))
			if growth > maxHeapGrowth {
				t.Errorf("upload chunked=%v: heap grew by %d MB: the body is buffered, not streamed", chunked, growth>>20)
			}
		}
		b.mustBeClean(t)
	})
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("download chunked=%v", chunked), func(t *testing.T) {
			gw, b := startHostile(t, replyDownload(2, bigBody, chunked), "")
			_, sum := pattern(2, bigBody)
			var n int64
			var got [32]byte
			growth := heapPeak(func() {
				c := dialRaw(t, gw.addr)
				c.send(get("/down"))
				c.c.SetReadDeadline(time.Now().Add(time.Minute))
				r, err := http.ReadResponse(c.br, nil)
				if err != nil {
					t.Fatal(err)
				}
				if r.StatusCode != 200 {
					b, _ := io.ReadAll(r.Body)
					t.Fatalf("status %d %q", r.StatusCode, b)
				}
				h := sha256.New()
				n, err = io.Copy(h, r.Body)
				if err != nil {
					t.Fatalf("after %d bytes: %v", n, err)
				}
				copy(got[:], h.Sum(nil))
			})
			if n != bigBody || got != sum {
				t.Errorf("client got %d bytes, hash match %v", n, got == sum)
			}
			t.Logf("download chunked=%v: heap grew by %.1f MB at most", chunked, float64(growth)/(1<<20))
			if growth > maxHeapGrowth {
				t.Errorf("heap grew by %d MB: the body is buffered, not streamed", growth>>20)
			}
			b.mustBeClean(t)
		})
	}
}

// idOf is the id a replyOK body names.
func idOf(body []byte) string {
	_, id, _ := strings.Cut(string(body), "id=")
	return id
}

// TestHostileManyRequestsOneConn sends 10,000 requests, one after the other, on one
// client connection.
func TestHostileManyRequestsOneConn(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, replyOK, "")
	c := dialRaw(t, gw.addr)
	const n = 10000
	for i := 0; i < n; i++ {
		id := fmt.Sprint(i)
		r, body := c.roundTrip("GET", get("/seq", "X-Req-Id: "+id))
		if r.StatusCode != 200 || idOf(body) != id {
			t.Fatalf("request %d: %d %q", i, r.StatusCode, body)
		}
	}
	if got := len(b.requests()); got != n {
		t.Errorf("backend saw %d requests, want %d", got, n)
	}
	b.mustBeClean(t)
}

// TestHostilePipelined writes many requests at once, bodies among them, and checks the
// answers come back in order, each to its own request.
func TestHostilePipelined(t *testing.T) {
	t.Parallel()
	gw, b := startHostile(t, replyOK, "")
	c := dialRaw(t, gw.addr)
	const n = 100
	var sb strings.Builder
	methods := make([]string, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprint(i)
		switch i % 4 {
		case 1:
			methods[i] = "POST"
			sb.WriteString(fmt.Sprintf("POST /pipe HTTP/1.1\r\nHost: gw.test\r\nX-Req-Id: %s\r\nContent-Length: 5\r\n\r\nhello", id))
		case 2:
			methods[i] = "POST"
			sb.WriteString(fmt.Sprintf("POST /pipe HTTP/1.1\r\nHost: gw.test\r\nX-Req-Id: %s\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", id))
		case 3:
			methods[i] = "HEAD"
			sb.WriteString(strings.Replace(get("/pipe", "X-Req-Id: "+id), "GET", "HEAD", 1))
		default:
			methods[i] = "GET"
			sb.WriteString(get("/pipe", "X-Req-Id: "+id))
		}
	}
	go c.send(sb.String())
	for i := 0; i < n; i++ {
		r, body := c.mustResponse(methods[i])
		if r.StatusCode != 200 {
			t.Fatalf("answer %d: %d", i, r.StatusCode)
		}
		if methods[i] != "HEAD" && idOf(body) != fmt.Sprint(i) {
			t.Fatalf("answer %d is %q: out of order", i, body)
		}
	}
	for _, r := range b.requests() {
		if r.Req.Method == "POST" && string(r.Body) != "hello" {
			t.Errorf("request %s: body %q", r.Req.Header.Get("X-Req-Id"), r.Body)
		}
	}
	b.mustBeClean(t)
}

// TestHostileAbortedDownload has a client drop a large download halfway; the upstream
// connection that was in the middle of that body must not serve the next request.
func TestHostileAbortedDownload(t *testing.T) {
	t.Parallel()
	big := replyDownload(3, 8<<20, false)
	gw, b := startHostile(t, func(c net.Conn, r *recRequest) bool {
		if r.Req.URL.Path == "/big" {
			return big(c, r)
		}
		return replyOK(c, r)
	}, "")
	for round := 0; round < 3; round++ {
		c := dialRaw(t, gw.addr)
		c.send(get("/big"))
		c.c.SetReadDeadline(time.Now().Add(ioWait))
		r, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, r.Body, 256<<10); err != nil {
			t.Fatal(err)
		}
		c.c.Close() // mid-body
		for i := 0; i < 5; i++ {
			id := fmt.Sprintf("%d-%d", round, i)
			c2 := dialRaw(t, gw.addr)
			r, body := c2.roundTrip("GET", get("/small", "X-Req-Id: "+id))
			if r.StatusCode != 200 || idOf(body) != id {
				t.Fatalf("after an aborted download, request %s got %d %q", id, r.StatusCode, body)
			}
			c2.c.Close()
		}
	}
	// Every connection that carried /big was closed by the gateway, not pooled.
	b.waitFor(t, ioWait, "the aborted downloads' upstream connections to close", func() bool {
		for _, rc := range b.conns {
			for _, r := range rc.reqs {
				if r.Req.URL.Path == "/big" && !rc.ended {
					return false
				}
			}
		}
		return true
	})
	b.mustBeClean(t)
}

// TestHostileConcurrentClients runs 200 keep-alive clients at once; every answer must
// be the one to its own request.
//
// It does not run in parallel with the other hostile tests: its 200 clients hold about
// 800 sockets in this process (the clients, both sides of the gateway, the backend),
// close to the common open-file limit of 1024. Beside the other tests it once ran out
// of descriptors, and the gateway then rightly answered 502 (cannot connect: socket:
// too many open files), which read as a proxy bug under load.
func TestHostileConcurrentClients(t *testing.T) {
	const clients, each = 200, 20
	requireFreeFDs(t, 4*clients+50)
	// Answers of different sizes, so they complete out of order.
	gw, b := startHostile(t, func(c net.Conn, r *recRequest) bool {
		id := r.Req.Header.Get("X-Req-Id")
		pad := strings.Repeat(".", len(id)*97%4096)
		body := pad + "id=" + id
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		return true
	}, "")
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for k := 0; k < clients; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", gw.addr, ioWait)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("c%d-r%d", k, i)
				c.SetDeadline(time.Now().Add(ioWait))
				if _, err := io.WriteString(c, get("/cc", "X-Req-Id: "+id)); err != nil {
					errs <- err
					return
				}
				r, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- fmt.Errorf("%s: %v", id, err)
					return
				}
				body, err := io.ReadAll(r.Body)
				if err != nil || r.StatusCode != 200 || idOf(body) != id {
					errs <- fmt.Errorf("%s got %d %q %v", id, r.StatusCode, body, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(b.requests()); n != clients*each {
		t.Errorf("backend saw %d requests, want %d", n, clients*each)
	}
	b.mustBeClean(t)
}

// TestHostileSlowSteadyBodies moves bodies that take longer than the body timeout (2s)
// but never stall for long: the body timeout is an idle timeout, so they arrive whole.
// The pacing sleeps are the point of the test, not synchronisation.
func TestHostileSlowSteadyBodies(t *testing.T) {
	t.Parallel()
	const pieces, size, gap = 10, 64 << 10, 300 * time.Millisecond // 3s in all
	piece := func(i int) []byte { return []byte(strings.Repeat(string(rune('a'+i)), size)) }
	t.Run("download", func(t *testing.T) {
		t.Parallel()
		gw, _ := startHostile(t, func(c net.Conn, r *recRequest) bool {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", pieces*size)
			for i := 0; i < pieces; i++ {
				if _, err := c.Write(piece(i)); err != nil {
					return false
				}
				time.Sleep(gap)
			}
			return true
		}, "")
		c := dialRaw(t, gw.addr)
		c.send(get("/slow"))
		c.c.SetReadDeadline(time.Now().Add(ioWait))
		r, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(r.Body)
		if err != nil || len(body) != pieces*size {
			t.Fatalf("got %d bytes, %v: a steady download was cut", len(body), err)
		}
	})
	t.Run("upload", func(t *testing.T) {
		t.Parallel()
		gw, b := startHostile(t, replyOK, "")
		c := dialRaw(t, gw.addr)
		c.send(fmt.Sprintf("POST /slow HTTP/1.1\r\nHost: gw.test\r\nContent-Length: %d\r\n\r\n", pieces*size))
		for i := 0; i < pieces; i++ {
			c.c.SetWriteDeadline(time.Now().Add(ioWait))
			if _, err := c.c.Write(piece(i)); err != nil {
				t.Fatalf("piece %d: %v", i, err)
			}
			time.Sleep(gap)
		}
		if r, body := c.mustResponse("POST"); r.StatusCode != 200 {
			t.Fatalf("status %d %q: a steady upload was cut", r.StatusCode, body)
		}
		if got := b.requests()[0]; got.BodyLen != pieces*size {
			t.Errorf("backend got %d bytes", got.BodyLen)
		}
	})
}

// TestHostileHTTP10ClientUnknownLength: an HTTP/1.0 client whose answer has no known
// length (a close-delimited HTTP/1.0 answer, a chunked HTTP/1.1 one) gets the body as
// it is, with no Transfer-Encoding (RFC 9112 section 6.1: not for an HTTP/1.0
// request), and the connection closes after it, which ends the body; with
// keep-alive too. Before, it got chunk framing it cannot read, and a keep-alive
// connection was then held until the idle timeout.
func TestHostileHTTP10ClientUnknownLength(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789abcdef", 200<<10/16)
	chunked := func(body string) string {
		var sb strings.Builder
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 7000)
			fmt.Fprintf(&sb, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		return sb.String() + "0\r\n\r\n"
	}
	var cases []struct {
		name, reply, body string
		keep              bool // the backend keeps its connection
	}
	for _, body := range []string{"hello", big} {
		cases = append(cases, []struct {
			name, reply, body string
			keep              bool
		}{
			{fmt.Sprintf("HTTP/1.0 to the close, %d bytes", len(body)), "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body, body, false},
			{fmt.Sprintf("HTTP/1.1 chunked, %d bytes", len(body)), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body), body, true},
		}...)
	}
	for _, tc := range cases {
		for _, ka := range []string{"", "Connection: keep-alive\r\n"} {
			t.Run(fmt.Sprintf("%s, keep-alive %v", tc.name, ka != ""), func(t *testing.T) {
				t.Parallel()
				// An idle timeout past the client's wait: a connection held open
				// fails the read below instead of closing at idle.
				b := startBackend(t, replyRaw(tc.reply, tc.keep))
				cfg := strings.Replace(hostileConf, "idle: 2s", "idle: 1m", 1)
				if cfg == hostileConf {
					t.Fatal("hostileConf's idle timeout changed: update this test")
				}
				gw := startGateway(t, cfg, map[string]string{"IDC": b.addr, "CLOUD": b.addr, "LIMITS": ""})
				c := dialRaw(t, gw.addr)
				c.send("GET /old HTTP/1.0\r\nHost: gw.test\r\n" + ka + "\r\n")
				c.c.SetReadDeadline(time.Now().Add(ioWait))
				raw, err := io.ReadAll(c.br)
				if err != nil {
					t.Fatalf("the connection did not close after the answer (%v); got %d bytes: %.200q", err, len(raw), raw)
				}
				head, body, ok := strings.Cut(string(raw), "\r\n\r\n")
				if !ok {
					t.Fatalf("no head in %.200q", raw)
				}
				if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
					t.Fatalf("status line of %q, want 200", head)
				}
				if h := strings.ToLower(head); strings.Contains(h, "transfer-encoding") || strings.Contains(h, "content-length") {
					t.Fatalf("head %q: want no framing field for a body the close ends", head)
				}
				if !strings.Contains(strings.ToLower(head), "connection: close") {
					t.Errorf("head %q: want Connection: close", head)
				}
				if body != tc.body {
					t.Fatalf("body of %d bytes %.80q, want the backend's %d bytes %.80q", len(body), body, len(tc.body), tc.body)
				}
			})
		}
	}
}

// TestShutdownWaitsForHTTP10Answers: an answer to an HTTP/1.0 client whose only end is
// the close is written on a taken-over connection, which fasthttp no longer counts.
// A shutdown waits for it as for any request in flight (the process exits after
// Shutdown, and the client would take a cut body as complete), and past its timeout
// cuts it and says so.
func TestShutdownWaitsForHTTP10Answers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release bool // the backend finishes its body during the shutdown
	}{{"finishes", true}, {"past the timeout", false}} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			b := startBackend(t, func(c net.Conn, r *recRequest) bool {
				c.Write([]byte("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst-"))
				<-release
				c.Write([]byte("second"))
				return false
			})
			// Registered after the backend's: cleanups run last first, and the
			// backend's close waits for this reply to return.
			t.Cleanup(func() { once.Do(func() { close(release) }) })
			gw := startGateway(t, hostileConf, map[string]string{"IDC": b.addr, "CLOUD": b.addr, "LIMITS": ""})
			c := dialRaw(t, gw.addr)
			c.send("GET /old HTTP/1.0\r\nHost: gw.test\r\n\r\n")
			c.c.SetReadDeadline(time.Now().Add(ioWait))
			got := make([]byte, 0, 256)
			for !strings.Contains(string(got), "first-") {
				buf := make([]byte, 256)
				n, err := c.br.Read(buf)
				if err != nil {
					t.Fatalf("before the shutdown: %v after %q", err, got)
				}
				got = append(got, buf[:n]...)
			}
			timeout := 10 * time.Second
			if !tc.release {
				timeout = 300 * time.Millisecond
			}
			stopped := make(chan error, 1)
			go func() { stopped <- gw.srv.Shutdown(timeout) }()
			if tc.release {
				// The answer is not done until the backend finishes: Shutdown may not
				// return before that (without the wait it returned in microseconds).
				select {
				case err := <-stopped:
					t.Fatalf("Shutdown returned (%v) while an HTTP/1.0 answer was still streaming", err)
				case <-time.After(500 * time.Millisecond):
				}
				once.Do(func() { close(release) })
			}
			rest, err := io.ReadAll(c.br)
			body := string(got) + string(rest)
			serr := <-stopped
			if tc.release {
				if err != nil || !strings.HasSuffix(body, "\r\n\r\nfirst-second") || serr != nil {
					t.Fatalf("read %q (%v), shutdown %v; want the whole body, then a clean shutdown", body, err, serr)
				}
				return
			}
			if serr == nil || !strings.Contains(serr.Error(), "HTTP/1.0") || strings.Contains(body, "second") {
				t.Fatalf("shutdown past its timeout: %v, client read %q; want the answer cut and the shutdown saying so", serr, body)
			}
		})
	}
}
