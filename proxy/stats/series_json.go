package stats

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// MarshalJSON encodes s in uPlot's layout: [[t...],[req...],[err...],[p99...],
// [bytes_in...],[bytes_out...]], with null where p99 is unknown.
func (s Series) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 16+len(s.T)*40)
	b = append(b, "[["...)
	for i, t := range s.T {
		b = comma(b, i)
		b = strconv.AppendInt(b, t, 10)
	}
	for _, col := range [...][]uint64{s.Req, s.Err} {
		b = append(b, "],["...)
		b = appendUints(b, col, len(s.T))
	}
	b = append(b, "],["...)
	for i := range s.T {
		b = comma(b, i)
		if q := atF(s.P99, i); math.IsNaN(q) || math.IsInf(q, 0) {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendFloat(b, q, 'f', -1, 64)
		}
	}
	for _, col := range [...][]uint64{s.BytesIn, s.BytesOut} {
		b = append(b, "],["...)
		b = appendUints(b, col, len(s.T))
	}
	return append(b, "]]"...), nil
}

func comma(b []byte, i int) []byte {
	if i > 0 {
		return append(b, ',')
	}
	return b
}

func appendUints(b []byte, col []uint64, n int) []byte {
	for i := range n {
		b = comma(b, i)
		b = strconv.AppendUint(b, at(col, i), 10)
	}
	return b
}

// UnmarshalJSON decodes what MarshalJSON writes (at least the first four columns).
// Columns shorter than the times are padded with 0 (null for p99), longer ones cut.
func (s *Series) UnmarshalJSON(b []byte) error {
	var cols [][]*float64
	if err := json.Unmarshal(b, &cols); err != nil {
		return err
	}
	if len(cols) < 4 {
		return fmt.Errorf("stats: series has %d columns, want at least 4", len(cols))
	}
	n := len(cols[0])
	out := Series{Step: s.Step, T: make([]int64, n), P99: make([]float64, n)}
	uints := func(c int) ([]uint64, error) {
		v := make([]uint64, n)
		if c >= len(cols) {
			return v, nil
		}
		for i := 0; i < n && i < len(cols[c]); i++ {
			if p := cols[c][i]; p != nil {
				if *p < 0 || *p > math.MaxUint64 || math.IsNaN(*p) {
					return nil, fmt.Errorf("stats: series column %d: %g is not a count", c, *p)
				}
				v[i] = uint64(*p)
			}
		}
		return v, nil
	}
	for i, p := range cols[0] {
		if p == nil || *p != math.Trunc(*p) || math.Abs(*p) > 1<<53 {
			return fmt.Errorf("stats: series time %d is not a whole second", i)
		}
		out.T[i] = int64(*p)
	}
	var err error
	for c, dst := range [...]*[]uint64{1: &out.Req, 2: &out.Err, 4: &out.BytesIn, 5: &out.BytesOut} {
		if dst == nil {
			continue
		}
		if *dst, err = uints(c); err != nil {
			return err
		}
	}
	for i := range n {
		out.P99[i] = math.NaN()
		if i < len(cols[3]) && cols[3][i] != nil {
			out.P99[i] = *cols[3][i]
		}
	}
	*s = out
	return nil
}
