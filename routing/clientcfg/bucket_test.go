package clientcfg

import (
	"strings"
	"testing"
)

func TestContractVectors(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want int
	}{
		{"42", 2799}, {"u-1001", 7356}, {"u-qa-1", 900}, {"d-7f3a", 7630},
		{"203.0.113.7", 3466}, {"2001:db8::1", 5774},
	} {
		if got := Bucket("cutover-2026", tc.key); got != tc.want {
			t.Errorf("Bucket(cutover-2026, %q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

// TestBucketLongInput crosses the stack-buffer bound: the one-shot and the streaming
// hash must agree at every length around it.
func TestBucketLongInput(t *testing.T) {
	for n := shortInput - 20; n < shortInput+20; n++ {
		key := strings.Repeat("k", n)
		one := seededSum64(0, "salt\x00"+key)
		if got := Hash64("salt", key); got != one {
			t.Fatalf("len %d: Hash64 = %x, want %x", n, got, one)
		}
		if got, want := Bucket("salt", key), int(one%Buckets); got != want {
			t.Fatalf("len %d: Bucket = %d, want %d", n, got, want)
		}
	}
}

// TestHashVectorsKnown ties the seeded hash the vectors publish to XXH64's published
// values, so that vectors.json cannot agree with a wrong Go hash.
func TestHashVectorsKnown(t *testing.T) {
	for _, tc := range []struct {
		in   string
		seed uint64
		want uint64
	}{
		{"", 0, 0xef46db3751d8e999},
		{"a", 0, 0xd24ec4f1a98c6e5b},
		{"abc", 0, 0x44bc2cf5ad770999},
		{"Nobody inspects the spammish repetition", 0, 0xfbcea83c8a378bf1},
	} {
		if got := seededSum64(tc.seed, tc.in); got != tc.want {
			t.Errorf("xxh64(%q, %d) = %016x, want %016x", tc.in, tc.seed, got, tc.want)
		}
	}
}

func TestIPKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
		{"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},    // the leftmost of equal runs
		{"2001:db8:1:2:3:4:5:0", "2001:db8:1:2:3:4:5:0"}, // one zero group stays
		{"::ffff:1.2.3.4", "1.2.3.4"},
		{"::ffff:1.2.3.4%eth0", "1.2.3.4"},
		{"::1.2.3.4", "::102:304"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"", ""}, {"unknown", ""}, {"01.2.3.4", ""}, {"1.2.3.4%eth0", ""}, {"[::1]", ""}, {"1.2.3.4:80", ""},
	} {
		if got := IPKey(tc.in); got != tc.want {
			t.Errorf("IPKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func BenchmarkBucket(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Bucket("cutover-2026", "u-1001")
	}
}
