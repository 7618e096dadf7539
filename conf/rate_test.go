package conf

import (
	"math"
	"strings"
	"testing"
)

func TestParseRateGrammar(t *testing.T) {
	f := func(in string, want float64) {
		t.Helper()
		got, err := ParseRate(in)
		if err != nil {
			t.Errorf("ParseRate(%q): %v", in, err)
			return
		}
		if math.Abs(got-want) > 1e-9*want {
			t.Errorf("ParseRate(%q) = %v, want %v", in, got, want)
		}
	}
	f("800Mbit", 100e6)
	f("800 Mbit", 100e6)
	f(" 800mbit ", 100e6)
	f("1Gbps", 125e6)
	f("1.5Gbit/s", 187.5e6)
	f("100kb/s", 12.5e3)
	f("8bit", 1)
	f("10Tbit", 1.25e12)
	f("100MB", 100e6)
	f("100MB/s", 100e6)
	f("100MBps", 100e6)
	f("1kB", 1e3)
	f("64KiB/s", 64*1024)
	f("1GiB", 1<<30)
	f("8Mib", 1<<20)
	f("1TiB", 1<<40)
	f("3 bytes/s", 3)
	f("0.5B", 0.5)

	bad := func(in, wantErr string) {
		t.Helper()
		if got, err := ParseRate(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseRate(%q) = %v, %v; want an error with %q", in, got, err, wantErr)
		}
	}
	bad("", "want a number")
	bad("Mbit", "want a number")
	bad("800", "no unit")
	bad("800 ", "no unit")
	bad("-1Mbit", "want a number")
	bad("0Mbit", "above zero")
	bad("0.0B", "above zero")
	bad("1.Mbit", "no digits after the point")
	bad("1e9bit", "unknown unit")
	bad("800Mbyte/h", "unknown unit")
	bad("800Xbit", "unknown unit")
	bad("800Mi", "unknown unit")
	bad("800mB/sec", "unknown unit")
	bad(strings.Repeat("9", 400)+"B", "out of range")
	bad("off", "want a number")
}

func TestFormatRate(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{100e6, "800Mbit"},
		{125e6, "1Gbit"},
		{12.5e3, "100kbit"},
		{1, "8bit"},
		{1.25e12, "10Tbit"},
		{0, "off"},
		{-1, "off"},
		{math.NaN(), "off"},
		{math.Inf(1), "off"},
	} {
		if got := FormatRate(tc.in); got != tc.want {
			t.Errorf("FormatRate(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"800Mbit", "1.5Gbps", "100MB/s", "64KiB", "0B", "1e3b", " 7 kbit ", "9Ti", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if !(r > 0) || math.IsInf(r, 0) {
			t.Fatalf("ParseRate(%q) = %v without an error", s, r)
		}
		// What FormatRate writes, ParseRate reads back.
		back, err := ParseRate(FormatRate(r))
		if err != nil || math.Abs(back-r) > 1e-9*r {
			t.Fatalf("ParseRate(FormatRate(%v)) = %v, %v", r, back, err)
		}
	})
}
