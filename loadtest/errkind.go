package loadtest

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/valyala/fasthttp"
)

// errKind is why a request did not succeed. A request succeeds when it gets a 2xx
// answer; anything else is exactly one kind.
type errKind uint8

const (
	kindRefused errKind = iota
	kindTimeout
	kindReset
	kindOther
	kindStatus1xx
	kindStatus3xx
	kindStatus4xx
	kindStatus5xx
	kindStatusOther
	numKinds
)

// kindNames are the keys of Result.Errors; scripts read them, so they do not change.
var kindNames = [numKinds]string{
	kindRefused:     "connect_refused",
	kindTimeout:     "timeout",
	kindReset:       "reset",
	kindOther:       "other",
	kindStatus1xx:   "status_1xx",
	kindStatus3xx:   "status_3xx",
	kindStatus4xx:   "status_4xx",
	kindStatus5xx:   "status_5xx",
	kindStatusOther: "status_other",
}

func (k errKind) String() string { return kindNames[k] }

// classifyErr names the kind of a transport error (the request got no answer).
func classifyErr(err error) errKind {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return kindRefused
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return kindTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, fasthttp.ErrConnectionClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// A keep-alive connection closed under a request is, to the client, a reset.
		return kindReset
	}
	return kindOther
}

// classifyStatus returns the kind of a non-2xx status; ok is true for 2xx.
func classifyStatus(code int) (k errKind, ok bool) {
	switch code / 100 {
	case 2:
		return 0, true
	case 1:
		return kindStatus1xx, false
	case 3:
		return kindStatus3xx, false
	case 4:
		return kindStatus4xx, false
	case 5:
		return kindStatus5xx, false
	}
	return kindStatusOther, false
}
