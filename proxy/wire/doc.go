// Package wire is shiftgate's HTTP/1.1 wire layer on both sides of the proxy: the
// client connection (line-aware writes, request-head hygiene, header stripping by raw
// name, streamed client bodies with idle deadlines) and the upstream side (a fasthttp
// transport with bounded waits, connections checked for stray bytes, a batching
// pipelined client, chunked framing). It imports nothing of shiftgate: what to strip
// and which timeouts apply are its callers' to say.
package wire
