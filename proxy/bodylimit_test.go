package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMaxBodyBytes: limits.max_body_bytes refuses a body over it with 413, whether its
// length is declared (refused before a byte is read) or chunked (cut as it streams,
// at once: the body timeout, 60s here, is longer than postRaw waits); no backend gets
// a complete request from a refused one.
func TestMaxBodyBytes(t *testing.T) {
	b := startBackend(t, replyOK)
	vars := map[string]string{"IDC": b.addr, "CLOUD": b.addr, "IDLE": "60s", "MAXBODY": "1KiB"}
	gw := startGatewayOpt(t, readAtStartConfig, vars, Options{})
	cases := []struct {
		path    string
		size    int
		chunked bool
		stall   bool // the body's one chunk is cut short, and the client waits
		want    int
	}{
		{"/length-at-limit", 1024, false, false, 200},
		{"/length-over", 1025, false, false, 413},
		{"/chunked-under", 1000, true, false, 200},
		{"/chunked-over", 4096, true, false, 413},
		{"/chunked-over-then-stall", 1500, true, true, 413},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			if got := postRaw(t, gw.addr, tc.path, tc.size, tc.chunked, tc.stall); got != tc.want {
				t.Fatalf("POST %s of %d bytes (chunked %v, stall %v): %d, want %d", tc.path, tc.size, tc.chunked, tc.stall, got, tc.want)
			}
		})
	}
	if got := postRaw(t, gw.addr, "/end", 0, false, false); got != 200 {
		t.Fatalf("POST /end: %d", got)
	}
	b.waitFor(t, 10*time.Second, "the last request", func() bool {
		for _, c := range b.conns {
			for _, r := range c.reqs {
				if r.Req.URL.Path == "/end" {
					return true
				}
			}
		}
		return false
	})
	var got []string
	for _, r := range b.requests() {
		got = append(got, r.Req.URL.Path)
	}
	slices.Sort(got)
	if want := []string{"/chunked-under", "/end", "/length-at-limit"}; !slices.Equal(got, want) {
		t.Fatalf("complete requests at the backend: %v, want %v", got, want)
	}
}

// postRaw sends one POST with a body of size bytes on a new connection, all at once
// (the gateway may answer before it reads the body), and returns the status. With
// stall, the body is one chunk that announces 1000 bytes more than it has, and the
// client then waits for the answer.
func postRaw(t *testing.T, addr, path string, size int, chunked, stall bool) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var req strings.Builder
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: x\r\nX-User-Id: u-1\r\n", path)
	body := strings.Repeat("b", size)
	switch {
	case chunked && stall:
		fmt.Fprintf(&req, "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s", size+1000, body)
	case chunked:
		req.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for rest := body; rest != ""; {
			n := min(len(rest), 500)
			fmt.Fprintf(&req, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		req.WriteString("0\r\n\r\n")
	default:
		fmt.Fprintf(&req, "Content-Length: %d\r\n\r\n%s", size, body)
	}
	if _, err := c.Write([]byte(req.String())); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
