package loadtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestClassifyStatus(t *testing.T) {
	for _, tc := range []struct {
		code int
		kind errKind
		ok   bool
	}{
		{200, 0, true}, {204, 0, true}, {299, 0, true},
		{101, kindStatus1xx, false},
		{301, kindStatus3xx, false}, {304, kindStatus3xx, false},
		{400, kindStatus4xx, false}, {429, kindStatus4xx, false},
		{500, kindStatus5xx, false}, {502, kindStatus5xx, false}, {599, kindStatus5xx, false},
		{0, kindStatusOther, false}, {99, kindStatusOther, false}, {600, kindStatusOther, false},
	} {
		k, ok := classifyStatus(tc.code)
		if ok != tc.ok || (!ok && k != tc.kind) {
			t.Errorf("classifyStatus(%d) = %v, %v; want %v, %v", tc.code, k, ok, tc.kind, tc.ok)
		}
	}
}

type fakeNetErr struct{ timeout bool }

func (e fakeNetErr) Error() string   { return "fake" }
func (e fakeNetErr) Timeout() bool   { return e.timeout }
func (e fakeNetErr) Temporary() bool { return false }

func TestClassifyErr(t *testing.T) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	for _, tc := range []struct {
		err  error
		want errKind
	}{
		{opErr(syscall.ECONNREFUSED), kindRefused},
		{fmt.Errorf("wrapped: %w", opErr(syscall.ECONNREFUSED)), kindRefused},
		{fasthttp.ErrTimeout, kindTimeout},
		{fasthttp.ErrDialTimeout, kindTimeout},
		{os.ErrDeadlineExceeded, kindTimeout},
		{fakeNetErr{timeout: true}, kindTimeout},
		{opErr(syscall.ECONNRESET), kindReset},
		{opErr(syscall.EPIPE), kindReset},
		{fasthttp.ErrConnectionClosed, kindReset},
		{io.EOF, kindReset},
		{io.ErrUnexpectedEOF, kindReset},
		{fakeNetErr{timeout: false}, kindOther},
		{errors.New("something else"), kindOther},
		{fasthttp.ErrNoFreeConns, kindOther},
	} {
		if got := classifyErr(tc.err); got != tc.want {
			t.Errorf("classifyErr(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestKindNamesComplete(t *testing.T) {
	seen := map[string]bool{}
	for k := range numKinds {
		name := k.String()
		if name == "" || seen[name] {
			t.Errorf("kind %d: name %q empty or repeated", k, name)
		}
		seen[name] = true
	}
}
