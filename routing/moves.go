package routing

import "fmt"

// Side is one state of a route's split, as far as who goes where: the salt, the read
// split in basis points, and its two regions.
type Side struct {
	Salt     string
	BP       int
	From, To string
}

// Moves estimates the share of users (0..1) that go from the from region to the to
// region (forward) and back when a route goes from a to b, and lists up to three
// sample keys that move ("u-17 →cloud"). When only the split changes, the shares are
// exact, from the bucket space; when the salt or the to region changes, users
// reshuffle and the shares are measured over n sample keys ("u-0".."u-<n-1>").
func Moves(a, b Side, n int) (forward, back float64, samples []string) {
	if a.Salt == b.Salt && a.To == b.To {
		if b.BP > a.BP {
			forward = float64(b.BP-a.BP) / Buckets
		} else {
			back = float64(a.BP-b.BP) / Buckets
		}
		lo, hi := min(a.BP, b.BP), max(a.BP, b.BP)
		for i := 0; i < 200000 && len(samples) < 3 && lo < hi; i++ {
			k := fmt.Sprintf("u-%d", i)
			if bk := Bucket(a.Salt, k); bk >= lo && bk < hi {
				to := b.To
				if b.BP < a.BP {
					to = b.From
				}
				samples = append(samples, k+" →"+to)
			}
		}
		return forward, back, samples
	}
	var f, bk int
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("u-%d", i)
		wasTo := Bucket(a.Salt, k) < a.BP
		isTo := Bucket(b.Salt, k) < b.BP
		if a.To != b.To {
			isTo = !isTo
		}
		switch {
		case !wasTo && isTo:
			f++
			if len(samples) < 3 {
				samples = append(samples, k+" →"+b.To)
			}
		case wasTo && !isTo:
			bk++
			if len(samples) < 3 {
				samples = append(samples, k+" →"+b.From)
			}
		}
	}
	if n > 0 {
		forward, back = float64(f)/float64(n), float64(bk)/float64(n)
	}
	return forward, back, samples
}
