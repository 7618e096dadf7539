package wire

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestCompileStripNames(t *testing.T) {
	for _, tc := range []struct {
		names   []string
		wantErr string
		wantLen int
	}{
		{nil, "", 0},
		{[]string{"X-Internal-User"}, "", 1},
		{[]string{"X-Internal-User", "x_internal_user", "X-INTERNAL-USER"}, "", 1},
		{[]string{"X-Debug", "X-Region-Hint"}, "", 2},
		{[]string{"X Bad"}, "want a token", 0},
		{[]string{""}, "want a token", 0},
		{[]string{strings.Repeat("x", 64)}, "want a token", 0},
		{[]string{"Content_Length"}, "frames the request", 0},
		{[]string{"host"}, "frames the request", 0},
		{[]string{"Transfer-Encoding"}, "frames the request", 0},
	} {
		s, err := CompileStripNames(tc.names)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.names, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.names, err)
			continue
		}
		if s.Len() != tc.wantLen {
			t.Errorf("%q: %d names, want %d", tc.names, s.Len(), tc.wantLen)
		}
	}
}

func TestStripNamesHas(t *testing.T) {
	s, err := CompileStripNames([]string{"X-Internal-User", "x_debug"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		k    string
		want bool
	}{
		{"X-Internal-User", true},
		{"x-internal-user", true},
		{"X_INTERNAL_USER", true},
		{"x_Internal-user", true},
		{"X-Debug", true},
		{"x_debug", true},
		{"X-Debugger", false},
		{"X-Internal-Use", false},
		{"X-Internal-Users", false},
		{"Host", false},
		{"", false},
		{strings.Repeat("x", 200), false},
	} {
		if got := s.Has([]byte(tc.k)); got != tc.want {
			t.Errorf("Has(%q) = %v, want %v", tc.k, got, tc.want)
		}
	}
	var none *StripNames
	if none.Has([]byte("X-Debug")) {
		t.Error("nil StripNames has a name")
	}
}

// TestStripRequestHeadersNamed: every spelling and duplicate of a named field goes,
// everything else stays, and the hop-by-hop rules still apply.
func TestStripRequestHeadersNamed(t *testing.T) {
	s, err := CompileStripNames([]string{"X-Internal-User", "X-Debug"})
	if err != nil {
		t.Fatal(err)
	}
	h := parseHead(t, "GET / HTTP/1.1\r\nHost: a\r\nX-Internal-User: admin\r\nx-internal-user: root\r\n"+
		"X_Internal_User: root\r\nX-DEBUG: 1\r\nx_debug: 1\r\nKeep-Alive: 5\r\nX-Kept: yes\r\nX-Debugger: stays\r\n\r\n")
	StripRequestHeadersNamed(h, s)
	for k := range h.All() {
		if FoldEqual(k, "x-internal-user") || FoldEqual(k, "x-debug") || FoldEqual(k, "keep-alive") {
			t.Errorf("%s survived:\n%s", k, h.Header())
		}
	}
	if string(h.Peek("X-Kept")) != "yes" || string(h.Peek("X-Debugger")) != "stays" {
		t.Errorf("an unnamed field went:\n%s", h.Header())
	}
	// A head built in code takes the field iterator.
	var built fasthttp.RequestHeader
	built.Set("X_Internal_User", "root")
	built.Set("X-Kept", "yes")
	StripRequestHeadersNamed(&built, s)
	if len(built.Peek("X_Internal_User")) != 0 || string(built.Peek("X-Kept")) != "yes" {
		t.Errorf("built head:\n%s", built.Header())
	}
}

// TestStripNamesAllocs keeps the per-request strip with configured names free of
// allocations, both on a clean head and on one that carries the names.
func TestStripNamesAllocs(t *testing.T) {
	s, err := CompileStripNames([]string{"X-Internal-User", "X-Debug", "X-Region-Hint"})
	if err != nil {
		t.Fatal(err)
	}
	clean := parseHead(t, browserHead)
	if n := testing.AllocsPerRun(100, func() { StripRequestHeadersNamed(clean, s) }); n != 0 {
		t.Errorf("clean head: %v allocations per request, want 0", n)
	}
	tmpl := parseHead(t, strings.Replace(browserHead, "\r\n\r\n", "\r\nX_Internal_User: root\r\nx-debug: 1\r\n\r\n", 1))
	var h fasthttp.RequestHeader
	tmpl.CopyTo(&h) // warm the header's buffers
	if n := testing.AllocsPerRun(100, func() {
		tmpl.CopyTo(&h)
		StripRequestHeadersNamed(&h, s)
	}); n != 0 {
		t.Errorf("head with named fields: %v allocations per request, want 0", n)
	}
}

func BenchmarkStripRequestHeadersNamed(b *testing.B) {
	s, err := CompileStripNames([]string{"X-Internal-User", "X-Debug", "X-Region-Hint"})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("clean", func(b *testing.B) {
		h := parseHead(b, browserHead)
		b.ReportAllocs()
		for b.Loop() {
			StripRequestHeadersNamed(h, s)
		}
	})
	b.Run("copy+strip named", func(b *testing.B) {
		tmpl := parseHead(b, strings.Replace(browserHead, "\r\n\r\n", "\r\nX_Internal_User: root\r\nx-debug: 1\r\n\r\n", 1))
		var h fasthttp.RequestHeader
		b.ReportAllocs()
		for b.Loop() {
			tmpl.CopyTo(&h)
			StripRequestHeadersNamed(&h, s)
		}
	})
}

// FuzzStripNamesHas: Has agrees with the fold of the names, for any input.
func FuzzStripNamesHas(f *testing.F) {
	f.Add("X-Internal-User", "x_internal_user")
	f.Add("x-debug", "X-DEBUG")
	f.Add("a", "b")
	f.Fuzz(func(t *testing.T, name, k string) {
		s, err := CompileStripNames([]string{name})
		if err != nil {
			return
		}
		fold := func(v string) string { return strings.ReplaceAll(strings.ToLower(v), "_", "-") }
		want := len(k) == len(name) && fold(k) == fold(name) && isTokenString(k)
		if got := s.Has([]byte(k)); got != want && isTokenString(k) {
			t.Errorf("Has(%q) with %q = %v, want %v", k, name, got, want)
		}
	})
}
