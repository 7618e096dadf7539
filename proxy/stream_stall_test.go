package proxy

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// stallConf is hostileConf with a body timeout far longer than the test waits, so
// that what the client sees before the timeout is what the gateway sent at once.
const stallConf = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
split: { from: idc, to: cloud, salt: hostile }
timeouts: { connect: 500ms, response_header: 1s, body: 60s, request_head: 1s, idle: 60s }
routes:
  - name: default
    match: { path_prefix: / }
    percent: 0
    breaker: { disabled: true }
`

// replyStall writes raw, then holds the connection open and silent until release is
// closed, then closes it.
func replyStall(raw string, release <-chan struct{}) replyFunc {
	return func(c net.Conn, r *recRequest) bool {
		c.Write([]byte(raw))
		<-release
		return false
	}
}

// TestStreamStallSendsHead: an upstream that sends a streamed answer's head and a few
// bytes, then stalls, must not leave the client with nothing: the head and those bytes
// reach the client while the upstream is still silent (the test waits ioWait for them,
// the body timeout is 60 s), and when the upstream goes, the client sees the body cut
// short.
// Before the fix, the head sat in the gateway's 4 KiB write buffer until the body
// timeout closed the connection, and the client got no byte at all.
func TestStreamStallSendsHead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, raw, want string
		cut             bool // the upstream's close cuts the body (else it ends it)
	}{
		{"fixed length over the buffering limit", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\npartial", "partial", true},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\npartial\r\n", "partial", true},
		{"close-delimited", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npartial", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			var once bool
			releaseOnce := func() {
				if !once {
					once = true
					close(release)
				}
			}
			b := startBackend(t, replyStall(tc.raw, release))
			t.Cleanup(releaseOnce) // before the backend's own cleanup waits for its handlers
			gw := startGateway(t, stallConf, map[string]string{"IDC": b.addr, "CLOUD": b.addr})
			c := dialRaw(t, gw.addr)
			c.send(get("/stream"))
			c.c.SetReadDeadline(time.Now().Add(ioWait))
			resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatalf("no head from the gateway while the upstream stalls: %v", err)
			}
			if resp.StatusCode != 200 || resp.Header.Get("X-Shift-Region") != "idc" {
				t.Fatalf("head: %d %v", resp.StatusCode, resp.Header)
			}
			// The upstream is still silent here (release is open): the head came at once.
			if tc.want != "" {
				// The bytes the upstream sent before it stalled arrive too.
				got := make([]byte, len(tc.want))
				if _, err := ioReadFull(resp.Body, got); err != nil || string(got) != tc.want {
					t.Fatalf("body so far %q, %v; want %q", got, err, tc.want)
				}
			}
			releaseOnce()
			rest, err := readAllBody(resp.Body)
			if !tc.cut {
				// A close-delimited body ends with the upstream's close.
				if err != nil || !strings.HasSuffix(tc.want+rest, "partial") {
					t.Fatalf("close-delimited body %q, %v", rest, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("client read a complete body %q after the upstream went away", rest)
			}
			c.mustClose()
		})
	}
}

func ioReadFull(r interface{ Read([]byte) (int, error) }, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func readAllBody(r interface{ Read([]byte) (int, error) }) (string, error) {
	var sb strings.Builder
	br := bufio.NewReader(r)
	_, err := br.WriteTo(&sb)
	return sb.String(), err
}
