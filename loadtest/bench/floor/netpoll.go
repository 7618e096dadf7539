package main

import (
	"net"
	"sync"
)

// netpollServer is the floor of Go's net package: a goroutine per client connection,
// blocking reads and writes on net.Conn (the runtime parks the goroutine on EAGAIN
// and its netpoller wakes it), one upstream connection per client connection.
type netpollServer struct {
	ln      net.Listener
	backend string
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

func startNetpoll(listen, backend string) (*netpollServer, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	s := &netpollServer{ln: ln, backend: backend, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *netpollServer) addr() string { return s.ln.Addr().String() }

func (s *netpollServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *netpollServer) track(c net.Conn, on bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		delete(s.conns, c)
		return true
	}
	if s.conns == nil {
		return false // closing
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *netpollServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			for c := range s.conns {
				c.Close()
			}
			s.conns = nil
			s.mu.Unlock()
			return
		}
		if !s.track(c, true) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			defer c.Close()
			s.serve(c)
		}()
	}
}

// serve forwards the client's requests one at a time: it reads a whole head, writes
// the request (head and Content-Length body) upstream as it arrives, then copies the
// answer back as it arrives until its Content-Length is done.
func (s *netpollServer) serve(c net.Conn) {
	var up net.Conn
	defer func() {
		if up != nil {
			s.track(up, false)
			up.Close()
		}
	}()
	in := make([]byte, bufSize)  // client bytes not yet forwarded: in[:n]
	out := make([]byte, bufSize) // upstream bytes
	n := 0
	for {
		// Read until the buffer holds a whole request head.
		h := headEnd(in[:n])
		for h < 0 {
			if n == len(in) {
				c.Write(badRequest)
				return
			}
			m, err := c.Read(in[n:])
			if m == 0 && err != nil {
				return
			}
			n += m
			h = headEnd(in[:n])
		}
		reqLen, err := requestLen(in[:h])
		if err != nil {
			c.Write(badRequest)
			return
		}
		headReq := isHead(in[:h])
		if up == nil {
			if up, err = net.Dial("tcp", s.backend); err != nil {
				return
			}
			if !s.track(up, true) { // closing: close unblocks its reads
				return
			}
		}
		// Forward the request: what is buffered, then the rest of the body as it comes.
		left := reqLen
		for left > 0 {
			if n == 0 {
				m, err := c.Read(in)
				if m == 0 && err != nil {
					return
				}
				n = m
			}
			k := int(min(left, int64(n)))
			if _, err := up.Write(in[:k]); err != nil {
				return
			}
			left -= int64(k)
			n = copy(in, in[k:n])
		}
		// Copy the answer back.
		m := 0
		h = -1
		for h < 0 {
			if m == len(out) {
				return
			}
			r, err := up.Read(out[m:])
			if r == 0 && err != nil {
				return
			}
			m += r
			h = headEnd(out[:m])
		}
		respLen, err := responseLen(out[:h], headReq)
		if err != nil || int64(m) > respLen {
			return // unframed, or more than one answer to one request
		}
		for {
			if _, err := c.Write(out[:m]); err != nil {
				return
			}
			respLen -= int64(m)
			if respLen == 0 {
				break
			}
			r, err := up.Read(out[:min(int64(len(out)), respLen)])
			if r == 0 && err != nil {
				return
			}
			m = r
		}
	}
}
