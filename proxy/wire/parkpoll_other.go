//go:build !linux

package wire

// Elsewhere than Linux a parked connection waits in a goroutine of its own.

type parkPoll struct{}

func (p *Parking) watch(*lineConn) bool { return false }

func (p *Parking) unwatchAllLocked() {}
