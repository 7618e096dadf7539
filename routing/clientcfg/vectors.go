package clientcfg

//go:generate go test -run TestVectorsFile -update .

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// VectorsFormat and VectorsVersion name the vectors document's format. The version
// changes when a field is renamed or re-meant; adding vectors does not change it.
const (
	VectorsFormat  = "shiftgate-client-vectors"
	VectorsVersion = "1"
)

// ContractSalt is the salt of the contract's published vectors.
const ContractSalt = "cutover-2026"

// Document is the golden vectors every SDK runs: `shiftgate vectors` prints it and
// clients/vectors.json holds it.
type Document struct {
	Format    string `json:"format"`
	Version   string `json:"version"`
	Algorithm string `json:"algorithm"`
	// XXH64 checks the raw hash with seeds, at every tail length of the algorithm.
	XXH64 []HashVector `json:"xxh64"`
	// Buckets are (salt, key) → bucket, grouped by what they exercise.
	Buckets []BucketVector `json:"buckets"`
	// Edges are keys whose bucket sits on either side of a percent's threshold.
	Edges []EdgeVector `json:"edges"`
	// IPs are addresses in many spellings and the key the ip source makes of them.
	IPs []IPVector `json:"ips"`
	// Configs are whole client configs with requests and the decisions expected.
	Configs []ConfigVector `json:"configs"`
	// InvalidConfigs must be refused by every SDK's config parser.
	InvalidConfigs []InvalidConfig `json:"invalid_configs"`
}

// HashVector is xxhash64 of Input's UTF-8 bytes with Seed (decimal, as it may exceed
// 2^53), Hash in 16 hex digits.
type HashVector struct {
	Input string `json:"input"`
	Seed  string `json:"seed"`
	Hash  string `json:"hash"`
}

// BucketVector is one bucket: Hash is xxhash64(salt + "\x00" + key) in 16 hex digits.
type BucketVector struct {
	Group  string `json:"group"`
	Salt   string `json:"salt"`
	Key    string `json:"key"`
	Hash   string `json:"hash"`
	Bucket int    `json:"bucket"`
}

// EdgeVector is a key next to a threshold: To says whether a route at Percent sends
// it to its to region (Bucket < Threshold).
type EdgeVector struct {
	Salt      string  `json:"salt"`
	Key       string  `json:"key"`
	Bucket    int     `json:"bucket"`
	Percent   float64 `json:"percent"`
	Threshold int     `json:"threshold"`
	To        bool    `json:"to"`
}

// IPVector is an address as a client may hold it and the key the gateway hashes for
// it; Key is "" when Input is not an address (the ip source is then skipped).
type IPVector struct {
	Input string `json:"input"`
	Key   string `json:"key"`
}

// ConfigVector is a config and requests against it.
type ConfigVector struct {
	Name   string  `json:"name"`
	Config *Config `json:"config"`
	Cases  []Case  `json:"cases"`
}

// Case is one request and the decision Decide makes for it.
type Case struct {
	Name    string   `json:"name"`
	Request Request  `json:"request"`
	Expect  Decision `json:"expect"`
}

// InvalidConfig is a config document that a parser must refuse, and why.
type InvalidConfig struct {
	Name   string          `json:"name"`
	Why    string          `json:"why"`
	Config json.RawMessage `json:"config"`
}

// Vectors builds the golden vectors document. It is deterministic: every call
// returns the same document, so the committed file can be compared with it.
func Vectors() *Document {
	return &Document{
		Format:         VectorsFormat,
		Version:        VectorsVersion,
		Algorithm:      Algorithm,
		XXH64:          hashVectors(),
		Buckets:        bucketVectors(),
		Edges:          edgeVectors(),
		IPs:            ipVectors(),
		Configs:        configVectors(),
		InvalidConfigs: invalidConfigs(),
	}
}

// VectorsJSON returns Vectors() as indented JSON with a final newline, byte for byte
// what clients/vectors.json holds.
func VectorsJSON() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(Vectors()); err != nil {
		panic("clientcfg: vectors do not encode: " + err.Error())
	}
	return buf.Bytes()
}

func hashVectors() []HashVector {
	const text = "The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	// Lengths around each of xxh64's paths: 1-, 4- and 8-byte tails, 32-byte stripes.
	lengths := []int{0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100}
	seeds := []uint64{0, 1, 0x9E3779B185EBCA87, 1<<64 - 1}
	var out []HashVector
	for _, s := range seeds {
		for _, n := range lengths {
			in := text[:n]
			out = append(out, HashVector{Input: in, Seed: strconv.FormatUint(s, 10), Hash: hex64(seededSum64(s, in))})
		}
	}
	// Multi-byte text, so that the hash is seen to take UTF-8 bytes.
	out = append(out, HashVector{Input: "café 日本語 😀", Seed: "0", Hash: hex64(seededSum64(0, "café 日本語 😀"))})
	return out
}

