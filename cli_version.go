package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/shiftgate/shiftgate/version"
)

// cmdVersion prints the binary's version, commit and Go release.
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", stderr)
	asJSON := fs.Bool("json", false, "print one JSON object: version, commit, modified, go_version")
	if code, ok := parseFlags(fs, args, 0, 0); !ok {
		return code
	}
	v := version.Get()
	if *asJSON {
		b, _ := json.Marshal(v)
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	fmt.Fprintln(stdout, v.String())
	return 0
}
