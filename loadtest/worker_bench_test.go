package loadtest

import (
	"testing"
	"time"
)

// BenchmarkRequest measures one closed-loop request over loopback to a fasthttp
// stand-in in the same process: the generator's cost plus the stand-in's.
func BenchmarkRequest(b *testing.B) {
	w, done := warmWorker(b, 1000)
	defer done()
	b.ReportAllocs()
	for b.Loop() {
		w.prepare()
		w.send(time.Now())
	}
	if w.failed.Load() != 0 {
		b.Fatalf("%d failed requests", w.failed.Load())
	}
}

// BenchmarkRecord measures the bookkeeping of one answered request without the
// network: histogram, region count, status class.
func BenchmarkRecord(b *testing.B) {
	w, done := warmWorker(b, 1000)
	defer done()
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		_ = w.hist.RecordValue(time.Since(start).Microseconds() & 0xffff)
		w.countRegion(w.resp.Header.Peek(w.regionHeader))
		classifyStatus(w.resp.StatusCode())
	}
}
