package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy/wire"
	"github.com/shiftgate/shiftgate/routing"
)

// accessLog writes one JSON line per request. The request path formats its line into
// a pooled buffer and hands it to a writer goroutine without waiting: when the writer
// falls behind (a slow disk), lines are dropped and counted, never queued without
// bound and never blocking a request. Routing keys are not logged (they are user ids);
// the key source is.
type accessLog struct {
	path    string
	lines   chan *logLine
	free    chan *logLine // lines the writer is done with, for reuse
	dropped *metrics.Counter
	// log says when writing fails and when it works again.
	log *slog.Logger
	// stop ends the writer, which writes what is queued and closes the file; lines
	// sent later (the end of a body still streaming) are dropped, never a panic.
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// logLine is one line being formatted. A line whose response body is still streaming
// when the handler returns is finished by the body's end (BodyDone), with the bytes
// sent and whether the body was cut.
type logLine struct {
	b []byte
	l *accessLog
}

// getLine returns a line buffer: a reused one when the writer has returned some. A
// free list rather than a sync.Pool: the pool is emptied at every GC, and a line is
// always freed on another goroutine than the one that takes it.
func (l *accessLog) getLine() *logLine {
	select {
	case line := <-l.free:
		return line
	default:
		return &logLine{b: make([]byte, 0, 768), l: l}
	}
}

func (l *accessLog) putLine(line *logLine) {
	line.b = line.b[:0]
	select {
	case l.free <- line:
	default:
	}
}

// accessLogQueue bounds the lines waiting for the writer.
const accessLogQueue = 8192

// openAccessLog starts writing to path ("-" is stderr). The file is opened for append
// and opened again when it is renamed or removed (log rotation), checked every second.
func openAccessLog(path string, dropped *metrics.Counter, log *slog.Logger) (*accessLog, error) {
	w, err := openLogFile(path)
	if err != nil {
		return nil, err
	}
	l := &accessLog{path: path, lines: make(chan *logLine, accessLogQueue), free: make(chan *logLine, accessLogQueue),
		dropped: dropped, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run(w)
	return l, nil
}

func openLogFile(path string) (io.WriteCloser, error) {
	if path == "-" {
		return nopCloser{os.Stderr}, nil
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func (l *accessLog) run(w io.WriteCloser) {
	defer close(l.done)
	lw := &logWriter{l: l}
	lw.reset(w)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			for len(l.lines) > 0 {
				lw.write((<-l.lines).b)
			}
			lw.flush()
			w.Close()
			return
		case line := <-l.lines:
			lw.write(line.b) // a full disk drops lines, not requests
			l.putLine(line)
			if len(l.lines) == 0 {
				lw.flush()
			}
		case <-tick.C:
			lw.flush()
			if l.path != "-" && rotated(l.path, w) {
				nw, err := openLogFile(l.path)
				if err != nil {
					lw.fail(fmt.Errorf("reopen after rotation: %w", err), 0)
					continue
				}
				w.Close()
				w = nw
				lw.reset(w)
			}
		}
	}
}

// logWriter buffers lines for the file and owns what a failed write costs: the
// lines it held are counted as dropped, the buffer starts afresh (bufio keeps its
// first error and would refuse every later line until a rotation), the failure is
// logged once, and its end once.
type logWriter struct {
	l       *accessLog
	w       io.Writer // the file
	bw      *bufio.Writer
	pending int   // lines buffered since the last flush that worked
	failing error // the write error in force, nil while writes work
}

func (lw *logWriter) reset(w io.Writer) {
	lw.w = w
	if lw.bw == nil {
		lw.bw = bufio.NewWriterSize(w, 64<<10)
	} else {
		lw.bw.Reset(w)
	}
	lw.pending = 0
}

func (lw *logWriter) write(b []byte) {
	if _, err := lw.bw.Write(b); err != nil {
		lw.fail(err, lw.pending+1)
		return
	}
	lw.pending++
}

func (lw *logWriter) flush() {
	if lw.pending == 0 {
		return
	}
	if err := lw.bw.Flush(); err != nil {
		lw.fail(err, lw.pending)
		return
	}
	lw.pending = 0
	if lw.failing != nil && lw.l.log != nil {
		lw.l.log.Warn("access log written again", "path", lw.l.path, "after", lw.failing.Error())
	}
	lw.failing = nil
}

// fail counts lost lines as dropped and clears the buffer's sticky error, so the
// next line is tried on the file again.
func (lw *logWriter) fail(err error, lost int) {
	if lost > 0 {
		lw.l.dropped.Add(lost)
	}
	lw.bw.Reset(lw.w) // discard what it held, and its error
	lw.pending = 0
	if lw.failing == nil && lw.l.log != nil {
		lw.l.log.Error("access log write failed: lines are dropped and counted (shiftgate_access_log_dropped_total) until writes work again",
			"path", lw.l.path, "err", err.Error())
	}
	lw.failing = err
}

// rotated reports whether path no longer names the open file.
func rotated(path string, w io.WriteCloser) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	cur, err := os.Stat(path)
	if err != nil {
		return true
	}
	open, err := f.Stat()
	return err != nil || !os.SameFile(cur, open)
}

// close flushes what is queued and closes the file.
func (l *accessLog) close() {
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
}

// record formats one request's line and queues it, or, when the response body is
// still to stream from an upstream, leaves the line for the body's end to finish.
func (l *accessLog) record(ctx *fasthttp.RequestCtx, st *state, d routing.Decision, id []byte, ex *exchange) {
	line := l.getLine()
	b := line.b[:0]
	now := time.Now()
	b = append(b, `{"time":"`...)
	b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","peer":"`...)
	b = peerAddr(ctx).AppendTo(b)
	b = append(b, `","method":`...)
	b = appendJSONString(b, ctx.Method())
	b = append(b, `,"host":`...)
	b = appendJSONString(b, ctx.Request.Header.Host())
	b = append(b, `,"uri":`...)
	b = appendJSONString(b, ctx.RequestURI())
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(ctx.Response.StatusCode()), 10)
	b = append(b, `,"ms":`...)
	b = strconv.AppendFloat(b, float64(now.Sub(ctx.Time()).Microseconds())/1000, 'f', 3, 64)
	if d.Route >= 0 {
		// Route and region names are tokens (checked by conf): nothing to escape.
		b = append(b, `,"route":"`...)
		b = append(b, st.table.RouteName(int(d.Route))...)
		b = append(b, `","region":"`...)
		b = append(b, st.regions[d.Region]...)
		b = append(b, `","reason":"`...)
		b = append(b, d.Reason.String()...)
		b = append(b, `","key_source":"`...)
		if d.Source >= 0 {
			b = append(b, st.routes[d.Route].cfg.KeySources[d.Source].String()...)
		} else {
			b = append(b, "none"...)
		}
		b = append(b, '"')
		if fb := ctx.Response.Header.Peek("X-Shift-Fallback"); len(fb) > 0 {
			b = append(b, `,"fallback":`...)
			b = appendJSONString(b, fb)
		}
		if sh := ctx.Response.Header.PeekBytes(strShed); len(sh) > 0 {
			b = append(b, `,"shed":`...)
			b = appendJSONString(b, sh)
		}
	}
	if ex.answered != conf.NoRegion {
		b = append(b, `,"answered_by":"`...)
		b = append(b, st.regions[ex.answered]...)
		b = append(b, '"')
	}
	if ex.upstream != "" {
		b = append(b, `,"upstream":`...)
		b = appendJSONString(b, s2b(ex.upstream))
	}
	// The id is either the client's, checked to need no escaping, or made here.
	b = append(b, `,"request_id":"`...)
	b = append(b, id...)
	b = append(b, `","user_agent":`...)
	b = appendJSONString(b, ctx.Request.Header.UserAgent())
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, ex.bytesIn, 10)
	line.b = b
	if !ctx.Response.IsBodyStream() {
		line.BodyDone(int64(len(ctx.Response.Body())), true)
		return
	}
	if !wire.ObserveBody(&ctx.Response, line) {
		// A stream of another kind: its declared length (reading it here would
		// consume it).
		line.BodyDone(int64(ctx.Response.Header.ContentLength()), true)
	}
}

// BodyDone finishes the line with the response body bytes sent and queues it; a body
// cut short (the upstream failed in it, or the client went away) is marked.
func (line *logLine) BodyDone(n int64, complete bool) {
	b := append(line.b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, n, 10)
	if !complete {
		b = append(b, `,"cut":true`...)
	}
	line.b = append(b, "}\n"...)
	l := line.l
	select {
	case <-l.stop:
		l.dropped.Inc()
		return
	default:
	}
	select {
	case l.lines <- line:
	default:
		l.dropped.Inc()
		l.putLine(line)
	}
}

// s2b views a string as bytes without copying; the bytes are only read.
func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
