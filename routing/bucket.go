package routing

import "github.com/cespare/xxhash/v2"

// Buckets is the number of buckets users are hashed into: a split has 0.01 % steps.
const Buckets = 10000

// Bucket returns the public, stable bucket of key under salt:
// xxhash64(salt + "\x00" + key) mod 10000. Clients, SDKs and other services compute
// the same value to make the same decision as the gateway.
func Bucket(salt, key string) int {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(salt) //nolint:errcheck // never fails
	d.Write([]byte{0})  //nolint:errcheck
	d.WriteString(key)  //nolint:errcheck
	return int(d.Sum64() % Buckets)
}

// seed is salt + "\x00", prepared once per route when a table is compiled, plus the
// hash state after it for long keys.
type seed struct {
	prefix []byte
	d      xxhash.Digest
}

func newSeed(salt string) seed {
	s := seed{prefix: append([]byte(salt), 0)}
	s.d.Reset()
	s.d.Write(s.prefix) //nolint:errcheck // never fails
	return s
}

// shortInput bounds salt + key hashed in one call from a stack buffer: a one-shot
// xxhash.Sum64 is several times cheaper than copying and finishing a Digest.
const shortInput = 192

// bucket hashes salt + "\x00" + key; it does not allocate.
func (s *seed) bucket(key []byte) int {
	if len(s.prefix)+len(key) <= shortInput {
		var buf [shortInput]byte
		n := copy(buf[:], s.prefix)
		n += copy(buf[n:], key)
		return int(xxhash.Sum64(buf[:n]) % Buckets)
	}
	d := s.d
	d.Write(key) //nolint:errcheck // never fails
	return int(d.Sum64() % Buckets)
}
