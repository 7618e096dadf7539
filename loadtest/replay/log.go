package replay

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
)

// entry is one request to replay, read from an access log line.
type entry struct {
	method, uri, host string
}

// logLine holds the fields replay reads from a shiftgate access log line; the others
// (time, peer, status, route, …) are ignored.
type logLine struct {
	Method string `json:"method"`
	URI    string `json:"uri"`
	// Path is accepted too, for logs written by other tools.
	Path string `json:"path"`
	Host string `json:"host"`
}

// maxLine bounds one log line; the proxy's lines are far shorter.
const maxLine = 1 << 20

// errBadLine marks a line that is not a request: not JSON, no target, or a target
// that is not a path.
var errBadLine = errors.New("not a request line")

// parseLine reads one access log line. A line without a method is a GET.
func parseLine(b []byte) (entry, error) {
	var l logLine
	if err := json.Unmarshal(b, &l); err != nil {
		return entry{}, errBadLine
	}
	uri := l.URI
	if uri == "" {
		uri = l.Path
	}
	if !strings.HasPrefix(uri, "/") {
		return entry{}, errBadLine
	}
	method := strings.ToUpper(l.Method)
	if method == "" {
		method = "GET"
	}
	if strings.ContainsAny(method, " \t\r\n") || strings.ContainsAny(uri, " \t\r\n") || strings.ContainsAny(l.Host, " \t\r\n") {
		return entry{}, errBadLine
	}
	return entry{method: method, uri: uri, host: l.Host}, nil
}

// logReader yields the log's lines one at a time, from the start again when it loops.
type logReader struct {
	f    *os.File
	sc   *bufio.Scanner
	loop bool
	// usable says a line of this pass was a request, so looping cannot spin on a
	// log with none.
	usable bool
}

func openLog(path string, loop bool) (*logReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := &logReader{f: f, loop: loop}
	r.reset()
	return r, nil
}

func (r *logReader) reset() {
	r.sc = bufio.NewScanner(r.f)
	r.sc.Buffer(make([]byte, 0, 64<<10), maxLine)
}

// next returns the next line, io.EOF at the end of the log (after the last pass).
func (r *logReader) next() ([]byte, error) {
	for {
		if r.sc.Scan() {
			return r.sc.Bytes(), nil
		}
		if err := r.sc.Err(); err != nil {
			return nil, err
		}
		if !r.loop || !r.usable {
			return nil, io.EOF
		}
		if _, err := r.f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		r.usable = false
		r.reset()
	}
}

func (r *logReader) close() error { return r.f.Close() }
