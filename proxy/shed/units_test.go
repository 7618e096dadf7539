package shed

import (
	"math"
	"testing"
)

func TestDeriveBudget(t *testing.T) {
	for _, tc := range []struct{ link, used, want float64 }{
		{10e9, 1e9, 3e9}, // 10/2 × 0.8 − 1
		{200e9, 0, 80e9},
		{200e9, 30e9, 50e9},
		{10e9, 4e9, 0}, // already past the safe level
		{10e9, 10e9, 0},
		{0, 0, 0},
		{math.NaN(), 0, 0},
	} {
		if got := DeriveBudget(tc.link, tc.used); math.Abs(got-tc.want) > 1 {
			t.Errorf("DeriveBudget(%v, %v) = %v, want %v", tc.link, tc.used, got, tc.want)
		}
	}
}
