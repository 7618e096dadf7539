package clientcfg

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// gatewayPath is the path the gateway routes for a request line's target p; ok is
// false for a target fasthttp refuses (control characters).
func gatewayPath(p string) (string, bool) {
	var u fasthttp.URI
	if err := u.Parse([]byte("gw"), []byte(p)); err != nil {
		return "", false
	}
	return string(u.Path()), true
}

func TestNormalizePath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"},
		{"/api/feed", "/api/feed"},
		{"//api/feed/1", "/api/feed/1"},
		{"/api//feed///x", "/api/feed/x"},
		{"/api/x/../feed", "/api/feed"},
		{"/./api/./feed", "/api/feed"},
		{"/api/%66eed", "/api/feed"},
		{"/api/feed/%2e%2e/%2e%2e/other", "/other"},
		{"/a/..", "/"},
		{"/a/b/..", "/a/"},
		{"/a/.", "/a/"},
		{"/../../a", "/a"},
		{"/%zz/a%2", "/%zz/a%2"},
		{"/a+b%20c", "/a+b c"},
		{"api/feed", "/api/feed"},
	} {
		if got := normalizePath(tc.in); got != tc.want {
			t.Errorf("normalizePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if g, ok := gatewayPath(tc.in); strings.HasPrefix(tc.in, "/") && (!ok || g != tc.want) {
			t.Errorf("the gateway reads %q as %q (%v), the table says %q", tc.in, g, ok, tc.want)
		}
	}
}

func TestNormalizePathAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { normalizePath("/api/feed/home") }); n != 0 {
		t.Fatalf("a normal path: %v allocations, want 0", n)
	}
}

// FuzzNormalizePathAsGateway: for any path a request line can carry, the clients'
// normalisation is the gateway's (fasthttp's).
func FuzzNormalizePathAsGateway(f *testing.F) {
	for _, p := range []string{"/", "//a", "/a/../b", "/%2e%2e/x", "/a/./b/..", "/%", "/%2", "/.%2e/", "/a//..//b"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# \t\r\n\x00") {
			return
		}
		want, ok := gatewayPath(p)
		if !ok {
			return
		}
		if got := normalizePath(p); got != want {
			t.Fatalf("normalizePath(%q) = %q, the gateway's %q", p, got, want)
		}
	})
}
