package conf

import (
	"fmt"
	"strings"
)

// Error is one problem in a config file, located by line and key path.
type Error struct {
	File string // as given to Parse; "" for bytes without a file
	Line int    // 1-based; 0 when unknown
	Path string // key path such as routes[0].write_percent; "" for the whole file
	Msg  string
}

// Error prints file:line: path: msg, the form editors and CI logs link to.
func (e *Error) Error() string {
	var b strings.Builder
	file := e.File
	if file == "" {
		file = "config"
	}
	b.WriteString(file)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order. Parse returns it as its
// error when anything is wrong.
type Errors []*Error

// Error prints one problem a line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// unique drops repeats of the same problem at the same place: a value every route
// inherits (split.from, split.keys) is checked once per route, and one mistake is
// reported once.
func (es Errors) unique() Errors {
	type at struct {
		line      int
		path, msg string
	}
	seen := make(map[at]bool, len(es))
	out := es[:0]
	for _, e := range es {
		k := at{e.Line, e.Path, e.Msg}
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}
