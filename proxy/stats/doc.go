// Package stats is the one implementation of the gateway's per-cohort statistics,
// shared by the migration dashboard, the ramp plans' gates and the mirror's latency
// comparison.
//
// Requests are sorted into cohorts: Moved (the user's bucket is below the split, To
// answered), Stayed (From answered), Failover and Fallback. For each route, cohort and
// upstream region a Route keeps requests, errors, bytes and a latency histogram, and
// for each cohort a history of 1 s slots (10 min) rolled up into 10 s blocks (24 h).
//
// On the request path, once per finished request:
//
//	r := set.Route(routeIndex)          // by the compiled config's route index
//	r.Record(stats.Moved, regionIndex, errored, latency, bytesIn, bytesOut)
//	if r.SampleSource() {               // only Stayed, once the split left 0 %
//		r.AddSource(stats.AppendClientPrefix(buf[:0], addr))
//	}
//
// Record takes no lock and does not allocate; AddSource, one request in
// Options.TopSample, takes a short per-route lock. From the control plane:
//
//	reg := stats.NewRegistry(stats.Options{Now: clock.Now, Instance: name})
//	set, err := reg.Bind(cfg)            // per compiled config; history carries over
//	reg.Retain(set)                      // once set's config is in service
//	snap := set.Snapshot(stats.View{})   // /v1/stats; Merge(snaps...) for the fleet
//	t0 := set.Totals(i, stats.Moved)     // a ramp step starts...
//	d := set.Totals(i, stats.Moved).Since(t0) // ...and is judged with ErrorGate, LatencyGate
//
// The mirror's latency comparison uses the same machinery on a Set of its own: primary
// answers recorded as Stayed, shadow answers as Moved, judged by Compare or the gates.
//
// Histograms use a fixed log-linear grid (1 µs to 67 s; quantiles within 3.2 % from
// 32 µs up, 5 % from 10 µs), so histograms from any instance merge by adding counts.
//
// Memory per route with R regions (MemoryPerRoute computes it from the types): the
// cumulative cells take 4·R × 2976 B; the 1 s ring 602 × 840 B = 494 KiB; the 10 s ring,
// allocated when a route's first busy 10 s block rolls up, 8640 × 80 B = 675 KiB; the
// top-K 19 KiB.
// That is 1.18 MiB for an active route of two regions, 0.5 MiB for one that never saw
// traffic; Options shorten the rings.
package stats
