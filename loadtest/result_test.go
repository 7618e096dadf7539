package loadtest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sampleResult() Result {
	h := newHistogram()
	for _, us := range []int64{100, 200, 300, 1000, 50_000} {
		h.RecordValue(us)
	}
	return Result{
		URL: "http://127.0.0.1:8080/api/feed", Mode: ModeOpen, Conns: 64, Rate: 5000,
		Elapsed: 2 * time.Second,
		Warmup:  time.Second, WarmupRequests: 7, WarmupErrors: 1,
		Requests: 10, Successes: 5, Errors: 5,
		ErrorKinds: map[string]int64{"timeout": 2, "status_5xx": 3},
		Regions:    map[string]int64{"idc": 6, "cloud": 2},
		RPS:        5, Latency: latencyOf(h), Histogram: h,
	}
}

func TestResultJSONRoundTrip(t *testing.T) {
	r := sampleResult()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	// Scripts read these keys.
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"url", "mode", "conns", "rate", "elapsed_s", "requests", "successes",
		"errors", "error_kinds", "regions", "rps", "latency_ms", "warmup_s", "warmup_requests", "warmup_errors"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON %s lacks key %q", b, k)
		}
	}
	// 50 000 µs at 3 significant digits is reported as the top of its bucket.
	if got, _ := raw["latency_ms"].(map[string]any)["max"].(float64); got < 49.9 || got > 50.1 {
		t.Errorf("latency_ms.max = %v, want about 50", got)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	r.Histogram = nil
	if back.Requests != r.Requests || back.Errors != r.Errors || back.Mode != r.Mode ||
		back.Elapsed != r.Elapsed || back.Regions["idc"] != 6 || back.ErrorKinds["status_5xx"] != 3 ||
		back.Warmup != r.Warmup || back.WarmupRequests != 7 || back.WarmupErrors != 1 {
		t.Errorf("round trip: got %+v, want %+v", back, r)
	}
	if d := back.Latency.P99 - r.Latency.P99; d < -time.Microsecond || d > time.Microsecond {
		t.Errorf("p99 round trip %v -> %v", r.Latency.P99, back.Latency.P99)
	}
}

func TestResultJSONEmptyMapsAreObjects(t *testing.T) {
	b, err := json.Marshal(Result{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"error_kinds":{}`) || !strings.Contains(string(b), `"regions":{}`) {
		t.Errorf("JSON %s: want empty objects, not null", b)
	}
}

func TestResultWriteText(t *testing.T) {
	var b strings.Builder
	if err := sampleResult().WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"open loop, 5000 req/s target, 64 conns",
		"warm-up   1s before the measured part, not counted below: 7 requests, 1 errors",
		"requests  10  (5.0 req/s)  ok 5  errors 5",
		"errors    status_5xx 3 timeout 2",
		"regions   cloud 2 (25.0%) idc 6 (75.0%)",
		"p50 300µs",
		"max 50",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}

	none := Result{Requests: 3, Errors: 3, ErrorKinds: map[string]int64{"connect_refused": 3}, Histogram: newHistogram()}
	b.Reset()
	none.WriteText(&b)
	if !strings.Contains(b.String(), "latency   (no answers)") || strings.Contains(b.String(), "warm-up") {
		t.Errorf("no answers: got\n%s", b.String())
	}
}

func TestFmtDur(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0µs"}, {999 * time.Microsecond, "999µs"}, {time.Millisecond, "1ms"},
		{1234 * time.Microsecond, "1.23ms"}, {250 * time.Millisecond, "250ms"}, {1500 * time.Millisecond, "1.5s"},
	} {
		if got := fmtDur(tc.d); got != tc.want {
			t.Errorf("fmtDur(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
