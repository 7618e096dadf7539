package drill

import (
	"sync"
	"sync/atomic"
)

// moves judges whether users moved back, from answers that complete in any order.
//
// Two requests for the same user may be in flight at once on different connections,
// and on a busy machine they complete in any order: the order of completions says
// nothing about the order in which the gateway decided them, and neither does the
// order of sending, since a request sent first may be read by the gateway second. What
// the client can know for certain is causality: if answer A had arrived before
// request B was sent, the gateway decided A before B. So every request takes a stamp
// from one clock when it is sent and another when its answer arrives, and a user has
// moved back when an answer from the old region comes to a request sent after an
// answer from the new region had arrived. Nothing that can be ordered is excused;
// requests that overlapped in time cannot be ordered and are not compared.
//
// A rollback moves users back on purpose: the phase after one starts a new epoch, in
// which earlier answers from the new region no longer count.
type moves struct {
	clock atomic.Int64
	users []userMoves
}

type userMoves struct {
	mu    sync.Mutex
	epoch int64
	// toAt is the arrival stamp of the user's first answer from the new region in
	// this epoch; 0 when none has arrived.
	toAt int64
}

func newMoves(users int) *moves { return &moves{users: make([]userMoves, users)} }

// stamp returns the next tick of the clock: call it when a request is sent and when
// its answer arrives.
func (m *moves) stamp() int64 { return m.clock.Add(1) }

// answer records an answer for user, sent at stamp sent and arrived at stamp arrived,
// from the new region (to) or the old one, in epoch; it reports whether the answer
// shows the user moved back.
func (m *moves) answer(user int, epoch, sent, arrived int64, to bool) (back bool) {
	u := &m.users[user]
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case epoch < u.epoch:
		return false // sent before a rollback's epoch ended: nothing to compare with
	case epoch > u.epoch:
		u.epoch, u.toAt = epoch, 0
	}
	if to {
		if u.toAt == 0 || arrived < u.toAt {
			u.toAt = arrived
		}
		return false
	}
	if u.toAt != 0 && u.toAt < sent {
		u.toAt = 0 // one move back, counted once; a later return counts again
		return true
	}
	return false
}
