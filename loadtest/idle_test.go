package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestIdleFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		code      int
		floor     bool
		wantInErr string
	}{
		{args: []string{"-pid", "42", "http://127.0.0.1:8080/x"}, code: -1},
		{args: []string{"-floor", "-n", "10"}, code: -1, floor: true},
		{args: []string{"http://127.0.0.1:8080/"}, code: 2, wantInErr: "-pid is required"},
		{args: []string{"-pid", "42"}, code: 2, wantInErr: "exactly one URL"},
		{args: []string{"-pid", "42", "-n", "0", "http://127.0.0.1:1/"}, code: 2, wantInErr: "-n must be positive"},
		{args: []string{"-pid", "42", "http://10.1.2.3:80/"}, code: 2, wantInErr: "loopback"},
		{args: []string{"-pid", "42", "ftp://127.0.0.1:21/"}, code: 2, wantInErr: "http:// or https://"},
		{args: []string{"-floor", "-pid", "42"}, code: 2, wantInErr: "neither -pid nor a URL"},
		{args: []string{"-pid", "42", "-settle", "-1s", "http://127.0.0.1:1/"}, code: 2, wantInErr: "negative"},
		{args: []string{"-pid", "42", "-hold", "-1s", "http://127.0.0.1:1/"}, code: 2, wantInErr: "negative"},
		{args: []string{"-bogus"}, code: 2},
		{args: []string{"-h"}, code: 0},
	} {
		var errb bytes.Buffer
		o, floor, _, _, code := idleFlags(tc.args, &errb)
		if code != tc.code || floor != tc.floor || !strings.Contains(errb.String(), tc.wantInErr) {
			t.Errorf("%q: code %d floor %v stderr %q; want code %d floor %v and %q", tc.args, code, floor, errb.String(), tc.code, tc.floor, tc.wantInErr)
		}
		if code == -1 && !floor && (o.PID != 42 || o.URL != "http://127.0.0.1:8080/x" || o.N != 1000) {
			t.Errorf("%q: parsed %+v", tc.args, o)
		}
	}
}

func TestIdleTarget(t *testing.T) {
	for _, tc := range []struct{ url, addr, path string }{
		{"http://localhost/a?b=1", "localhost:80", "/a?b=1"},
		{"https://localhost/a", "localhost:443", "/a"},
		{"https://127.0.0.1:8443/", "127.0.0.1:8443", "/"},
	} {
		addr, path, err := idleTarget(tc.url)
		if err != nil || addr != tc.addr || path != tc.path {
			t.Errorf("%s: got %q %q %v, want %q %q", tc.url, addr, path, err, tc.addr, tc.path)
		}
	}
}

// TestIdleRunTLS: an https:// target is measured over TLS connections (the server
// sees TLS clients: a plain one would fail its handshake), its certificate verified
// unless Insecure.
func TestIdleRunTLS(t *testing.T) {
	certFile, keyFile, _, err := writeBenchCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var handshakes atomic.Int64
	ln := tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, VerifyConnection: func(tls.ConnectionState) error {
		handshakes.Add(1)
		return nil
	}})
	go ServeFloor(ln)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := "https://" + raw.Addr().String() + "/"
	if _, err := RunIdle(ctx, IdleOptions{URL: url, PID: os.Getpid(), N: 2, Timeout: 30 * time.Second}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a self-signed certificate without Insecure: err %v, want a verification error", err)
	}
	// The server counts a handshake once it has sent its flight (TLS 1.3 calls
	// VerifyConnection then, before it reads the client's answer), so the two refused
	// clients above are counted too, each by a server goroutine that may run after
	// RunIdle returned. Wait for both before counting the next run's.
	for handshakes.Load() < 2 {
		if ctx.Err() != nil {
			t.Fatalf("%d server handshakes for the 2 refused clients", handshakes.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	before := handshakes.Load()
	res, err := RunIdle(ctx, IdleOptions{URL: url, PID: os.Getpid(), N: 5, Timeout: 30 * time.Second, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Clients != 5 || res.RSSPeak <= 0 {
		t.Errorf("result %+v", res)
	}
	if n := handshakes.Load() - before; n != 5 {
		t.Errorf("%d TLS handshakes for 5 clients", n)
	}
}

func TestParseMemstats(t *testing.T) {
	m, err := parseMemstats(strings.NewReader("# HELP go_memstats_heap_inuse_bytes x\n# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 1.5e+06\ngo_memstats_stack_inuse_bytes 65536\ngo_goroutines 7\n"))
	if err != nil || len(m) != 2 || m["go_memstats_heap_inuse_bytes"] != 1.5e6 || m["go_memstats_stack_inuse_bytes"] != 65536 {
		t.Errorf("got %v %v", m, err)
	}
	if _, err := parseMemstats(strings.NewReader("go_memstats_sys_bytes x\n")); err == nil {
		t.Error("a bad value was accepted")
	}
}

// TestIdleRun opens a few idle clients against the floor server in this process and
// reads this process's RSS: the figures depend on the machine, the run must complete
// and count its clients.
func TestIdleRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go ServeFloor(ln)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := RunIdle(ctx, IdleOptions{URL: "http://" + ln.Addr().String() + "/", PID: os.Getpid(), N: 20, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Clients != 20 || res.RSSBefore <= 0 || res.RSSPeak <= 0 || res.RSSAfter <= 0 {
		t.Errorf("result %+v", res)
	}
	var out bytes.Buffer
	if err := res.WriteText(&out); err != nil || !strings.Contains(out.String(), "20 idle clients") || !strings.Contains(out.String(), "per idle connection") {
		t.Errorf("text %q %v", out.String(), err)
	}
}

// TestIdleRunRefused: a target that answers with a close is an error, not a result.
func TestIdleRunRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				c.Read(buf)
				c.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = RunIdle(ctx, IdleOptions{URL: "http://" + ln.Addr().String() + "/", PID: os.Getpid(), N: 3, Timeout: 30 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "closed the connection") {
		t.Errorf("err %v, want the close reported", err)
	}
}