func bucketVectors() []BucketVector {
	var out []BucketVector
	add := func(group, salt string, keys ...string) {
		for _, k := range keys {
			out = append(out, BucketVector{Group: group, Salt: salt, Key: k, Hash: hex64(Hash64(salt, k)), Bucket: Bucket(salt, k)})
		}
	}
	add("contract", ContractSalt, "42", "u-1001", "u-qa-1", "d-7f3a", "203.0.113.7", "2001:db8::1")
	add("ascii", ContractSalt, "0", "1", "user-123456789", "a b", "key\twith\ttabs", `quote"back\slash`, "x\x00y")
	add("non-ascii", ContractSalt,
		"café",                  // precomposed é, U+00E9
		"cafe\u0301",            // e + combining acute: other bytes, other bucket
		"ÄÖÜäöüß",               // Latin-1 range
		"ñandú",                 // Latin-1 range
		"用户-一〇〇一",               // CJK
		"ユーザー",                  // Katakana
		"사용자",                   // Hangul
		"пользователь",          // Cyrillic
		"مستخدم",                // Arabic, right to left
		"😀",                     // astral plane: a surrogate pair in JS and Java
		"👩‍👩‍👧‍👦",               // emoji joined by zero-width joiners
		"🇩🇪",                    // regional indicators
		"a\u0308\u0301",         // stacked combining marks
		"\ufeffbom",             // byte order mark
		"\u00a0nbsp",            // no-break space
		"\U0010ffff",            // the last code point
		"\ufffd",                // what a lone surrogate becomes in UTF-8
		"mixed-ASCII-ünï-コード-😀", // mixed
	)
	add("empty-salt", "", "42", "u-1001", "", "café")
	add("empty-key", ContractSalt, "")
	add("empty-key", "s", "")
	add("non-ascii-salt", "迁移-2026", "42", "u-1001")
	add("long-salt", strings.Repeat("salt-", 50), "42")
	add("long-key", ContractSalt,
		strings.Repeat("k", 31), strings.Repeat("k", 32), strings.Repeat("k", 33),
		strings.Repeat("0123456789abcdef", 64),  // 1 KiB
		strings.Repeat("0123456789abcdef", 640), // 10 KiB
		strings.Repeat("é", 512),                // 1 KiB of two-byte runes
		strings.Repeat("日本語", 100)+"😀",          // 904 bytes
	)
	add("ipv4", ContractSalt, "0.0.0.0", "127.0.0.1", "10.0.0.1", "192.0.2.1", "198.51.100.255", "255.255.255.255")
	add("ipv6", ContractSalt, "::", "::1", "2001:db8::", "2001:db8::1:0:0:1", "2001:db8:0:1::1",
		"fe80::1%eth0", "::ffff:1.2.3.4", "1.2.3.4", "::102:304", "64:ff9b::c000:221",
		"2001:db8:85a3::8a2e:370:7334", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	return out
}

// edgeVectors finds, by brute force over keys "edge-N", a key on each side of the
// thresholds of some percents, and keys in the first and last bucket.
func edgeVectors() []EdgeVector {
	var out []EdgeVector
	for _, p := range []float64{0, 0.01, 0.1, 1, 25, 33.33, 50, 99.99, 100} {
		t := Threshold(p)
		for _, b := range []int{t - 1, t} {
			if b < 0 || b >= Buckets {
				continue
			}
			k := keyInBucket(ContractSalt, b)
			out = append(out, EdgeVector{Salt: ContractSalt, Key: k, Bucket: b, Percent: p, Threshold: t, To: b < t})
		}
	}
	return out
}

// keyInBucket returns the first key "edge-N" whose bucket under salt is b. With 10,000
// buckets, the search takes some 10,000 hashes on average.
func keyInBucket(salt string, b int) string {
	for n := 0; ; n++ {
		k := "edge-" + strconv.Itoa(n)
		if Bucket(salt, k) == b {
			return k
		}
	}
}

func ipVectors() []IPVector {
	inputs := []string{
		"203.0.113.7", "2001:db8::1", "2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0001",
		"2001:db8:0:0:1:0:0:1", "2001:db8:0:1:0:0:0:1", "2001:db8:1:2:3:4:5:0", "0:0:0:0:0:0:0:0",
		"::", "::1", "1::", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "::ffff:1.2.3.4", "::FFFF:102:304",
		"0:0:0:0:0:ffff:0102:0304", "::1.2.3.4", "64:ff9b::192.0.2.33", "1:2:3:4:5:6:1.2.3.4",
		"fe80::1%eth0", "FE80::A%Eth0", "fe80::1%25", "::ffff:1.2.3.4%eth0",
		// Not addresses.
		"", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "256.1.1.1", "1.2.3.4%eth0", "fe80::1%",
		"[2001:db8::1]", "2001:db8::1:", ":2001:db8::1", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "::g",
		"1.2.3.4:80", " 1.2.3.4", "1.2.3.4 ", "localhost", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8",
		"1:2:3:4:5:6:7:1.2.3.4", "::ffff:01.2.3.4", "%eth0", "1.2.3.-4", "１.２.３.４", "::1.2.3",
	}
	// Generated spellings of random addresses: the vectors cover more than a person
	// would think to write. A fixed seed keeps the document stable.
	rng := rand.New(rand.NewPCG(2026, 1))
	for range 60 {
		inputs = append(inputs, randomIPSpelling(rng))
	}
	out := make([]IPVector, len(inputs))
	for i, in := range inputs {
		out[i] = IPVector{Input: in, Key: IPKey(in)}
	}
	return out
}

// randomIPSpelling returns a random address in a random spelling: IPv4, IPv6 (with
// or without "::", upper or lower case, leading zeros), IPv4-mapped or embedded, with
// a zone; now and then mangled into a string that is not an address. The vectors and
// the cross-checks against the SDKs use it.
func randomIPSpelling(rng *rand.Rand) string {
	var s string
	switch rng.IntN(5) {
	case 0:
		s = netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}).String()
	case 1:
		s = spellV6(rng, randomV6(rng), false)
	case 2:
		var a [16]byte
		a[10], a[11] = 0xff, 0xff
		for i := 12; i < 16; i++ {
			a[i] = byte(rng.IntN(256))
		}
		s = spellV6(rng, a, rng.IntN(2) == 0)
	case 3:
		s = spellV6(rng, randomV6(rng), true)
	default:
		s = spellV6(rng, randomV6(rng), false) + "%" + []string{"eth0", "en0", "1", "Wi-Fi"}[rng.IntN(4)]
	}
	if rng.IntN(6) == 0 {
		s = mangle(rng, s)
	}
	return s
}

