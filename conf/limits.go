package conf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Bounds on what Parse accepts, so that a hostile or broken file is refused in
// milliseconds instead of growing the process: a YAML "billion laughs" of a kilobyte
// names a billion nodes through nested aliases, and a file is otherwise read whole.
const (
	// MaxFileBytes is the largest config file read. A config with a thousand routes
	// and force lists of tens of thousands of keys fits; parsing a file this size
	// costs about 100 MB at worst (a YAML node takes some 200 bytes; a 4 MiB list of
	// one-digit numbers took 450 MB), so the bound is also what one edit may cost.
	MaxFileBytes = 1 << 20
	// MaxNodes bounds the YAML nodes of a file counted with every alias expanded as
	// many times as it is used: what decoding and the key index would visit.
	MaxNodes = 1 << 18
)

// ReadFile reads a config file of at most MaxFileBytes. A larger file is refused
// without being read further.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: err.Error()}}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, Errors{{File: path, Msg: err.Error()}}
	}
	if len(data) > MaxFileBytes {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("file is larger than %d bytes (1 MiB): refused unread", MaxFileBytes)}}
	}
	return data, nil
}

// errTooManyNodes ends the count once the bound is crossed.
var errTooManyNodes = errors.New("too many nodes")

// nodeCounter counts the nodes of a YAML tree with aliases expanded, without
// expanding them: the expanded size of each anchored node is computed once and
// reused, so a bomb costs time in the number of nodes written, not expanded.
type nodeCounter struct {
	memo  map[*yaml.Node]int64
	limit int64
	total int64
	// at describes the alias (or node) whose expansion crossed the bound.
	at   *yaml.Node
	path []string
	// active holds the nodes whose size is being computed: one met again is inside
	// itself (an alias within its own anchor), which would expand without end.
	active    map[*yaml.Node]bool
	recursive bool
}

// size returns the expanded node count of n, saturating just above the limit.
func (c *nodeCounter) size(n *yaml.Node) int64 {
	if n == nil {
		return 0
	}
	if v, ok := c.memo[n]; ok {
		return v
	}
	if c.active[n] {
		c.recursive = true
		return c.limit + 1
	}
	c.active[n] = true
	defer delete(c.active, n)
	var sz int64 = 1
	if n.Kind == yaml.AliasNode {
		sz = c.size(n.Alias)
	} else {
		for _, ch := range n.Content {
			sz += c.size(ch)
			if sz > c.limit {
				sz = c.limit + 1
				break
			}
		}
	}
	c.memo[n] = sz
	return sz
}

// walk adds the nodes under n in document order and stops at the first node whose
// expansion crosses the limit, remembering it and its key path.
func (c *nodeCounter) walk(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		c.total += c.size(n)
		if c.total > c.limit {
			c.at = n
			return errTooManyNodes
		}
		return nil
	}
	c.total++
	if c.total > c.limit {
		c.at = n
		return errTooManyNodes
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.total++ // the key
			c.path = append(c.path, n.Content[i].Value)
			if err := c.walk(n.Content[i+1]); err != nil {
				return err
			}
			c.path = c.path[:len(c.path)-1]
		}
	default:
		for i, ch := range n.Content {
			if n.Kind == yaml.SequenceNode {
				c.path = append(c.path, "["+strconv.Itoa(i)+"]")
			}
			if err := c.walk(ch); err != nil {
				return err
			}
			if n.Kind == yaml.SequenceNode {
				c.path = c.path[:len(c.path)-1]
			}
		}
	}
	return nil
}

func (c *nodeCounter) keyPath() string {
	var b strings.Builder
	for _, p := range c.path {
		if b.Len() > 0 && !strings.HasPrefix(p, "[") {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// checkNodeCount refuses a document that, with its aliases expanded, has more than
// limit nodes, naming the line and key path of the alias that crossed it.
func checkNodeCount(file string, root *yaml.Node, limit int64) *Error {
	c := &nodeCounter{memo: map[*yaml.Node]int64{}, active: map[*yaml.Node]bool{}, limit: limit}
	if c.walk(root) == nil {
		return nil
	}
	e := &Error{File: file, Line: c.at.Line, Path: c.keyPath()}
	switch {
	case c.recursive:
		e.Msg = fmt.Sprintf("alias *%s is inside the node it names (a recursive alias): it would expand without end; refused", c.at.Value)
	case c.at.Kind == yaml.AliasNode:
		e.Msg = fmt.Sprintf("alias *%s expands past %d YAML nodes: refused (nested aliases, a \"billion laughs\")", c.at.Value, limit)
	default:
		e.Msg = fmt.Sprintf("more than %d YAML nodes: refused", limit)
	}
	return e
}
