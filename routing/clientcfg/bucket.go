package clientcfg

import (
	"net/netip"

	"github.com/cespare/xxhash/v2"
)

// Bucket returns key's bucket under salt: xxhash64(salt + "\x00" + key) mod 10000, over
// the bytes of the strings (UTF-8 for text). It equals routing.Bucket and the SDKs'
// bucket functions; it is safe for concurrent use and does not allocate.
func Bucket(salt, key string) int {
	return int(sum64(salt, key, nil) % Buckets)
}

// Hash64 returns xxhash64(salt + "\x00" + key), the hash Bucket reduces. The vectors
// publish it so that an SDK whose bucket differs can tell a hash bug from a modulo bug.
func Hash64(salt, key string) uint64 {
	return sum64(salt, key, nil)
}

// shortInput bounds salt + key hashed in one call from a stack buffer: a one-shot
// xxhash.Sum64 is cheaper than a Digest.
const shortInput = 192

// sum64 hashes salt, a zero byte, key and keyb (one of the two is empty): strings come
// from a config and a request, bytes from an address printed into a stack buffer.
func sum64(salt, key string, keyb []byte) uint64 {
	if len(salt)+1+len(key)+len(keyb) <= shortInput {
		var buf [shortInput]byte
		n := copy(buf[:], salt)
		buf[n] = 0
		n++
		n += copy(buf[n:], key)
		n += copy(buf[n:], keyb)
		return xxhash.Sum64(buf[:n])
	}
	var d xxhash.Digest
	d.Reset()
	d.WriteString(salt) //nolint:errcheck // never fails
	d.Write([]byte{0})  //nolint:errcheck
	d.WriteString(key)  //nolint:errcheck
	d.Write(keyb)       //nolint:errcheck
	return d.Sum64()
}

// IPKey returns the key the ip source yields for an address as the gateway computes
// it: parsed by net/netip, an IPv4-mapped IPv6 address unmapped, printed by net/netip
// ("2001:DB8:0::1" → "2001:db8::1", "::ffff:1.2.3.4" → "1.2.3.4"). It returns "" for a
// string that is not an address; such an ip source is skipped.
func IPKey(s string) string {
	var buf [64]byte
	b, ok := appendIPKey(buf[:0], s)
	if !ok {
		return ""
	}
	return string(b)
}

// appendIPKey appends IPKey(s) to dst. It does not allocate for a valid address
// without a zone that fits dst's capacity.
func appendIPKey(dst []byte, s string) ([]byte, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return dst, false
	}
	return a.Unmap().AppendTo(dst), true
}
