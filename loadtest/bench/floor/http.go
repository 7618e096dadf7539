package main

import (
	"bytes"
	"errors"
)

// The framing the floors share: find the end of a message head, read its
// Content-Length. It is enough for the bench's requests and answers and refuses what
// it cannot frame rather than guessing.

// bufSize is each connection's buffer for each direction; a head must fit in it.
const bufSize = 16 << 10

var (
	errHeadTooBig = errors.New("message head larger than the buffer")
	errFraming    = errors.New("message not framed by Content-Length")
)

var crlf2 = []byte("\r\n\r\n")

// headEnd returns the length of the head at the start of b (through its empty line),
// or -1 when b does not hold a whole head yet.
func headEnd(b []byte) int {
	i := bytes.Index(b, crlf2)
	if i < 0 {
		return -1
	}
	return i + 4
}

// contentLength returns the head's Content-Length (-1 when it has none) and whether
// it declares a Transfer-Encoding, which the floors do not frame.
func contentLength(head []byte) (n int64, chunked bool, err error) {
	n = -1
	for len(head) > 0 {
		i := bytes.Index(head, []byte("\r\n"))
		if i < 0 {
			break
		}
		line := head[:i]
		head = head[i+2:]
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue // the start line, or the empty line
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if n >= 0 || len(value) == 0 || len(value) > 15 {
				return 0, false, errFraming
			}
			var v int64
			for _, c := range value {
				if c < '0' || c > '9' {
					return 0, false, errFraming
				}
				v = v*10 + int64(c-'0')
			}
			n = v
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = true
		}
	}
	return n, chunked, nil
}

// requestLen returns the length of the request whose head is head: the head and its
// body. A request with no Content-Length has no body.
func requestLen(head []byte) (int64, error) {
	n, chunked, err := contentLength(head)
	if err != nil || chunked {
		return 0, errFraming
	}
	return int64(len(head)) + max(n, 0), nil
}

// responseLen returns the length of the answer whose head is head to a request whose
// method was HEAD or not. An answer the floors cannot frame is an error.
func responseLen(head []byte, headReq bool) (int64, error) {
	n, chunked, err := contentLength(head)
	if err != nil || chunked {
		return 0, errFraming
	}
	// "HTTP/1.1 204 ...": status at bytes 9..11.
	if len(head) < 12 {
		return 0, errFraming
	}
	status := head[9:12]
	if status[0] == '1' {
		return 0, errFraming // interim answers: the floors do not relay them
	}
	if headReq || string(status) == "204" || string(status) == "304" {
		return int64(len(head)), nil
	}
	if n < 0 {
		return 0, errFraming
	}
	return int64(len(head)) + n, nil
}

// isHead reports whether a request head is for method HEAD.
func isHead(head []byte) bool { return bytes.HasPrefix(head, []byte("HEAD ")) }

// badRequest is what a floor answers to a request it does not frame, before closing.
var badRequest = []byte("HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
