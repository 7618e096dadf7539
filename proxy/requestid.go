package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// X-Request-Id ties one request's lines together across the gateway's access log and
// the backends' logs. A client's id is kept when it is valid: 1 to maxRequestID
// characters of [A-Za-z0-9._-], which no log or header can misread; any other value
// is replaced. A made id is this process's random prefix and a counter, so ids are
// unique across instances and restarts without a random read per request.

// maxRequestID is the longest request id kept (a UUID is 36, a W3C trace id 32).
const maxRequestID = 128

var strRequestID = []byte("X-Request-Id")

// requestIDPrefix is 12 random hex digits, drawn once per process.
var requestIDPrefix = func() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("request id prefix: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}()

var requestIDSeq atomic.Uint64

// validRequestID reports whether a client's id may be kept.
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestID {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// appendRequestID appends the id of a request to dst: the client's, when valid, else
// a new one ("3f9a0c1b2d4e-1a2b"). It does not allocate when dst has room for
// maxRequestID bytes.
func appendRequestID(dst, client []byte) []byte {
	if validRequestID(client) {
		return append(dst, client...)
	}
	dst = append(dst, requestIDPrefix...)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, requestIDSeq.Add(1), 16)
}
