// Package loadtest drives HTTP/1.1 load at a shiftgate gateway (or any loopback HTTP
// server) and measures what came back: throughput, errors by kind, the region that
// served each request, and latency percentiles.
//
// The generator runs in two modes. In the closed loop, each of Conns keep-alive
// connections is a goroutine sending request after request. In the open loop (Rate > 0)
// requests have intended send times spaced 1/Rate apart, and latency is measured from
// the intended time rather than the actual send, so a server that stalls is charged for
// every request that should have been sent during the stall (the "coordinated omission"
// correction). Each request carries a user id drawn from Users ids so that a gateway's
// per-user routing is exercised.
//
// The per-request path allocates nothing: every worker owns its Request, Response,
// histogram and counters, and they are merged only when the run ends.
//
// The package also runs the side-by-side bench (shiftgate against nginx and HAProxy on
// the same cores; see bench/README.md) and the fixed-body backend the bench uses.
package loadtest
