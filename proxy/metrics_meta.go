package proxy

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/shiftgate/shiftgate/version"
)

// The metrics library can print "# TYPE" lines (metrics.ExposeMetadata) but its
// "# HELP" lines carry no text, which `promtool check metrics` refuses, and series
// written by hand (histograms, breaker states, cache sizes) get none. So /metrics is
// written without the library's metadata and each family is given its help text and
// type here, its lines gathered together as the text format requires. A family
// missing from this table is a test failure (TestMetricsHaveHelp).

// metricMeta is one family's help text and type.
type metricMeta struct{ typ, help string }

var metricHelp = map[string]metricMeta{
	// Emergency levers.
	"shiftgate_shed_total":                       {"counter", "Requests refused by a cap or a byte budget (503 with Retry-After), by route and reason (site, route, budget)."},
	"shiftgate_budget_fallbacks_total":           {"counter", "Reads a byte budget answered from the cached fallback instead of crossing, by route."},
	"shiftgate_budget_fallback_misses_total":     {"counter", "Reads a byte budget sent to the cached fallback that had no entry, and were refused, by route."},
	"shiftgate_budget_paced_total":               {"counter", "Requests a byte budget held back before crossing (budget_mode pace), by route."},
	"shiftgate_limit_share":                      {"gauge", "This instance's share of fleet-wide request caps (1 without a fleet)."},
	"shiftgate_budget_share":                     {"gauge", "This instance's share of its region's byte budgets (1 without a fleet)."},
	"shiftgate_limit_enforced_rps":               {"gauge", "The request cap this instance enforces now, by scope (site or route) and route."},
	"shiftgate_cross_region_bytes_total":         {"counter", "Bytes to and from upstreams in another region than self_region, by region pair."},
	"shiftgate_budget_enforced_bytes_per_second": {"gauge", "The byte budget this instance enforces now, by region pair."},
	"shiftgate_budget_level":                     {"gauge", "A region pair's budget bucket in seconds of its rate: 1 is full, below 0 in debt."},
	"shiftgate_fleet_instances":                  {"gauge", "Instances of the fleet as this one last counted them, by state: live (this one included), left (gone without a clean stop in the last 24h: they may still serve what they last applied)."},
	"shiftgate_overrides_unpersisted":            {"gauge", "1 while an override is in force in memory that the store could not write (state_dir full or read-only)."},
	// The client-side switch.
	"shiftgate_client_config_requests_total": {"counter", "Answers of the client config endpoint, by status (200, 304)."},
	"shiftgate_client_decisions_total":       {"counter", "Requests from apps that said their own decision (X-Shift-Client), by route and outcome (agree, disagree, stale)."},
	"shiftgate_cross_region_requests_total":  {"counter", "Requests that entered this region's gateway and were sent to another region, by route and region pair."},
	// Mirroring.
	"shiftgate_mirror_requests_total": {"counter", "Mirrored requests by route and outcome (offered, dropped, limited, skipped, compared, same, differing, errors, truncated)."},
	"shiftgate_mirror_queue_length":   {"gauge", "Copies waiting for a mirror worker."},
	// TLS.
	"shiftgate_tls_certificate_expiry_seconds":      {"gauge", "End of a served certificate's validity as a Unix time, by name, file and use."},
	"shiftgate_tls_handshakes_total":                {"counter", "TLS handshakes completed on the traffic listener."},
	"shiftgate_tls_handshake_errors_total":          {"counter", "TLS handshakes that failed on the traffic listener, by reason."},
	"shiftgate_tls_certificate_reloads_total":       {"counter", "Certificate files reloaded after a change."},
	"shiftgate_tls_certificate_reload_errors_total": {"counter", "Certificate reloads refused (unreadable, key mismatch, expired); the old certificate keeps serving."},
	"shiftgate_upstream_tls_errors_total":           {"counter", "TLS handshakes with upstreams that failed, by region."},
	"shiftgate_tls_ca_bundle_reloads_total":         {"counter", "Upstream CA bundles (regions.R.tls.ca_file) reloaded after a change."},
	"shiftgate_tls_ca_bundle_reload_errors_total":   {"counter", "Upstream CA bundle reloads refused (unreadable, a block that does not parse, cut short, all expired); the old bundle stays in use."},
	"shiftgate_tls_ca_bundle_expiry_seconds":        {"gauge", "Earliest end of validity among an upstream CA bundle's certificates as a Unix time, by file."},
	// The gateway's own.
	"shiftgate_build_info":                  {"gauge", "Always 1; the labels say which shiftgate is running (version, commit, go_version)."},
	"shiftgate_requests_total":              {"counter", "Requests sent to a region, by route, region and class of the answer's status (error: no answer)."},
	"shiftgate_upstream_duration_seconds":   {"histogram", "Time from sending a request to a region to its answer's head, by route and region."},
	"shiftgate_decisions_total":             {"counter", "Routing decisions by route and the key source that decided (none: no key found)."},
	"shiftgate_failovers_total":             {"counter", "Requests sent to a route's other region after the decided one failed."},
	"shiftgate_abandoned_reads_total":       {"counter", "Reads cut while waiting on a region whose breaker opened, or as a half-open probe past the slow-call threshold, by route and region (breaker.slow_call.abandon_reads)."},
	"shiftgate_fallbacks_total":             {"counter", "Requests answered by a fallback instead of a region, by route and kind (cache, static, lua)."},
	"shiftgate_fallback_misses_total":       {"counter", "Requests no region answered and no fallback of the route could answer."},
	"shiftgate_upstream_errors_total":       {"counter", "Requests to a region that got no usable answer (refused, timed out, broken), by route."},
	"shiftgate_breaker_state":               {"gauge", "Circuit breaker state by route and region: 0 closed, 1 half-open, 2 open."},
	"shiftgate_breaker_transitions_total":   {"counter", "Circuit breaker state changes by route, region, from and to."},
	"shiftgate_lua_errors_total":            {"counter", "Lua fallback scripts that failed or ran over their time, by route."},
	"shiftgate_fallback_cache_entries":      {"gauge", "Responses held in a route's fallback cache."},
	"shiftgate_fallback_cache_bytes":        {"gauge", "Bytes held in a route's fallback cache."},
	"shiftgate_config_reloads_total":        {"counter", "Config files put into service after the first."},
	"shiftgate_config_reload_errors_total":  {"counter", "Config files refused (did not read, parse or validate, or the reshuffle guard refused them); the last good config kept serving."},
	"shiftgate_config_version":              {"gauge", "Config version in service: it moves when a config file is put into service, not on split or rollback changes."},
	"shiftgate_rollback_on":                 {"gauge", "1 while the rollback switch sends everything to each route's from region."},
	"shiftgate_tunnels_open":                {"gauge", "Upgraded (WebSocket) connections open."},
	"shiftgate_config_restart_pending":      {"gauge", "Config keys the file sets differently from the running process that only a restart applies (listeners, client timeouts and limits); status lists them."},
	"shiftgate_client_connections_parked":   {"gauge", "Idle keep-alive client connections parked: waiting for their next request without a goroutine or buffers of their own."},
	"shiftgate_client_connections_detached": {"gauge", "Parked client connections whose sockets were detached from Go's net.Conn and poller (under 300 bytes of heap each): parked for 10 s, or parked while more than 1,000 connections held a net.Conn."},
	"shiftgate_bad_requests_total":          {"counter", "Client requests refused as malformed or unsafe to forward (400, 414, 431 and the like)."},
	"shiftgate_connections_refused_total":   {"counter", "Client connections refused with 503 because limits.max_conns were open."},
	"shiftgate_access_log_dropped_total":    {"counter", "Access log lines dropped because the writer fell behind."},
	"shiftgate_override_store_up":           {"gauge", "1 while the override store (state_dir file or etcd) answers."},
	"shiftgate_override_keys_undecodable":   {"gauge", "Override keys in the fleet store whose value does not decode; each keeps the value served before (see status undecodable_keys)."},

	// Go runtime (metrics.WriteProcessMetrics).
	"go_sched_latencies_seconds":          {"histogram", "Time goroutines spent runnable before they ran."},
	"go_mutex_wait_seconds_total":         {"counter", "Time goroutines spent blocked on sync.Mutex and sync.RWMutex."},
	"go_gc_mark_assist_cpu_seconds_total": {"counter", "CPU time goroutines spent helping the garbage collector mark."},
	"go_gc_cpu_seconds_total":             {"counter", "CPU time spent by the garbage collector."},
	"go_gc_pauses_seconds":                {"histogram", "Stop-the-world pauses of the garbage collector."},
	"go_scavenge_cpu_seconds_total":       {"counter", "CPU time spent returning memory to the operating system."},
	"go_memlimit_bytes":                   {"gauge", "The Go memory limit (GOMEMLIMIT)."},
	"go_memstats_alloc_bytes":             {"gauge", "Bytes of allocated heap objects."},
	"go_memstats_alloc_bytes_total":       {"counter", "Bytes allocated for heap objects since start."},
	"go_memstats_buck_hash_sys_bytes":     {"gauge", "Bytes of memory in profiling bucket hash tables."},
	"go_memstats_frees_total":             {"counter", "Heap objects freed since start."},
	"go_memstats_gc_cpu_fraction":         {"gauge", "Fraction of the available CPU used by the garbage collector since start."},
	"go_memstats_gc_sys_bytes":            {"gauge", "Bytes of memory in garbage collection metadata."},
	"go_memstats_heap_alloc_bytes":        {"gauge", "Bytes of allocated heap objects."},
	"go_memstats_heap_idle_bytes":         {"gauge", "Bytes in idle (unused) heap spans."},
	"go_memstats_heap_inuse_bytes":        {"gauge", "Bytes in in-use heap spans."},
	"go_memstats_heap_objects":            {"gauge", "Allocated heap objects."},
	"go_memstats_heap_released_bytes":     {"gauge", "Bytes of physical memory returned to the operating system."},
	"go_memstats_heap_sys_bytes":          {"gauge", "Bytes of heap memory obtained from the operating system."},
	"go_memstats_last_gc_time_seconds":    {"gauge", "Time the last garbage collection finished, in seconds since 1970."},
	"go_memstats_lookups_total":           {"counter", "Pointer lookups by the runtime."},
	"go_memstats_mallocs_total":           {"counter", "Heap objects allocated since start."},
	"go_memstats_mcache_inuse_bytes":      {"gauge", "Bytes of allocated mcache structures."},
	"go_memstats_mcache_sys_bytes":        {"gauge", "Bytes of memory obtained from the operating system for mcache structures."},
	"go_memstats_mspan_inuse_bytes":       {"gauge", "Bytes of allocated mspan structures."},
	"go_memstats_mspan_sys_bytes":         {"gauge", "Bytes of memory obtained from the operating system for mspan structures."},
	"go_memstats_next_gc_bytes":           {"gauge", "Heap size at which the next garbage collection starts."},
	"go_memstats_other_sys_bytes":         {"gauge", "Bytes of memory in other runtime allocations."},
	"go_memstats_stack_inuse_bytes":       {"gauge", "Bytes in stack spans."},
	"go_memstats_stack_sys_bytes":         {"gauge", "Bytes of stack memory obtained from the operating system."},
	"go_memstats_sys_bytes":               {"gauge", "Bytes of memory obtained from the operating system in all."},
	"go_gc_duration_seconds":              {"summary", "Stop-the-world pauses of the garbage collector."},
	"go_gomaxprocs":                       {"gauge", "GOMAXPROCS: the CPUs that may run Go code at once."},
	"go_goroutines":                       {"gauge", "Goroutines that exist."},
	"go_threads":                          {"gauge", "Operating system threads created."},
	"go_info":                             {"gauge", "Always 1; the label says which Go release built the binary."},
	"go_info_ext":                         {"gauge", "Always 1; the labels say the compiler, architecture and system."},

	// The process (metrics.WriteProcessMetrics, Linux).
	"process_cpu_seconds_system_total":              {"counter", "CPU time spent in the kernel for the process."},
	"process_cpu_seconds_total":                     {"counter", "CPU time spent by the process."},
	"process_cpu_seconds_user_total":                {"counter", "CPU time spent in user mode by the process."},
	"process_major_pagefaults_total":                {"counter", "Page faults that needed a disk read."},
	"process_minor_pagefaults_total":                {"counter", "Page faults served without a disk read."},
	"process_num_threads":                           {"gauge", "Operating system threads of the process."},
	"process_resident_memory_bytes":                 {"gauge", "Resident memory of the process."},
	"process_start_time_seconds":                    {"gauge", "Start time of the process, in seconds since 1970."},
	"process_virtual_memory_bytes":                  {"gauge", "Virtual memory of the process."},
	"process_virtual_memory_peak_bytes":             {"gauge", "Peak virtual memory of the process."},
	"process_resident_memory_peak_bytes":            {"gauge", "Peak resident memory of the process."},
	"process_resident_memory_anon_bytes":            {"gauge", "Resident anonymous memory of the process."},
	"process_resident_memory_file_bytes":            {"gauge", "Resident file-backed memory of the process."},
	"process_resident_memory_shared_bytes":          {"gauge", "Resident shared memory of the process."},
	"process_open_fds":                              {"gauge", "Open file descriptors of the process."},
	"process_max_fds":                               {"gauge", "Limit on the open file descriptors of the process."},
	"process_io_read_bytes_total":                   {"counter", "Bytes the process read (read syscalls, any source)."},
	"process_io_written_bytes_total":                {"counter", "Bytes the process wrote (write syscalls, any target)."},
	"process_io_read_syscalls_total":                {"counter", "Read system calls of the process."},
	"process_io_write_syscalls_total":               {"counter", "Write system calls of the process."},
	"process_io_storage_read_bytes_total":           {"counter", "Bytes the process read from storage."},
	"process_io_storage_written_bytes_total":        {"counter", "Bytes the process wrote to storage."},
	"process_pressure_cpu_waiting_seconds_total":    {"counter", "Time some of the process's tasks waited for a CPU (cgroup pressure)."},
	"process_pressure_cpu_stalled_seconds_total":    {"counter", "Time all of the process's tasks waited for a CPU (cgroup pressure)."},
	"process_pressure_io_waiting_seconds_total":     {"counter", "Time some of the process's tasks waited for I/O (cgroup pressure)."},
	"process_pressure_io_stalled_seconds_total":     {"counter", "Time all of the process's tasks waited for I/O (cgroup pressure)."},
	"process_pressure_memory_waiting_seconds_total": {"counter", "Time some of the process's tasks waited for memory (cgroup pressure)."},
	"process_pressure_memory_stalled_seconds_total": {"counter", "Time all of the process's tasks waited for memory (cgroup pressure)."},
}

