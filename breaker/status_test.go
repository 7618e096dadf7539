package breaker

import (
	"testing"
)

func TestClassifyStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		specs  []string
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
		{"one code hit", []string{"503"}, 503, Failure},
		{"one code miss", []string{"503"}, 500, Success},
		{"code and class", []string{"429", "5xx"}, 429, Failure},
		{"code and class 502", []string{"429", "5xx"}, 502, Failure},
		{"code and class 428", []string{"429", "5xx"}, 428, Success},
		{"class upper case", []string{"4XX"}, 400, Failure},
		{"class 4xx leaves 5xx", []string{"4xx"}, 500, Success},
		{"lowest", []string{"1xx"}, 100, Failure},
		{"empty list is default", []string{}, 502, Failure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := ParseStatuses(tc.specs)
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

func TestParseStatusesErrors(t *testing.T) {
	for _, spec := range []string{"", "5", "50", "5x", "6xx", "0xx", "xxx", "5xy", "099", "600", "1000", "+50", "-12", "abc", " 500", "5xx "} {
		if set, err := ParseStatuses([]string{"500", spec}); err == nil {
			t.Errorf("ParseStatuses(%q) = %v, nil; want an error", spec, set)
		} else if set != (StatusSet{}) {
			t.Errorf("ParseStatuses(%q) returned a non-zero set with its error", spec)
		}
	}
}

func FuzzParseStatuses(f *testing.F) {
	for _, s := range []string{"500", "5xx", "4XX", "599", "100", "6xx", "abc", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		set, err := ParseStatuses([]string{spec})
		if err != nil {
			return
		}
		// An accepted spec names at least one status, and only statuses 100..599.
		n := 0
		for code := -1000; code < 2000; code++ {
			if set.Has(code) {
				n++
				if code < 100 || code > 599 {
					t.Fatalf("%q: Has(%d) for a status out of range", spec, code)
				}
			}
		}
		if n != 1 && n != 100 {
			t.Fatalf("%q: %d statuses, want 1 (a code) or 100 (a class)", spec, n)
		}
	})
}
