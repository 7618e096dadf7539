package breaker

import (
	"testing"
	"time"
)

func TestDoAllocs(t *testing.T) {
	for _, o := range []Outcome{Success, Failure, Excluded} {
		// MinRequests is out of reach: the breaker stays closed.
		b := New(Settings{MinRequests: 1 << 30}, nil)
		n := 0
		allocs := testing.AllocsPerRun(1000, func() {
			b.Do(func() Outcome { n++; return o })
		})
		if allocs != 0 || n == 0 {
			t.Errorf("Do (%v): %v allocs per run (ran %d times), want 0", o, allocs, n)
		}
	}

	open := New(Settings{MinRequests: 1, OpenFor: time.Hour}, nil)
	open.Do(func() Outcome { return Failure })
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := open.Do(func() Outcome { return Success }); err != ErrOpen {
			t.Fatalf("Do on an open breaker: %v, want ErrOpen", err)
		}
	})
	if allocs != 0 {
		t.Errorf("Do (open): %v allocs per run, want 0", allocs)
	}

	if allocs := testing.AllocsPerRun(1000, func() { open.ClassifyStatus(503) }); allocs != 0 {
		t.Errorf("ClassifyStatus: %v allocs per run, want 0", allocs)
	}
}

func BenchmarkDo(b *testing.B) {
	br := New(Settings{MinRequests: 1 << 30}, nil)
	status := 200
	b.ReportAllocs()
	for b.Loop() {
		br.Do(func() Outcome { return br.ClassifyStatus(status) })
	}
}

func BenchmarkDoParallel(b *testing.B) {
	br := New(Settings{MinRequests: 1 << 30}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		status := 200
		for pb.Next() {
			br.Do(func() Outcome { return br.ClassifyStatus(status) })
		}
	})
}

func BenchmarkDoOpen(b *testing.B) {
	br := New(Settings{MinRequests: 1, OpenFor: time.Hour}, nil)
	br.Do(func() Outcome { return Failure })
	b.ReportAllocs()
	for b.Loop() {
		br.Do(func() Outcome { return Success })
	}
}

func BenchmarkClassifyStatus(b *testing.B) {
	br := New(Settings{}, nil)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		br.ClassifyStatus(200 + i%400)
	}
}
