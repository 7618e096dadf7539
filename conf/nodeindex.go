package conf

import (
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// nodeIndex maps key paths (routes[0].match.path_prefix) to the YAML nodes that hold
// their values, so validation can name the line of any value it refuses.
type nodeIndex struct {
	byPath map[string]*yaml.Node
}

func indexNodes(root *yaml.Node) *nodeIndex {
	ix := &nodeIndex{byPath: map[string]*yaml.Node{}}
	if root != nil && root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		ix.walk("", root.Content[0])
	}
	return ix
}

func (ix *nodeIndex) walk(path string, n *yaml.Node) {
	ix.byPath[path] = n
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			ix.walk(join(path, n.Content[i].Value), n.Content[i+1])
			ix.byPath[join(path, n.Content[i].Value)+"#key"] = n.Content[i]
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ix.walk(path+"["+strconv.Itoa(i)+"]", c)
		}
	case yaml.AliasNode:
		if n.Alias != nil {
			ix.walk(path, n.Alias)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// line returns the line of the value at path, or of its nearest ancestor present in
// the file (a missing key is reported at the mapping that lacks it).
func (ix *nodeIndex) line(path string) int {
	for {
		if n, ok := ix.byPath[path]; ok {
			return n.Line
		}
		if path == "" {
			return 0
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			path = ""
		} else {
			path = path[:i]
		}
	}
}

// pathAt returns the most specific key path whose value starts on line, for errors
// that only know a line (the YAML decoder's type errors).
func (ix *nodeIndex) pathAt(line int) string {
	best := ""
	for p, n := range ix.byPath {
		if n.Line == line && !strings.HasSuffix(p, "#key") && len(p) > len(best) {
			best = p
		}
	}
	return best
}

// unknownKeys walks the document against the Go type it decodes into and reports every
// mapping key that has no field, with the keys that would have been accepted.
func unknownKeys(ix *nodeIndex, file string, path string, n *yaml.Node, t reflect.Type) Errors {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	var errs Errors
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		if _, custom := reflect.New(t).Interface().(yaml.Unmarshaler); custom {
			return nil
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			fields[tag] = f.Type
			names = append(names, tag)
		}
		sort.Strings(names)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			ft, ok := fields[k]
			if !ok {
				errs = append(errs, &Error{File: file, Line: n.Content[i].Line, Path: join(path, k),
					Msg: "unknown key (known here: " + strings.Join(names, ", ") + ")"})
				continue
			}
			errs = append(errs, unknownKeys(ix, file, join(path, k), n.Content[i+1], ft)...)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, unknownKeys(ix, file, join(path, n.Content[i].Value), n.Content[i+1], t.Elem())...)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			errs = append(errs, unknownKeys(ix, file, path+"["+strconv.Itoa(i)+"]", c, t.Elem())...)
		}
	}
	return errs
}
