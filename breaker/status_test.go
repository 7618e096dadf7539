package breaker

import (
	"testing"
)

func TestClassifyStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ranges [][2]int
		status int
		want   Outcome
	}{
		{"default 500", nil, 500, Failure},
		{"default 503", nil, 503, Failure},
		{"default 599", nil, 599, Failure},
		{"default 200", nil, 200, Success},
		{"default 404", nil, 404, Success},
		{"default 429", nil, 429, Success},
		{"default 499", nil, 499, Success},
		{"default 600", nil, 600, Success},
		{"default 0", nil, 0, Success},
		{"default -500", nil, -500, Success},
		{"one code hit", [][2]int{{503, 503}}, 503, Failure},
		{"one code miss", [][2]int{{503, 503}}, 500, Success},
		{"code and class", [][2]int{{429, 429}, {500, 599}}, 429, Failure},
		{"code and class 502", [][2]int{{429, 429}, {500, 599}}, 502, Failure},
		{"code and class 428", [][2]int{{429, 429}, {500, 599}}, 428, Success},
		{"class 4xx leaves 5xx", [][2]int{{400, 499}}, 500, Success},
		{"lowest", [][2]int{{100, 199}}, 100, Failure},
		{"empty list is default", [][2]int{}, 502, Failure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := NewStatusSet(tc.ranges)
			if err != nil {
				t.Fatal(err)
			}
			b := New(Settings{FailureStatuses: set}, nil)
			if got := b.ClassifyStatus(tc.status); got != tc.want {
				t.Errorf("ClassifyStatus(%d) = %v, want %v", tc.status, got, tc.want)
			}
		})
	}
}

func TestNewStatusSetErrors(t *testing.T) {
	for _, r := range [][2]int{{99, 100}, {599, 600}, {0, 0}, {503, 502}, {-1, 200}} {
		if set, err := NewStatusSet([][2]int{{500, 500}, r}); err == nil {
			t.Errorf("NewStatusSet(%v) = %v, nil; want an error", r, set)
		} else if set != (StatusSet{}) {
			t.Errorf("NewStatusSet(%v) returned a non-zero set with its error", r)
		}
	}
}
