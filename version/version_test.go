package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	i := Get()
	if i.Version == "" || i.Commit == "" || i.GoVersion != runtime.Version() {
		t.Fatalf("Get() = %+v", i)
	}
	if s := i.String(); !strings.HasPrefix(s, "shiftgate "+i.Version+" (commit ") || !strings.Contains(s, runtime.Version()) {
		t.Errorf("String() = %q", s)
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   Info
		want string
	}{
		{Info{Version: "v1.2.3", Commit: "0123456789abcdef", GoVersion: "go1.26.1"}, "shiftgate v1.2.3 (commit 0123456789ab, go1.26.1)"},
		{Info{Version: "devel", Commit: "unknown", GoVersion: "go1.26.1"}, "shiftgate devel (commit unknown, go1.26.1)"},
		{Info{Version: "devel", Commit: "abc", Modified: true, GoVersion: "go1.26.1"}, "shiftgate devel (commit abc, modified, go1.26.1)"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.in, got, tc.want)
		}
	}
}
