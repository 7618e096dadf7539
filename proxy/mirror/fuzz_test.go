package mirror

import (
	"slices"
	"testing"
)

// FuzzCompareBodies feeds answer bodies from outside (any bytes, JSON or not) to the
// diff. It must never panic, an answer never differs from itself, and the fields in
// which a differs from b are those in which b differs from a.
func FuzzCompareBodies(f *testing.F) {
	for _, s := range [][2]string{
		{`{"a":1}`, `{"a":2}`},
		{`{"items":[{"id":1},{"id":2}]}`, `{"items":[{"id":1}]}`},
		{`[1,"2",null,true,{"x":[]}]`, `[1,2,null,false,{"x":{}}]`},
		{`{"a.b":{"[*]":1}}`, `{"a.b":{"[*]":2}}`},
		{`1e400`, `1e401`},
		{`"\ud800"`, `"x"`},
		{"not json", `{"a":1}`},
		{`{"a":1} trailing`, `{"a":1}`},
		{"", "[]"},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	r := compileRules(&Route{IgnorePaths: []string{"meta.ts", "items[*].id", `["a.b"]`}})
	fields := func(ds []Difference) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Path)
		}
		return out
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if ds := compareAnswers(&answer{body: a}, &answer{body: a}, r, true, nil); len(ds) != 0 {
			t.Fatalf("an answer differs from itself: %+v", ds)
		}
		ab := fields(compareAnswers(&answer{body: a}, &answer{body: b}, r, true, nil))
		ba := fields(compareAnswers(&answer{body: b}, &answer{body: a}, r, true, nil))
		if !slices.Equal(ab, ba) {
			t.Fatalf("asymmetric: a→b %q, b→a %q", ab, ba)
		}
		// A cut answer is compared by prefix, never parsed.
		compareAnswers(&answer{body: a, truncated: true}, &answer{body: b}, r, true, nil)
	})
}
