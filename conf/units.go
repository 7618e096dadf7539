package conf

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as Go writes it ("250ms", "10s", "10m").
// A value that does not parse is kept as an error and reported by validation with
// its file, line and key path.
type Duration struct {
	D   time.Duration
	err string
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	d.parse(n, "250ms, 10s or 10m")
	return nil
}

// parse reads n into d; examples are what an error names as valid values.
func (d *Duration) parse(n *yaml.Node, examples string) {
	v, err := time.ParseDuration(n.Value)
	switch {
	case n.Kind != yaml.ScalarNode || err != nil:
		d.err = fmt.Sprintf("want a duration such as %s, got %q", examples, n.Value)
	case v < 0:
		d.err = fmt.Sprintf("want a duration >= 0, got %q", n.Value)
	default:
		d.D = v
	}
}

// OffDuration is a Duration that may also be written "off", for a mechanism an
// operator may switch off.
type OffDuration struct {
	Duration
	Off bool
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *OffDuration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Value == "off" {
		d.Off = true
		return nil
	}
	d.parse(n, "250ms or 10s, or off")
	return nil
}

// Or returns d, or def when d is zero.
func (d Duration) Or(def time.Duration) time.Duration {
	if d.D == 0 {
		return def
	}
	return d.D
}

// ByteSize is a size in bytes, written as a number or with a unit: 64KiB, 64MiB, 1GiB,
// 500KB (KB, MB and GB are decimal).
type ByteSize struct {
	N   int64
	err string
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	n2, err := ParseByteSize(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		b.err = fmt.Sprintf("want a size such as 65536, 64KiB or 64MiB, got %q", n.Value)
		return nil
	}
	b.N = n2
	return nil
}

// ParseByteSize reads a size as ByteSize documents it.
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<50)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

// Or returns b's bytes, or def when b is zero.
func (b ByteSize) Or(def int64) int64 {
	if b.N == 0 {
		return def
	}
	return b.N
}

// Percent is a share of users from 0 to 100 with at most two decimals (0.01 % steps),
// held exactly in basis points (hundredths of a percent).
type Percent struct {
	BP  int
	err string
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	bp, err := ParsePercent(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		p.err = fmt.Sprintf("want 0..100 with at most two decimals, got %q", n.Value)
		return nil
	}
	p.BP = bp
	return nil
}

// ParsePercent reads "25", "0.01" or "12.5" into basis points without going through a
// float, so that 0.29 is exactly 29 basis points. It refuses values outside 0..100,
// more than two decimals, signs and exponents.
func ParsePercent(s string) (int, error) {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || len(whole) > 3 || (dot && (frac == "" || len(frac) > 2)) {
		return 0, fmt.Errorf("bad percent %q", s)
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad percent %q", s)
		}
	}
	w, _ := strconv.Atoi(whole)
	f := 0
	if frac != "" {
		f, _ = strconv.Atoi(frac)
		if len(frac) == 1 {
			f *= 10
		}
	}
	bp := w*100 + f
	if bp > 10000 {
		return 0, fmt.Errorf("percent %q is above 100", s)
	}
	return bp, nil
}

// FormatBP prints basis points as a percent: 2500 → "25", 1 → "0.01".
func FormatBP(bp int) string {
	if bp%100 == 0 {
		return strconv.Itoa(bp / 100)
	}
	s := fmt.Sprintf("%d.%02d", bp/100, bp%100)
	return strings.TrimSuffix(s, "0")
}
