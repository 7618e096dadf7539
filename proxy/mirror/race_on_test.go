//go:build race

package mirror

// raceEnabled: the race detector's instrumentation may allocate, so allocation counts
// are asserted without it (CI runs the Allocs tests on their own).
const raceEnabled = true
