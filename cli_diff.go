package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"

	"github.com/shiftgate/shiftgate/proxy/admin"
	"github.com/shiftgate/shiftgate/proxy/mirror"
)

// cmdDiff prints what the mirrors compared: per route and field, how often the mirror
// region's answer differed from the one the client got, against how often two
// answers of the old region differ (noise).
func cmdDiff(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("diff", stderr)
	route := fs.String("route", "", "only this route")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	client := adminFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: shiftgate diff [-route R] [-json] [-admin URL]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	c, err := client()
	if err != nil {
		fmt.Fprintln(stderr, "shiftgate diff:", err)
		return 2
	}
	path := "/v1/diff"
	if *route != "" {
		path += "?route=" + url.QueryEscape(*route)
	}
	var snap mirror.Snapshot
	if err := c.Do("GET", path, nil, &snap); err != nil {
		fmt.Fprintln(stderr, "shiftgate diff:", err)
		return 1
	}
	if *asJSON {
		b, _ := json.MarshalIndent(snap, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	admin.WriteDiff(stdout, snap)
	return 0
}
