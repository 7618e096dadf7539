package breaker

import (
	"math"
	"testing"
	"time"
)

func TestSettingsEqual(t *testing.T) {
	explicit := Settings{
		MinRequests: 20, FailureRatio: 0.5, Window: 10 * time.Second, OpenFor: 5 * time.Second,
		HalfOpenProbes: 3, FailureStatuses: mustStatusSet([2]int{500, 599}),
	}
	for _, tc := range []struct {
		name string
		a, b Settings
		want bool
	}{
		{"zero and zero", Settings{}, Settings{}, true},
		{"zero and explicit defaults", Settings{}, explicit, true},
		{"invalid ratio is the default", Settings{FailureRatio: math.NaN()}, Settings{}, true},
		{"min requests", Settings{}, Settings{MinRequests: 21}, false},
		{"ratio", Settings{}, Settings{FailureRatio: 0.6}, false},
		{"window", Settings{}, Settings{Window: time.Minute}, false},
		{"open for", Settings{}, Settings{OpenFor: time.Second}, false},
		{"probes", Settings{}, Settings{HalfOpenProbes: 1}, false},
		{"statuses", Settings{}, Settings{FailureStatuses: mustStatusSet([2]int{500, 500})}, false},
		{"statuses in another order", Settings{FailureStatuses: mustStatusSet([2]int{503, 503}, [2]int{502, 502})},
			Settings{FailureStatuses: mustStatusSet([2]int{502, 502}, [2]int{503, 503})}, true},
	} {
		if got := tc.a.Equal(tc.b); got != tc.want {
			t.Errorf("%s: Equal = %v, want %v", tc.name, got, tc.want)
		}
		if got := tc.b.Equal(tc.a); got != tc.want {
			t.Errorf("%s: Equal (swapped) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	for _, tc := range []struct {
		s       Settings
		wantErr bool
	}{
		{Settings{}, false},
		{Settings{FailureRatio: 1, Window: time.Second, OpenFor: time.Second}, false},
		{Settings{FailureRatio: 1.5}, true},
		{Settings{FailureRatio: -0.1}, true},
		{Settings{FailureRatio: math.NaN()}, true},
		{Settings{Window: -time.Second}, true},
		{Settings{OpenFor: -time.Second}, true},
	} {
		if err := tc.s.Validate(); (err != nil) != tc.wantErr {
			t.Errorf("%+v: Validate() = %v, want error %v", tc.s, err, tc.wantErr)
		}
	}
}

func TestBucketPeriod(t *testing.T) {
	for _, tc := range []struct{ window, want time.Duration }{
		{10 * time.Second, time.Second},
		{15 * time.Second, 1500 * time.Millisecond},
		{5, 5}, // too short to split: one bucket
	} {
		if got := bucketPeriod(tc.window); got != tc.want {
			t.Errorf("bucketPeriod(%v) = %v, want %v", tc.window, got, tc.want)
		}
	}
}
