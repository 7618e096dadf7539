package conf

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Rate is a data rate as operators write it ("800Mbit", "1Gbps", "100MB/s"), held in
// bytes per second. A value that does not parse is kept as an error and reported by
// validation with its file, line and key path. The zero value is no rate.
type Rate struct {
	BytesPerSec float64
	err         string
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseRate(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		msg := fmt.Sprintf("want a rate such as 800Mbit, 2Gbit or 100MB, got %q", n.Value)
		if err != nil && n.Kind == yaml.ScalarNode {
			msg = err.Error()
		}
		r.err = msg
		return nil
	}
	r.BytesPerSec = v
	return nil
}

// String writes r as FormatRate does.
func (r Rate) String() string { return FormatRate(r.BytesPerSec) }

// ParseRate reads a data rate and returns bytes per second. It is the one grammar of
// rates: the config, the admin API and the CLI all read budgets with it.
//
// The number is decimal digits with an optional fraction ("800", "1.5"); spaces may
// stand between it and the unit, which is required (a bare number could be bits or
// bytes). The unit is an optional prefix and a kind:
//
//   - prefixes k, M, G, T are SI (1e3 .. 1e12), in either case ("mbit" is the megabit
//     of Linux tc); Ki, Mi, Gi, Ti are binary (1024, 1024², ...);
//   - bits: "bit", "bits", "b", "bps", each optionally with "/s" ("800Mbit",
//     "1Gbps"); bytes: "B", "byte", "bytes", "Bps", each optionally with "/s"
//     ("100MB", "64KiB/s"). Only a capital B is a byte.
//
// The result is positive and finite; zero and everything else is an error. "off" is
// the caller's word, not a rate.
func ParseRate(s string) (bytesPerSec float64, err error) {
	in := s
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("rate %q: want a number and a unit, like 800Mbit or 100MB", in)
	}
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 {
			return 0, fmt.Errorf("rate %q: no digits after the point", in)
		}
		i = j
	}
	n, err := strconv.ParseFloat(s[:i], 64)
	if err != nil || math.IsInf(n, 0) {
		return 0, fmt.Errorf("rate %q: number out of range", in)
	}
	mult, bytes, err := parseRateUnit(strings.TrimLeft(s[i:], " \t"))
	if err != nil {
		return 0, fmt.Errorf("rate %q: %w", in, err)
	}
	r := n * mult
	if !bytes {
		r /= 8
	}
	if !(r > 0) || math.IsInf(r, 0) {
		return 0, fmt.Errorf("rate %q: want a rate above zero and finite", in)
	}
	return r, nil
}

var errRateUnit = errors.New("unknown unit: want bit, b, bps (bits) or B, Bps (bytes), with k, M, G, T or Ki, Mi, Gi, Ti")

func parseRateUnit(u string) (mult float64, bytes bool, err error) {
	if u == "" {
		return 0, false, errors.New("no unit: say bit or B (800Mbit, 100MB)")
	}
	mult = 1
	for i, p := range "kmgt" {
		if u[0]|0x20 != byte(p) { // ASCII lower case
			continue
		}
		if len(u) >= 2 && u[1] == 'i' {
			mult, u = math.Ldexp(1, 10*(i+1)), u[2:]
		} else {
			mult, u = math.Pow10(3*(i+1)), u[1:]
		}
		break
	}
	u = strings.TrimSuffix(u, "/s")
	switch u {
	case "bit", "bits", "b", "bps":
		return mult, false, nil
	case "B", "byte", "bytes", "Bps":
		return mult, true, nil
	}
	return 0, false, errRateUnit
}

// FormatRate writes bytes per second as bits with the largest SI prefix that keeps the
// number at least 1 ("800Mbit"); ParseRate reads it back. A rate that is not positive
// and finite is "off".
func FormatRate(bytesPerSec float64) string {
	if !(bytesPerSec > 0) || math.IsInf(bytesPerSec, 0) {
		return "off"
	}
	bits := bytesPerSec * 8
	prefix, div := "", 1.0
	for _, p := range [...]struct {
		s string
		d float64
	}{{"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"k", 1e3}} {
		if bits >= p.d {
			prefix, div = p.s, p.d
			break
		}
	}
	return strconv.FormatFloat(bits/div, 'f', -1, 64) + prefix + "bit"
}
