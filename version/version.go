// Package version says which shiftgate is running: its version, the commit it was
// built from and the Go release that built it. Everything comes from the build
// information Go stamps into the binary, read once; a release build may set Version
// with -ldflags "-X github.com/shiftgate/shiftgate/version.Version=v1.2.3".
package version

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Version, when set at link time, is the release name; empty means the module version
// from the build information ("devel" for a build from a source tree without one).
var Version string

// Info describes one build. The zero value is not meaningful; use Get.
type Info struct {
	// Version is the release (v1.2.3), a pseudo-version, or "devel".
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from, "unknown" when the build
	// did not record one (go test, go run of a file list); Modified is set when the
	// tree had uncommitted changes.
	Commit   string `json:"commit"`
	Modified bool   `json:"modified,omitempty"`
	// GoVersion is the Go release that built the binary (go1.26.1).
	GoVersion string `json:"go_version"`
}

// Get returns the running binary's build. It is safe for concurrent use and cheap
// after the first call.
func Get() Info { return get() }

var get = sync.OnceValue(func() Info {
	info := Info{Version: Version, Commit: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if info.Version == "" {
			info.Version = "devel"
		}
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	if info.Version == "" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" || info.Version == "(devel)" {
		info.Version = "devel"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
})

// String is one line for people: "shiftgate v1.2.3 (commit 0123abcd, go1.26.1)".
func (i Info) String() string {
	commit := i.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if i.Modified {
		commit += ", modified"
	}
	return "shiftgate " + i.Version + " (commit " + commit + ", " + i.GoVersion + ")"
}
