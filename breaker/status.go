package breaker

import "fmt"

// Statuses a StatusSet can hold: the HTTP range 100..599.
const (
	minStatus = 100
	maxStatus = 599
)

// StatusSet is a set of HTTP statuses, 100..599, as a bitmap: a lookup is one shift
// and one mask, with no allocation. It is a comparable value.
//
// The zero StatusSet is empty; in [Settings] it stands for every 5xx status.
type StatusSet [(maxStatus - minStatus + 64) / 64]uint64

// NewStatusSet builds a set from inclusive status ranges, such as conf parses from
// "503" ({503, 503}) or "5xx" ({500, 599}). Statuses outside 100..599 are an error. No
// ranges give the zero set, that is, the default in Settings.
func NewStatusSet(ranges [][2]int) (StatusSet, error) {
	var set StatusSet
	for _, r := range ranges {
		if r[0] < minStatus || r[1] > maxStatus || r[0] > r[1] {
			return StatusSet{}, fmt.Errorf("breaker: failure statuses %d..%d: want a range within 100..599", r[0], r[1])
		}
		for code := r[0]; code <= r[1]; code++ {
			set.add(code)
		}
	}
	return set, nil
}

func mustStatusSet(ranges ...[2]int) StatusSet {
	set, err := NewStatusSet(ranges)
	if err != nil {
		panic(err)
	}
	return set
}

func (s *StatusSet) add(code int) {
	i := uint(code - minStatus)
	s[i/64] |= 1 << (i % 64)
}

// Has reports whether status is in the set. Statuses outside 100..599 never are.
func (s *StatusSet) Has(status int) bool {
	i := uint(status - minStatus) // statuses below 100 wrap to huge values
	if i > maxStatus-minStatus {
		return false
	}
	return s[i/64]&(1<<(i%64)) != 0
}

func (s *StatusSet) empty() bool {
	return *s == StatusSet{}
}
