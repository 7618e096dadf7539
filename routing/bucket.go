package routing

import "github.com/cespare/xxhash/v2"

// Buckets is the number of buckets users are hashed into: a split has 0.01 % steps.
const Buckets = 10000

// Bucket returns the public, stable bucket of key under salt:
// xxhash64(salt + "\x00" + key) mod 10000. Clients, SDKs and other services compute
// the same value to make the same decision as the gateway.
func Bucket(salt, key string) int {
	s := newSeed(salt)
	return s.bucket([]byte(key))
}

// Threshold returns how many buckets (0..10000) go to the target region at percent
// given in basis points, i.e. round(percent × 100); a bucket b moves iff b < threshold.
func Threshold(bp int) int { return bp }

// seed is the hash state after salt + "\x00", computed once per route when a table is
// compiled, so a request only hashes its key.
type seed struct{ d xxhash.Digest }

func newSeed(salt string) seed {
	var s seed
	s.d.Reset()
	s.d.WriteString(salt) //nolint:errcheck // never fails
	s.d.Write([]byte{0})  //nolint:errcheck
	return s
}

// bucket hashes key on a copy of the seeded state; it does not allocate.
func (s *seed) bucket(key []byte) int {
	d := s.d
	d.Write(key) //nolint:errcheck // never fails
	return int(d.Sum64() % Buckets)
}
