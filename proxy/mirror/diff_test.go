package mirror

import (
	"iter"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// hdrs is a header source for tests, in order.
type hdrs [][2]string

func (h hdrs) All() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for _, kv := range h {
			if !yield([]byte(kv[0]), []byte(kv[1])) {
				return
			}
		}
	}
}

// diffString renders differences one per line as "field path A B".
func diffString(ds []Difference) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.Field + " " + d.Path + " " + d.A + " " + d.B)
		if d.Truncated {
			b.WriteString(" (truncated)")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestCompareBodies(t *testing.T) {
	t.Parallel()
	f := func(name, a, b string, ignore []string, want string) {
		t.Helper()
		r := compileRules(&Route{IgnorePaths: ignore})
		got := diffString(compareAnswers(&answer{status: 200, body: []byte(a)}, &answer{status: 200, body: []byte(b)}, r, true, nil))
		if got != want {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	f("equal objects, any key order", `{"a":1,"b":[1,2]}`, `{"b":[1,2],"a":1}`, nil, "")
	f("one field", `{"id":7,"title":"A"}`, `{"id":7,"title":"B"}`, nil, `title title "A" "B"`+"\n")
	f("nested path", `{"meta":{"ts":1}}`, `{"meta":{"ts":2}}`, nil, "meta.ts meta.ts 1 2\n")
	f("array index normalised in the field", `{"items":[{"t":"x"},{"t":"y"}]}`, `{"items":[{"t":"x"},{"t":"z"}]}`, nil,
		`items[*].t items[1].t "y" "z"`+"\n")
	f("missing key", `{"a":1}`, `{"a":1,"b":true}`, nil, "b b <missing> true\n")
	f("extra element", `[1]`, `[1,{"x":null}]`, nil, `[*] [1] <missing> {"x":null}`+"\n")
	f("type change", `{"a":1}`, `{"a":"1"}`, nil, `a a 1 "1"`+"\n")
	f("object against array", `{"a":{}}`, `{"a":[]}`, nil, "a a {} []\n")
	f("number spellings", `{"n":1.0,"m":1e2}`, `{"n":1,"m":100}`, nil, "")
	f("root scalar", `1`, `2`, nil, "$ $ 1 2\n")
	f("odd key quoted", `{"a.b":1}`, `{"a.b":2}`, nil, `["a.b"] ["a.b"] 1 2`+"\n")
	f("colon key cannot pose as status", `{":status":1}`, `{":status":2}`, nil, `[":status"] [":status"] 1 2`+"\n")
	f("ignore with $.", `{"meta":{"ts":1},"x":1}`, `{"meta":{"ts":2},"x":1}`, []string{"$.meta.ts"}, "")
	f("ignore a subtree", `{"meta":{"ts":1,"id":"a"}}`, `{"meta":{"ts":2,"id":"b"}}`, []string{"meta"}, "")
	f("ignore wildcard", `{"items":[{"id":1,"t":"a"},{"id":2,"t":"b"}]}`, `{"items":[{"id":3,"t":"a"},{"id":4,"t":"c"}]}`,
		[]string{"items[*].id"}, `items[*].t items[1].t "b" "c"`+"\n")
	f("ignore one index only", `{"items":[1,2]}`, `{"items":[3,4]}`, []string{"items[0]"}, "items[*] items[1] 2 4\n")
	f("ignore a missing key", `{"a":1}`, `{"a":1,"b":2}`, []string{"b"}, "")
	f("not JSON, same", "plain text", "plain text", nil, "")
	f("not JSON, differs", "plain a", "plain b", nil,
		`:body :body 7 bytes, xxh64 `+hashHex("plain a")+`: "plain a" 7 bytes, xxh64 `+hashHex("plain b")+`: "plain b"`+"\n")
	f("JSON against text", `{"a":1}`, `oops`, nil,
		`:body :body 7 bytes, xxh64 `+hashHex(`{"a":1}`)+`: "{\"a\":1}" 4 bytes, xxh64 `+hashHex("oops")+`: "oops"`+"\n")
	f("trailing data is not JSON", `{"a":1} {"a":2}`, `{"a":1} {"a":3}`, nil,
		`:body :body 15 bytes, xxh64 `+hashHex(`{"a":1} {"a":2}`)+`: "{\"a\":1} {\"a\":2}" 15 bytes, xxh64 `+hashHex(`{"a":1} {"a":3}`)+`: "{\"a\":1} {\"a\":3}"`+"\n")
	f("both empty", "", "", nil, "")
}

func hashHex(s string) string { return strconv.FormatUint(xxhash.Sum64String(s), 16) }

func TestCompareTruncated(t *testing.T) {
	t.Parallel()
	r := compileRules(&Route{})
	f := func(name string, a string, at bool, b string, bt bool, wantDiff bool) {
		t.Helper()
		ds := compareAnswers(&answer{status: 200, body: []byte(a), truncated: at}, &answer{status: 200, body: []byte(b), truncated: bt}, r, true, nil)
		if (len(ds) > 0) != wantDiff {
			t.Fatalf("%s: differences %q, want some: %v", name, diffString(ds), wantDiff)
		}
		if wantDiff && (ds[0].Field != fieldBody || !ds[0].Truncated) {
			t.Fatalf("%s: got %+v, want a truncated body difference", name, ds[0])
		}
	}
	f("same prefixes", `{"a":"xxxx`, true, `{"a":"xxxx`, true, false)
	f("different prefixes", `{"a":"xxxx`, true, `{"a":"yyyy`, true, true)
	f("cut shorter than the other's cap", `{"a":"xx`, true, `{"a":"xxxx`, true, false)
	f("a whole body shorter than the other's prefix", `{"a":"x"}`, false, `{"a":"x"}extra`, true, true)
	f("a whole body longer than the prefix, prefix equal", `abcdef`, false, `abc`, true, false)
}

func TestCompareStatusAndHeaders(t *testing.T) {
	t.Parallel()
	f := func(name string, route Route, a, b hdrs, sa, sb int, want string) {
		t.Helper()
		r := compileRules(&route)
		got := diffString(compareAnswers(&answer{status: sa, header: a}, &answer{status: sb, header: b}, r, false, nil))
		if got != want {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	json := hdrs{{"Content-Type", "application/json"}}
	f("status", Route{}, json, json, 200, 500, ":status :status 200 500\n")
	f("default headers, case-insensitive names", Route{}, json, hdrs{{"content-type", "application/json"}}, 200, 200, "")
	f("content type differs", Route{}, json, hdrs{{"content-type", "text/html"}}, 200, 200,
		":header:content-type :header:content-type application/json text/html\n")
	f("location missing", Route{}, hdrs{{"Location", "/a"}}, nil, 302, 302, ":header:location :header:location /a <missing>\n")
	f("unselected header ignored", Route{}, hdrs{{"X-Trace", "1"}}, hdrs{{"X-Trace", "2"}}, 200, 200, "")
	f("selected header", Route{CompareHeaders: []string{"x-trace"}}, hdrs{{"X-Trace", "1"}}, hdrs{{"X-Trace", "2"}}, 200, 200,
		":header:x-trace :header:x-trace 1 2\n")
	f("ignore beats compare", Route{CompareHeaders: []string{"X-Trace"}, IgnoreHeaders: []string{"X-TRACE"}},
		hdrs{{"X-Trace", "1"}}, hdrs{{"X-Trace", "2"}}, 200, 200, "")
	f("star: all but volatile and ignored", Route{CompareHeaders: []string{"*"}, IgnoreHeaders: []string{"Server"}},
		hdrs{{"Date", "x"}, {"Server", "a"}, {"X-A", "1"}, {"X-Request-Id", "r1"}, {"Set-Cookie", "s=1"}, {"Vary", "Accept"}, {"Vary", "Cookie"}},
		hdrs{{"Date", "y"}, {"Server", "b"}, {"x-a", "1"}, {"X-Request-Id", "r2"}, {"Set-Cookie", "s=2"}, {"X-B", "2"}, {"Vary", "Accept"}},
		200, 200,
		":header:vary :header:vary Accept, Cookie Accept\n:header:x-b :header:x-b <missing> 2\n")
}

func TestMaxDiffs(t *testing.T) {
	t.Parallel()
	var a, b strings.Builder
	a.WriteString("[")
	b.WriteString("[")
	for i := range 1000 {
		if i > 0 {
			a.WriteString(",")
			b.WriteString(",")
		}
		a.WriteString("1")
		b.WriteString("2")
	}
	a.WriteString("]")
	b.WriteString("]")
	r := compileRules(&Route{})
	ds := compareAnswers(&answer{body: []byte(a.String())}, &answer{body: []byte(b.String())}, r, true, nil)
	if len(ds) != defaultMaxDiffs {
		t.Fatalf("got %d differences, want the cap %d", len(ds), defaultMaxDiffs)
	}
}

func TestParseRule(t *testing.T) {
	t.Parallel()
	f := func(in, want string, wantErr bool) {
		t.Helper()
		got, err := parseRule(in)
		if (err != nil) != wantErr || got != want {
			t.Errorf("parseRule(%q) = %q, %v; want %q, error %v", in, got, err, want, wantErr)
		}
	}
	f("$.meta.ts", "meta.ts", false)
	f("meta.ts", "meta.ts", false)
	f(".meta", "meta", false)
	f("items[*].id", "items[*].id", false)
	f("items[12]", "items[12]", false)
	f(`["a.b"].c`, `["a.b"].c`, false)
	f("$[*]", "[*]", false)
	f("$", "", true)
	f("", "", true)
	f("a..b", "", true)
	f("a.", "", true)
	f("a[", "", true)
	f("a[x]", "", true)
	f("a]", "", true)
	f(`a["b]`, "", true)
	f(`a[*`, "", true)
}

func TestMatchRule(t *testing.T) {
	t.Parallel()
	f := func(rule, path string, want bool) {
		t.Helper()
		if got := matchRule(rule, []byte(path)); got != want {
			t.Errorf("matchRule(%q, %q) = %v, want %v", rule, path, got, want)
		}
	}
	f("a.b", "a.b", true)
	f("a.b", "a.bc", false)
	f("a.b", "a", false)
	f("items[*].id", "items[3].id", true)
	f("items[*].id", "items[123].id", true)
	f("items[*].id", "items[3].ids", false)
	f("items[0].id", "items[3].id", false)
	f("a[*][*]", "a[1][2]", true)
	f(`["x[*]"]`, `["x[*]"]`, true)
	f(`["x[*]"]`, `["x[1]"]`, false)
}

func TestCut(t *testing.T) {
	t.Parallel()
	f := func(in string, n int, want string) {
		t.Helper()
		if got := cut(in, n); got != want {
			t.Errorf("cut(%q, %d) = %q, want %q", in, n, got, want)
		}
	}
	f("short", 10, "short")
	f("abcdefghij", 6, "abc…")
	f("ééééé", 7, "éé…") // never splits a rune
	f("abc", 2, "…")
}
