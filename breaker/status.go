package breaker

import (
	"fmt"
	"strconv"
)

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

// ParseStatuses builds a set from specs such as "503" (one status) or "5xx" (a class,
// "1xx".."5xx"; the x's may be upper case). An empty list gives the zero set, that is,
// the default in Settings.
func ParseStatuses(specs []string) (StatusSet, error) {
	var set StatusSet
	for _, spec := range specs {
		lo, hi, ok := parseStatusSpec(spec)
		if !ok {
			return StatusSet{}, fmt.Errorf("breaker: failure status %q: want a status 100..599 or a class 1xx..5xx", spec)
		}
		for code := lo; code <= hi; code++ {
			set.add(code)
		}
	}
	return set, nil
}

// parseStatusSpec returns the range of statuses spec names.
func parseStatusSpec(spec string) (lo, hi int, ok bool) {
	if len(spec) != 3 {
		return 0, 0, false
	}
	if (spec[1] == 'x' || spec[1] == 'X') && (spec[2] == 'x' || spec[2] == 'X') {
		class := int(spec[0]) - '0'
		if class < 1 || class > 5 {
			return 0, 0, false
		}
		return class * 100, class*100 + 99, true
	}
	code, err := strconv.Atoi(spec)
	if err != nil || code < minStatus || code > maxStatus {
		return 0, 0, false
	}
	return code, code, true
}

func mustParseStatuses(specs ...string) StatusSet {
	set, err := ParseStatuses(specs)
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
