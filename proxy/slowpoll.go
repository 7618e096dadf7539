package proxy

import (
	"time"

	"github.com/shiftgate/shiftgate/breaker"
)

// slowPollEvery is how often breakers with slow-call settings look at their calls in
// flight when no request comes to them: while a region hangs, every client that chose
// it may be waiting on it, and the breaker must still see the hang.
const slowPollEvery = 100 * time.Millisecond

func (s *Server) slowPollLoop() {
	t := time.NewTicker(slowPollEvery)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case now := <-t.C:
			s.runtimes.breakers.Range(func(_ breaker.Key, b *breaker.Breaker) {
				b.Poll(now)
			})
		}
	}
}