// droppedFamilies are library series left out of /metrics: their names break the
// Prometheus conventions promtool checks (a counter without _total, a _count suffix
// on a plain series), and go_gomaxprocs and the CPU time counters say the same.
var droppedFamilies = map[string]bool{
	"go_cgo_calls_count": true,
	"go_cpu_count":       true,
	"go_gc_forced_count": true,
}

// writeBuildInfo writes the shiftgate_build_info series.
func writeBuildInfo(w io.Writer) {
	v := version.Get()
	fmt.Fprintf(w, "shiftgate_build_info{version=%q,commit=%q,go_version=%q} 1\n", v.Version, v.Commit, v.GoVersion)
}

// familyOf returns the family a sample line belongs to: its name, less the suffix a
// histogram or summary adds to its parts.
func familyOf(line []byte) string {
	end := bytes.IndexAny(line, "{ ")
	if end < 0 {
		end = len(line)
	}
	name := string(line[:end])
	if _, ok := metricHelp[name]; ok {
		return name
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if m, ok := metricHelp[base]; ok && (m.typ == "histogram" || m.typ == "summary") {
				return base
			}
		}
	}
	return name
}

// writeExposition writes the samples in text (any order, without metadata) to w,
// each family's lines together under its "# HELP" and "# TYPE" lines, families in the
// order they first appear.
func writeExposition(w io.Writer, text []byte) {
	var order []string
	lines := map[string][][]byte{}
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		fam := familyOf(line)
		if droppedFamilies[fam] {
			continue
		}
		if _, seen := lines[fam]; !seen {
			order = append(order, fam)
		}
		lines[fam] = append(lines[fam], line)
	}
	var bw bytes.Buffer
	for _, fam := range order {
		m, ok := metricHelp[fam]
		if !ok {
			m = metricMeta{"untyped", "No description."}
		}
		fmt.Fprintf(&bw, "# HELP %s %s\n# TYPE %s %s\n", fam, m.help, fam, m.typ)
		for _, l := range lines[fam] {
			bw.Write(l)
			bw.WriteByte('\n')
		}
	}
	w.Write(bw.Bytes()) //nolint:errcheck // a scraper that went away
}

// processMetrics writes the Go runtime and process series, file descriptors
// included (a proxy runs out of them first), without the library's metadata
// (writeExposition adds it).
func processMetrics(w io.Writer) {
	metrics.WriteProcessMetrics(w)
	metrics.WriteFDMetrics(w)
}