// randomV6 favours zero groups, so that "::" has runs to compress.
func randomV6(rng *rand.Rand) [16]byte {
	var a [16]byte
	for g := 0; g < 8; g++ {
		if rng.IntN(3) == 0 {
			continue
		}
		v := rng.IntN(0x10000)
		if rng.IntN(2) == 0 {
			v = rng.IntN(0x100)
		}
		a[2*g], a[2*g+1] = byte(v>>8), byte(v)
	}
	return a
}

// spellV6 writes a as eight groups, compressing a random zero run and padding or
// upper-casing groups at random; with v4 set, the last 32 bits as dotted decimal.
func spellV6(rng *rand.Rand, a [16]byte, v4 bool) string {
	n := 8
	if v4 {
		n = 6
	}
	groups := make([]string, n)
	for g := range n {
		v := uint16(a[2*g])<<8 | uint16(a[2*g+1])
		s := strconv.FormatUint(uint64(v), 16)
		if rng.IntN(4) == 0 {
			s = fmt.Sprintf("%04x", v)
		}
		if rng.IntN(4) == 0 {
			s = strings.ToUpper(s)
		}
		groups[g] = s
	}
	// Compress a random run of zero groups (not necessarily the longest).
	start, end := -1, -1
	if rng.IntN(4) != 0 {
		for tries := 0; tries < 4 && start < 0; tries++ {
			i := rng.IntN(n)
			if v := uint16(a[2*i])<<8 | uint16(a[2*i+1]); v != 0 {
				continue
			}
			j := i
			for j < n && a[2*j] == 0 && a[2*j+1] == 0 {
				j++
			}
			start, end = i, j
		}
	}
	var s string
	if start < 0 {
		s = strings.Join(groups, ":")
	} else {
		s = strings.Join(groups[:start], ":") + "::" + strings.Join(groups[end:], ":")
	}
	if v4 {
		tail := netip.AddrFrom4([4]byte{a[12], a[13], a[14], a[15]}).String()
		if strings.HasSuffix(s, "::") {
			s += tail
		} else {
			s += ":" + tail
		}
	}
	return s
}

// mangle makes a near miss: a character dropped, doubled or replaced.
func mangle(rng *rand.Rand, s string) string {
	if s == "" {
		return ":"
	}
	i := rng.IntN(len(s))
	switch rng.IntN(3) {
	case 0:
		return s[:i] + s[i+1:]
	case 1:
		return s[:i] + s[i:i+1] + s[i:]
	}
	return s[:i] + string(":.%g0"[rng.IntN(5)]) + s[i+1:]
}

func hex64(h uint64) string { return fmt.Sprintf("%016x", h) }

func seededSum64(seed uint64, s string) uint64 {
	d := xxhash.NewWithSeed(seed)
	d.WriteString(s) //nolint:errcheck // never fails
	return d.Sum64()
}
