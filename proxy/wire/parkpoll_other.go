//go:build !linux

package wire

// Elsewhere than Linux a parked connection waits in a goroutine of its own.

type parkPoll struct{}

func (p *Parking) watchLocked(*lineConn) bool { return false }

func (p *Parking) watchedLocked() (all, detached int) { return 0, 0 }

func (p *Parking) unwatchAllLocked() {}
