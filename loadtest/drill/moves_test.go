package drill

import "testing"

// TestMovesJudgedByCausalOrder replays interleavings a busy machine produces. Only an
// old-region answer to a request sent after a new-region answer had arrived is a move
// back; answers that overlapped are not compared, whichever completes first.
func TestMovesJudgedByCausalOrder(t *testing.T) {
	type ans struct {
		user          int
		epoch         int64
		sent, arrived int64
		to            bool
		back          bool
	}
	for _, tc := range []struct {
		name string
		seq  []ans // in the order the answers arrive
	}{
		{"a real move back", []ans{{0, 0, 1, 2, true, false}, {0, 0, 3, 4, false, true}}},
		{"forward only", []ans{{0, 0, 1, 2, false, false}, {0, 0, 3, 4, true, false}, {0, 0, 5, 6, true, false}}},
		// Sent before the change, answered after a later request (the old drill
		// counted this as a move back).
		{"overlap, later one first", []ans{{0, 0, 2, 3, true, false}, {0, 0, 1, 4, false, false}}},
		// Sent first but decided second: overlapping, so not comparable either.
		{"overlap, sent first decided last", []ans{{0, 0, 1, 4, true, false}, {0, 0, 2, 3, false, false}}},
		{"a move back after an overlap", []ans{{0, 0, 2, 3, true, false}, {0, 0, 1, 4, false, false}, {0, 0, 5, 6, false, true}}},
		{"one move counted once", []ans{{0, 0, 1, 2, true, false}, {0, 0, 3, 4, false, true}, {0, 0, 5, 6, false, false}, {0, 0, 7, 8, true, false}, {0, 0, 9, 10, false, true}}},
		{"other users apart", []ans{{0, 0, 1, 2, true, false}, {1, 0, 3, 4, false, false}}},
		// After a rollback a new epoch starts: the old new-region answers no longer count.
		{"new epoch", []ans{{0, 0, 1, 2, true, false}, {0, 1, 3, 4, false, false}}},
		{"late answer of an old epoch", []ans{{0, 1, 3, 4, true, false}, {0, 0, 1, 5, false, false}, {0, 1, 6, 7, false, true}}},
	} {
		m := newMoves(2)
		for i, a := range tc.seq {
			if got := m.answer(a.user, a.epoch, a.sent, a.arrived, a.to); got != a.back {
				t.Errorf("%s: answer %d: back %v, want %v", tc.name, i, got, a.back)
			}
		}
	}
}
