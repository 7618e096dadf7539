package routing_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/shiftgate/shiftgate/routing"
)

// contractVectors are the test vectors of the split contract (CONTRACT.md), salt
// cutover-2026. They may never change.
var contractVectors = []struct {
	key    string
	bucket int
}{
	{"42", 2799},
	{"u-1001", 7356},
	{"u-qa-1", 900},
	{"d-7f3a", 7630},
	{"203.0.113.7", 3466},
	{"2001:db8::1", 5774},
}

// moreVectors are further (salt, key, bucket) triples the README publishes. They cover
// an empty salt, a non-ASCII key, case, a NUL inside the key and a key long enough that
// salt + "\x00" + key crosses xxhash's 32-byte block.
var moreVectors = []struct {
	salt, key string
	bucket    int
}{
	{"cutover-2026", "0", 4140},
	{"cutover-2026", "u-qa-2", 4650},
	{"cutover-2026", "u-1002", 8374},
	{"cutover-2026", "U-1001", 4820},
	{"cutover-2026", "10.1.2.3", 1692},
	{"cutover-2026", "::1", 7772},
	{"cutover-2026", "用户-7", 1155},
	{"cutover-2026", "x\x00y", 3570},
	{"cutover-2026", "0123456789abcdef0123456789abcdef0123", 3057},
	{"", "42", 8933},
	{"", "u-1001", 3688},
	{"feed-2026", "u-1001", 7707},
	{"a", "b", 353},
	// The gateway never hashes an empty key (it is skipped), but Bucket is defined on it.
	{"cutover-2026", "", 572},
}

// reference is the contract's formula, written independently of the package.
func reference(salt, key string) int {
	return int(xxhash.Sum64String(salt+"\x00"+key) % routing.Buckets)
}

func TestBucketVectors(t *testing.T) {
	for _, v := range contractVectors {
		if got := routing.Bucket("cutover-2026", v.key); got != v.bucket {
			t.Errorf("Bucket(cutover-2026, %q) = %d, want %d", v.key, got, v.bucket)
		}
		if got := reference("cutover-2026", v.key); got != v.bucket {
			t.Errorf("reference(cutover-2026, %q) = %d, want %d", v.key, got, v.bucket)
		}
	}
	for _, v := range moreVectors {
		if got := routing.Bucket(v.salt, v.key); got != v.bucket {
			t.Errorf("Bucket(%q, %q) = %d, want %d", v.salt, v.key, got, v.bucket)
		}
		if got := reference(v.salt, v.key); got != v.bucket {
			t.Errorf("reference(%q, %q) = %d, want %d", v.salt, v.key, got, v.bucket)
		}
	}
}

// TestBucketMatchesReference checks the seeded, streaming hash against the one-shot
// formula on keys of every length around xxhash's block sizes.
func TestBucketMatchesReference(t *testing.T) {
	key := make([]byte, 0, 100)
	for _, salt := range []string{"", "s", "cutover-2026", "a-salt-that-is-longer-than-thirty-two-bytes"} {
		key = key[:0]
		for n := 0; n <= 100; n++ {
			if got, want := routing.Bucket(salt, string(key)), reference(salt, string(key)); got != want {
				t.Errorf("Bucket(%q, %q) = %d, want %d", salt, key, got, want)
			}
			key = append(key, byte('a'+n%26))
		}
	}
}

// TestDecideVectors checks that the vectors come out of Decide, through a header, the
// TCP peer, a trusted proxy's X-Forwarded-For and an IPv4-mapped peer.
func TestDecideVectors(t *testing.T) {
	c := loadExample(t)
	tbl := mustCompile(t, c, nil, false)
	def := routeIndex(t, tbl, "default") // no force list, salt cutover-2026
	check := func(name string, r routing.Request, src int8, want int) {
		t.Helper()
		d := tbl.Decide(nil, []byte("/x"), r)
		if d.Route != def || d.Bucket != int32(want) || d.Source != src || d.Reason != routing.ReasonSplit {
			t.Errorf("%s: got route %d bucket %d source %d reason %v, want %d %d %d split",
				name, d.Route, d.Bucket, d.Source, d.Reason, def, want, src)
		}
	}
	for _, v := range contractVectors {
		check("header "+v.key, get("192.0.2.1", "X-User-Id", v.key), 0, v.bucket)
		check("device "+v.key, get("192.0.2.1", "X-Device-Id", v.key), 2, v.bucket)
		r := get("192.0.2.1")
		r.cookies = kv("uid", v.key)
		check("cookie "+v.key, r, 1, v.bucket)
	}
	for _, v := range contractVectors[4:] {
		a := netip.MustParseAddr(v.key)
		check("peer "+v.key, get(v.key), 3, v.bucket)
		r := get("10.0.0.1")
		r.xff = xff(v.key)
		check("xff "+v.key, r, 3, v.bucket)
		if a.Is4() {
			check("mapped "+v.key, get("::ffff:"+v.key), 3, v.bucket)
		}
	}
}

