package proxy

import (
	"strings"
	"testing"
)

func TestRequestID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		keep bool
	}{
		{"abc", true}, {"A-b_c.9", true}, {"0123456789abcdef0123456789abcdef", true},
		{"7f3a2c4e-1d2b-4c5d-9e8f-0a1b2c3d4e5f", true}, {strings.Repeat("x", 128), true},
		{"", false}, {strings.Repeat("x", 129), false}, {"has space", false}, {"semi;colon", false},
		{`quote"`, false}, {"new\nline", false}, {"ütf8", false}, {"a/b", false}, {"a:b", false},
	} {
		got := string(appendRequestID(nil, []byte(tc.in)))
		if kept := got == tc.in; kept != tc.keep {
			t.Errorf("%q: got %q, kept %v, want kept %v", tc.in, got, kept, tc.keep)
		}
		if !validRequestID([]byte(got)) {
			t.Errorf("%q: made id %q is not valid itself", tc.in, got)
		}
	}
	a, b := string(appendRequestID(nil, nil)), string(appendRequestID(nil, nil))
	if a == b || !strings.HasPrefix(a, requestIDPrefix+"-") || len(requestIDPrefix) != 12 {
		t.Errorf("made ids %q, %q", a, b)
	}
}

func TestRequestIDAllocs(t *testing.T) {
	var buf [maxRequestID]byte
	client := []byte("7f3a2c4e-1d2b-4c5d-9e8f-0a1b2c3d4e5f")
	if n := testing.AllocsPerRun(1000, func() {
		appendRequestID(buf[:0], client)
		appendRequestID(buf[:0], nil)
	}); n != 0 {
		t.Errorf("%.1f allocations per id, want 0", n)
	}
}

func BenchmarkRequestID(b *testing.B) {
	var buf [maxRequestID]byte
	client := []byte("7f3a2c4e-1d2b-4c5d-9e8f-0a1b2c3d4e5f")
	b.ReportAllocs()
	for b.Loop() {
		appendRequestID(buf[:0], client)
		appendRequestID(buf[:0], nil)
	}
}

func FuzzRequestID(f *testing.F) {
	f.Add([]byte("abc"))
	f.Add([]byte("bad id"))
	f.Add([]byte(strings.Repeat("z", 200)))
	f.Fuzz(func(t *testing.T, in []byte) {
		got := appendRequestID(nil, in)
		if !validRequestID(got) {
			t.Fatalf("%q gave invalid id %q", in, got)
		}
		if validRequestID(in) != (string(got) == string(in)) {
			t.Fatalf("%q: kept %v but valid %v", in, string(got) == string(in), validRequestID(in))
		}
	})
}
