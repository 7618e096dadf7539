package wire

import (
	"bufio"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// PipeClient sends requests to one upstream address over a few long-lived pipelined
// connections. Many clients' requests are written to a connection back to back and
// flushed with one write; the upstream's answers come back in order and are read,
// often several with one read. That is the point: a proxy cannot do fewer syscalls
// per request on the client side, but on the upstream side it can share them.
//
// Only requests that are safe to pipeline may use it (GET and HEAD without a body).
// A request that was written before its connection failed may have been processed
// and fails with errPipeBroken (never replayed); one that was still queued fails with
// ErrPipeNotSent and may go elsewhere.
//
// It is safe for concurrent use.
type PipeClient struct {
	addr         string
	dial         func(addr string) (net.Conn, error)
	conns        []*pipeConn
	next         atomic.Uint32
	readTimeout  time.Duration
	writeTimeout time.Duration
	idleTimeout  time.Duration
	maxBody      int
}

var (
	errPipeBroken  = errors.New("pipelined upstream connection failed after the request was sent")
	ErrPipeNotSent = errors.New("pipelined upstream connection failed before the request was sent")
	ErrPipeClosed  = errors.New("pipelined client closed")
)

// maxInFlight bounds the requests written on one connection and not yet answered.
const maxInFlight = 1024

func NewPipeClient(addr string, conns int, dial func(string) (net.Conn, error), read, write, idle time.Duration, maxBody int) *PipeClient {
	pc := &PipeClient{addr: addr, dial: dial, readTimeout: read, writeTimeout: write, idleTimeout: idle, maxBody: maxBody}
	for i := 0; i < conns; i++ {
		pc.conns = append(pc.conns, &pipeConn{client: pc, wake: make(chan struct{}, 1)})
	}
	return pc
}

// Do sends req and reads its answer into resp. It blocks until the answer is in, the
// connection fails or the client is closed.
func (pc *PipeClient) Do(req *fasthttp.Request, resp *fasthttp.Response) error {
	c := pc.conns[0]
	if len(pc.conns) > 1 {
		c = pc.conns[pc.next.Add(1)%uint32(len(pc.conns))]
	}
	w := acquirePipeWork(req, resp)
	c.enqueue(w)
	err := <-w.done
	releasePipeWork(w)
	return err
}

// Close stops every connection; queued requests fail with ErrPipeClosed.
// Addr is the upstream address the client sends to.
func (pc *PipeClient) Addr() string { return pc.addr }

func (pc *PipeClient) Close() {
	for _, c := range pc.conns {
		c.close()
	}
}

// pipeWork is one request waiting for its answer.
type pipeWork struct {
	req  *fasthttp.Request
	resp *fasthttp.Response
	done chan error
}

var pipeWorkPool = sync.Pool{New: func() any { return &pipeWork{done: make(chan error, 1)} }}

func acquirePipeWork(req *fasthttp.Request, resp *fasthttp.Response) *pipeWork {
	w := pipeWorkPool.Get().(*pipeWork)
	w.req, w.resp = req, resp
	return w
}

func releasePipeWork(w *pipeWork) {
	w.req, w.resp = nil, nil
	pipeWorkPool.Put(w)
}

// pipeConn is one pipelined connection and the two goroutines that drive it: the
// writer batches queued requests into one flush, the reader answers them in order.
// Both run only while the connection is in use and stop after it has been idle.
type pipeConn struct {
	client *PipeClient

	mu      sync.Mutex
	queue   []*pipeWork // waiting to be written
	spare   []*pipeWork
	running bool // the writer goroutine is alive
	closed  bool
	wake    chan struct{}
}

func (c *pipeConn) enqueue(w *pipeWork) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		w.done <- ErrPipeClosed
		return
	}
	c.queue = append(c.queue, w)
	start := !c.running
	c.running = true
	c.mu.Unlock()
	if start {
		go c.writer()
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *pipeConn) close() {
	c.mu.Lock()
	c.closed = true
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, w := range q {
		w.done <- ErrPipeClosed
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// take swaps the queue out.
func (c *pipeConn) take() []*pipeWork {
	c.mu.Lock()
	batch := c.queue
	c.queue = c.spare[:0]
	c.spare = nil
	c.mu.Unlock()
	return batch
}

// giveBack returns a drained batch slice for reuse.
func (c *pipeConn) giveBack(batch []*pipeWork) {
	clear(batch)
	c.mu.Lock()
	if c.spare == nil {
		c.spare = batch[:0]
	}
	c.mu.Unlock()
}

// failQueued fails every request still queued: none of them was written.
func (c *pipeConn) failQueued(err error) {
	for _, w := range c.take() {
		w.done <- err
	}
}

// writer owns the connection: it dials, starts the reader, writes batches, and when
// the connection fails or idles it closes it and stops (a later request starts a new
// writer and connection).
func (c *pipeConn) writer() {
	pc := c.client
	conn, err := pc.dial(pc.addr)
	if err != nil {
		c.stopWriter(errors.Join(ErrPipeNotSent, err))
		return
	}
	inflight := make(chan *pipeWork, maxInFlight)
	readerDone := make(chan struct{})
	broken := new(atomic.Bool)
	go c.reader(conn, inflight, readerDone, broken)
	bw := bufio.NewWriterSize(conn, 16<<10)
	idle := time.NewTimer(pc.idleTimeout)
	defer idle.Stop()
	// abort ends the connection: the reader fails what was written, the writer what
	// was still queued.
	abort := func(queued error) {
		conn.Close()
		close(inflight)
		<-readerDone
		c.stopWriter(queued)
	}
	// retire ends a connection the reader found broken; what is still queued was
	// never written, so a fresh writer takes it over on a new connection.
	retire := func() {
		conn.Close()
		close(inflight)
		<-readerDone
		c.restart()
	}
	for {
		select {
		case <-c.wake:
		case <-readerDone:
			abort(ErrPipeNotSent)
			return
		case <-idle.C:
			c.mu.Lock()
			if len(c.queue) == 0 {
				c.running = false
				c.mu.Unlock()
				abort(ErrPipeNotSent)
				return
			}
			c.mu.Unlock()
		}
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			abort(ErrPipeClosed)
			return
		}
		wrote := false
		for {
			if broken.Load() {
				retire()
				return
			}
			batch := c.take()
			if len(batch) == 0 {
				if !wrote {
					break
				}
				// Let the other runnable handlers queue their requests before the
				// flush, so one write carries many of them.
				runtime.Gosched()
				c.mu.Lock()
				more := len(c.queue) > 0
				c.mu.Unlock()
				if more {
					continue
				}
				conn.SetWriteDeadline(time.Now().Add(pc.writeTimeout)) //nolint:errcheck // a dead conn fails the flush
				if err := bw.Flush(); err != nil {
					abort(ErrPipeNotSent)
					return
				}
				wrote = false
				break
			}
			for i, w := range batch {
				select {
				case <-readerDone:
					// The connection is gone; nothing of this batch was written.
					for _, rest := range batch[i:] {
						rest.done <- ErrPipeNotSent
					}
					c.giveBack(batch)
					abort(ErrPipeNotSent)
					return
				default:
				}
				// Write first, then hand it to the reader: once the reader has it,
				// it may answer (and the handler reuse the request) at any moment.
				if err := w.req.Write(bw); err != nil {
					// A buffer flush inside Write may have carried part of it.
					w.done <- errPipeBroken
					for _, rest := range batch[i+1:] {
						rest.done <- ErrPipeNotSent
					}
					c.giveBack(batch)
					abort(ErrPipeNotSent)
					return
				}
				inflight <- w
			}
			c.giveBack(batch)
			wrote = true
		}
		idle.Reset(pc.idleTimeout)
	}
}

// restart hands the queue to a new writer on a new connection, or marks the writer
// gone when nothing is queued.
func (c *pipeConn) restart() {
	c.mu.Lock()
	if c.closed || len(c.queue) == 0 {
		c.running = false
		c.mu.Unlock()
		c.failQueued(ErrPipeClosed)
		return
	}
	c.mu.Unlock()
	go c.writer()
	// The old writer may have taken the wake-up meant for what is queued.
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// stopWriter marks the writer gone and fails what is still queued.
func (c *pipeConn) stopWriter(err error) {
	c.mu.Lock()
	c.running = false
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, w := range q {
		w.done <- err
	}
}

// reader answers in-flight requests in order. On an error it fails the request it
// was reading and every later one (all were written), closes the connection, and
// keeps failing what the writer still hands it until the writer closes inflight.
func (c *pipeConn) reader(conn net.Conn, inflight chan *pipeWork, done chan struct{}, broken *atomic.Bool) {
	defer close(done)
	pc := c.client
	br := bufio.NewReaderSize(conn, 16<<10)
	failed := false
	for w := range inflight {
		if failed {
			w.done <- errPipeBroken
			continue
		}
		if br.Buffered() == 0 {
			// Only a read that will reach the network needs a fresh deadline.
			conn.SetReadDeadline(time.Now().Add(pc.readTimeout)) //nolint:errcheck
		}
		w.resp.SkipBody = w.req.Header.IsHead()
		err := w.resp.ReadLimitBody(br, pc.maxBody)
		switch {
		case err != nil:
			w.done <- errors.Join(errPipeBroken, err)
			failed = true
			broken.Store(true)
			conn.Close()
		case w.resp.Header.ConnectionClose():
			// The upstream ends the connection after this answer: later requests
			// on it will not be answered.
			w.done <- nil
			failed = true
			broken.Store(true)
			conn.Close()
		default:
			w.done <- nil
		}
	}
}