// TestSplitAccuracy hashes 1M keys: the share below each threshold is within 0.2
// percentage points of the percent (about 4 standard deviations at 50 %).
func TestSplitAccuracy(t *testing.T) {
	const n = 1_000_000
	thresholds := []int{0, 100, 500, 2500, 5000, 10000} // 0, 1, 5, 25, 50, 100 %
	moved := make([]int, len(thresholds))
	buf := make([]byte, 0, 16)
	for i := 0; i < n; i++ {
		buf = strconv.AppendInt(append(buf[:0], "u-"...), int64(i), 10)
		b := routing.Bucket("cutover-2026", string(buf))
		if b < 0 || b >= routing.Buckets {
			t.Fatalf("bucket %d out of range", b)
		}
		for j, th := range thresholds {
			if b < th {
				moved[j]++
			}
		}
	}
	for j, th := range thresholds {
		want := float64(th) / 100
		got := float64(moved[j]) * 100 / n
		switch th {
		case 0:
			if moved[j] != 0 {
				t.Errorf("0%%: %d keys moved", moved[j])
			}
		case routing.Buckets:
			if moved[j] != n {
				t.Errorf("100%%: %d of %d keys moved", moved[j], n)
			}
		default:
			if got < want-0.2 || got > want+0.2 {
				t.Errorf("%v%%: %.3f%% of keys moved", want, got)
			}
		}
		t.Logf("%6.2f%% → %.3f%%", want, got)
	}
}

// TestMonotonicRamp decides 100k users at each step of a ramp: the users in the target
// region at a lower percent are all still there at every higher one.
func TestMonotonicRamp(t *testing.T) {
	const n = 100_000
	c := loadExample(t)
	cloud := regionID(t, c, "cloud")
	steps := []int{0, 1, 100, 500, 2500, 5000, 9999, 10000} // 0, 0.01, 1, 5, 25, 50, 99.99, 100 %
	reqs := make([]*req, n)
	for i := range reqs {
		reqs[i] = get("192.0.2.1", "X-User-Id", "user-"+strconv.Itoa(i))
	}
	sets := make([][]bool, len(steps))
	for s, bp := range steps {
		tbl := mustCompile(t, c, []routing.Split{{Read: bp, Write: bp}, {}}, false)
		sets[s] = make([]bool, n)
		count := 0
		for i, r := range reqs {
			d := tbl.Decide(nil, []byte("/api/feed"), r)
			sets[s][i] = d.Region == cloud
			if sets[s][i] {
				count++
			}
		}
		switch bp {
		case 0:
			if count != 0 {
				t.Errorf("0 bp: %d users moved", count)
			}
		case 10000:
			if count != n {
				t.Errorf("10000 bp: %d of %d users moved", count, n)
			}
		}
	}
	for p := 0; p < len(steps); p++ {
		for q := p + 1; q < len(steps); q++ {
			for i := 0; i < n; i++ {
				if sets[p][i] && !sets[q][i] {
					t.Fatalf("user-%d is moved at %d bp but not at %d bp", i, steps[p], steps[q])
				}
			}
		}
	}
}

func BenchmarkBucket(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		routing.Bucket("cutover-2026", "u-1001")
	}
}

func TestMoves(t *testing.T) {
	// Only the split changes: exact shares from the bucket space, samples that move.
	f, b, s := routing.Moves(routing.Side{Salt: "cutover-2026", BP: 2500, To: "cloud"}, routing.Side{Salt: "cutover-2026", BP: 5000, To: "cloud"}, 1000)
	if f != 0.25 || b != 0 || len(s) != 3 {
		t.Errorf("25 -> 50: forward %v back %v samples %v", f, b, s)
	}
	for _, k := range s {
		var key string
		fmt.Sscanf(k, "%s", &key)
		if bk := routing.Bucket("cutover-2026", key); bk < 2500 || bk >= 5000 {
			t.Errorf("sample %s has bucket %d, outside the moving range", k, bk)
		}
	}
	f, b, _ = routing.Moves(routing.Side{Salt: "s", BP: 5000, To: "cloud"}, routing.Side{Salt: "s", BP: 1000, To: "cloud"}, 0)
	if f != 0 || b != 0.4 {
		t.Errorf("50 -> 10: forward %v back %v", f, b)
	}
	// A new salt at 25 %: about 25 % × 75 % = 18.75 % move each way.
	f, b, _ = routing.Moves(routing.Side{Salt: "a", BP: 2500, To: "cloud"}, routing.Side{Salt: "b", BP: 2500, To: "cloud"}, 100000)
	if f < 0.18 || f > 0.195 || b < 0.18 || b > 0.195 {
		t.Errorf("new salt: forward %v back %v, want about 0.1875 each", f, b)
	}
}
