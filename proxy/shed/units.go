package shed

// SafeLinkFraction is the share of a link's capacity that DeriveBudget lets cross-region
// traffic plan on: half of it (the other direction or a redundant line must be able to
// carry the load alone), and of that 80 % (headroom for bursts the averages hide).
const SafeLinkFraction = 0.5 * 0.8

// DeriveBudget returns the byte budget a link can take, in bits per second like its
// arguments: link / 2 × 0.8 − used, where link is the link's capacity and used is the
// traffic already on it that the budget does not control (replication, offline
// transfers). A link already that full gets 0: no room, not a negative budget.
//
// For a 10 Gbit/s link carrying 1 Gbit/s: 10/2 × 0.8 − 1 = 3 Gbit/s, which is
// Budget{BytesPerSec: 3e9 / 8}.
func DeriveBudget(linkBitsPerSec, usedBitsPerSec float64) (bitsPerSec float64) {
	b := linkBitsPerSec*SafeLinkFraction - usedBitsPerSec
	if !(b > 0) {
		return 0
	}
	return b
}

// FleetShare is the fraction of a fleet-wide cap that one of live instances enforces:
// 1/live. Fewer than one live instance (no fleet, or a registry that lost this
// instance too) is 1: an instance never caps itself below its own share.
func FleetShare(live int) float64 {
	if live <= 1 {
		return 1
	}
	return 1 / float64(live)
}
