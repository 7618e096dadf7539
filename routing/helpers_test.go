package routing_test

import (
	"net/netip"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
)

// examplePath is the shared example config; its comments say how it behaves.
const examplePath = "../../shared/examples/cutover.yaml"

// loadExample parses the example config. Each test loads its own copy, so no test
// shares state with another.
func loadExample(t testing.TB) *conf.Config {
	t.Helper()
	c, err := conf.LoadFile(examplePath)
	if err != nil {
		t.Fatalf("load %s: %v", examplePath, err)
	}
	return c
}

func mustParse(t testing.TB, yaml string) *conf.Config {
	t.Helper()
	c, err := conf.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse config: %v\n%s", err, yaml)
	}
	return c
}

func mustCompile(t testing.TB, c *conf.Config, splits []routing.Split, rollback bool) *routing.Table {
	t.Helper()
	tbl, err := routing.Compile(c, splits, rollback)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return tbl
}

func regionID(t testing.TB, c *conf.Config, name string) conf.RegionID {
	t.Helper()
	r, ok := c.Region(name)
	if !ok {
		t.Fatalf("no region %q", name)
	}
	return r.ID
}

func routeIndex(t testing.TB, tbl *routing.Table, name string) int32 {
	t.Helper()
	for i := 0; i < tbl.Routes(); i++ {
		if tbl.RouteName(i) == name {
			return int32(i)
		}
	}
	t.Fatalf("no route %q", name)
	return -1
}

// req is a Request over byte slices prepared in advance: unlike StaticRequest, none of
// its methods allocates, so allocation tests measure Decide alone.
type req struct {
	method  []byte
	headers [][2][]byte
	cookies [][2][]byte
	query   [][2][]byte
	xff     [][]byte
	peer    netip.Addr
}

func (r *req) Method() []byte            { return r.method }
func (r *req) Header(name string) []byte { return lookup(r.headers, name, true) }
func (r *req) Cookie(name string) []byte { return lookup(r.cookies, name, false) }
func (r *req) Query(name string) []byte  { return lookup(r.query, name, false) }
func (r *req) Peer() netip.Addr          { return r.peer }
func (r *req) ForwardedFor() [][]byte    { return r.xff }

func lookup(kv [][2][]byte, name string, fold bool) []byte {
	for _, p := range kv {
		if len(p[0]) != len(name) {
			continue
		}
		eq := true
		for i := 0; i < len(name); i++ {
			a, b := p[0][i], name[i]
			if fold {
				a, b = lowerASCII(a), lowerASCII(b)
			}
			if a != b {
				eq = false
				break
			}
		}
		if eq {
			return p[1]
		}
	}
	return nil
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// kv builds a name/value list from alternating strings.
func kv(pairs ...string) [][2][]byte {
	out := make([][2][]byte, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, [2][]byte{[]byte(pairs[i]), []byte(pairs[i+1])})
	}
	return out
}

func xff(values ...string) [][]byte {
	out := make([][]byte, len(values))
	for i, v := range values {
		out[i] = []byte(v)
	}
	return out
}

// get builds a GET from peer carrying the given headers (alternating names and values).
func get(peer string, headers ...string) *req {
	return &req{method: []byte("GET"), headers: kv(headers...), peer: netip.MustParseAddr(peer)}
}
