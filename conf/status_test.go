package conf

import "testing"

func TestParseStatusSpec(t *testing.T) {
	for _, tc := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"503", 503, 503, true}, {"100", 100, 100, true}, {"599", 599, 599, true},
		{"5xx", 500, 599, true}, {"4XX", 400, 499, true}, {"1xx", 100, 199, true}, {"5xX", 500, 599, true},
		{"", 0, 0, false}, {"5", 0, 0, false}, {"50", 0, 0, false}, {"5x", 0, 0, false}, {"6xx", 0, 0, false},
		{"0xx", 0, 0, false}, {"xxx", 0, 0, false}, {"5xy", 0, 0, false}, {"099", 0, 0, false},
		{"600", 0, 0, false}, {"1000", 0, 0, false}, {"+50", 0, 0, false}, {"-12", 0, 0, false},
		{"abc", 0, 0, false}, {" 500", 0, 0, false}, {"5xx ", 0, 0, false}, {"0500", 0, 0, false},
	} {
		lo, hi, err := ParseStatusSpec(tc.in)
		if (err == nil) != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("ParseStatusSpec(%q) = %d, %d, %v; want %d, %d, ok=%v", tc.in, lo, hi, err, tc.lo, tc.hi, tc.ok)
		}
	}
}

func FuzzParseStatusSpec(f *testing.F) {
	for _, s := range []string{"500", "5xx", "4XX", "599", "100", "6xx", "abc", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		lo, hi, err := ParseStatusSpec(spec)
		if err != nil {
			return
		}
		// An accepted spec names a range within 100..599.
		if lo < 100 || hi > 599 || lo > hi {
			t.Fatalf("ParseStatusSpec(%q) = %d..%d", spec, lo, hi)
		}
	})
}
