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
