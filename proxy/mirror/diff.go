package mirror

import (
	"bytes"
	"encoding/json"
	"io"
	"iter"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
)

// The diff engine: pure functions from two answers to the fields in which they differ.
// It runs on the mirror's workers, never on the request path, so it may allocate.

// Difference is one field in which two answers differ.
type Difference struct {
	// Field is the aggregation key: the path with array indices written [*].
	Field string
	// Path is the concrete path, indices included.
	Path string
	// A and B are the two values as JSON text (header values and bodies as strings),
	// cut at maxRender bytes; "<missing>" when one side has no such field.
	A, B string
	// Truncated says a body was compared only up to the answer cap.
	Truncated bool
}

// answer is one side of a comparison.
type answer struct {
	status int
	header headerSource // nil: no headers
	body   []byte
	// truncated: body is only the first bytes of the answer.
	truncated bool
}

// headerSource is what the diff needs of a response header; *fasthttp.ResponseHeader
// has it.
type headerSource interface {
	All() iter.Seq2[[]byte, []byte]
}

// rules are a route's compiled comparison rules. Immutable once built.
type rules struct {
	ignorePaths   []string
	headers       []string // lower-case names compared, unless allHeaders
	allHeaders    bool
	ignoreHeaders map[string]bool // lower-case
	// maxDiffs bounds the differences one comparison reports (an array shifted by
	// one element would otherwise report every element).
	maxDiffs int
}

// volatileHeaders differ between any two answers, are the proxy's own, or carry
// secrets that samples would show on the admin API: "*" skips them (naming one in
// CompareHeaders still compares it).
var volatileHeaders = map[string]bool{
	"date": true, "content-length": true, "connection": true, "keep-alive": true,
	"transfer-encoding": true, "trailer": true, "x-request-id": true,
	"x-shift-region": true, "x-shift-fallback": true, "set-cookie": true,
}

const (
	defaultMaxDiffs = 256
	maxRender       = 4 << 10
	missingValue    = "<missing>"
)

// compileRules builds the rules of r; r's ignore paths were checked by Route.check.
func compileRules(r *Route) *rules {
	c := &rules{ignoreHeaders: map[string]bool{}, maxDiffs: defaultMaxDiffs}
	for _, p := range r.IgnorePaths {
		if s, err := parseRule(p); err == nil {
			c.ignorePaths = append(c.ignorePaths, s)
		}
	}
	for _, h := range r.IgnoreHeaders {
		c.ignoreHeaders[strings.ToLower(strings.TrimSpace(h))] = true
	}
	compare := r.CompareHeaders
	if len(compare) == 0 {
		compare = defaultCompareHeaders
	}
	for _, h := range compare {
		h = strings.ToLower(strings.TrimSpace(h))
		switch {
		case h == "*":
			c.allHeaders = true
		case h != "" && !c.ignoreHeaders[h] && !slices.Contains(c.headers, h):
			c.headers = append(c.headers, h)
		}
	}
	return c
}

// differ collects the differences of one comparison.
type differ struct {
	r           *rules
	out         []Difference
	path, field []byte
}

func (d *differ) full() bool { return len(d.out) >= d.r.maxDiffs }

func (d *differ) add(path, field, a, b string, truncated bool) {
	if d.full() {
		return
	}
	d.out = append(d.out, Difference{Field: field, Path: path, A: cut(a, maxRender), B: cut(b, maxRender), Truncated: truncated})
}

// compareAnswers appends to out the fields in which a and b differ and returns it.
// bodies says whether the bodies are compared at all (the client's answer may not be
// in memory).
func compareAnswers(a, b *answer, r *rules, bodies bool, out []Difference) []Difference {
	d := differ{r: r, out: out}
	if a.status != b.status {
		d.add(fieldStatus, fieldStatus, strconv.Itoa(a.status), strconv.Itoa(b.status), false)
	}
	d.headers(a.header, b.header)
	if bodies {
		d.body(a, b)
	}
	return d.out
}

// headers compares the selected headers. Names are matched case-insensitively (the
// proxy keeps upstream spellings); repeated fields are joined with ", ".
func (d *differ) headers(a, b headerSource) {
	ha, hb := collectHeaders(a, d.r), collectHeaders(b, d.r)
	names := d.r.headers
	if d.r.allHeaders {
		names = nil
		for _, kv := range ha {
			names = append(names, kv[0])
		}
		for _, kv := range hb {
			names = append(names, kv[0])
		}
		slices.Sort(names)
		names = slices.Compact(names)
	}
	for _, n := range names {
		va, oka := lookupHeader(ha, n)
		vb, okb := lookupHeader(hb, n)
		if oka == okb && va == vb {
			continue
		}
		if !oka {
			va = missingValue
		}
		if !okb {
			vb = missingValue
		}
		d.add(fieldHeader+n, fieldHeader+n, va, vb, false)
	}
}

// collectHeaders returns the compared headers of h as lower-case name, value pairs.
func collectHeaders(h headerSource, r *rules) [][2]string {
	if h == nil {
		return nil
	}
	var out [][2]string
	for k, v := range h.All() {
		name := strings.ToLower(string(k))
		if r.ignoreHeaders[name] {
			continue
		}
		if r.allHeaders {
			if volatileHeaders[name] {
				continue
			}
		} else if !slices.Contains(r.headers, name) {
			continue
		}
		if i := slices.IndexFunc(out, func(kv [2]string) bool { return kv[0] == name }); i >= 0 {
			out[i][1] += ", " + string(v)
			continue
		}
		out = append(out, [2]string{name, string(v)})
	}
	return out
}

func lookupHeader(h [][2]string, name string) (string, bool) {
	for _, kv := range h {
		if kv[0] == name {
			return kv[1], true
		}
	}
	return "", false
}

// body compares two bodies: field by field when both are whole JSON documents, else
// by hash; a truncated body is compared up to the shorter length.
func (d *differ) body(a, b *answer) {
	if a.truncated || b.truncated {
		n := min(len(a.body), len(b.body))
		same := xxhash.Sum64(a.body[:n]) == xxhash.Sum64(b.body[:n])
		// A whole body shorter than the other side's prefix cannot be equal.
		if (!a.truncated && len(a.body) < len(b.body)) || (!b.truncated && len(b.body) < len(a.body)) {
			same = false
		}
		if !same {
			d.add(fieldBody, fieldBody, renderBody(a.body), renderBody(b.body), true)
		}
		return
	}
	va, oka := parseJSON(a.body)
	vb, okb := parseJSON(b.body)
	if oka && okb {
		d.path, d.field = d.path[:0], d.field[:0]
		d.value(va, vb)
		return
	}
	if xxhash.Sum64(a.body) != xxhash.Sum64(b.body) {
		d.add(fieldBody, fieldBody, renderBody(a.body), renderBody(b.body), false)
	}
}

// parseJSON parses b as one whole JSON document, numbers kept as written.
func parseJSON(b []byte) (any, bool) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // trailing data: not one document
	}
	return v, true
}

// value compares a and b found at d.path.
func (d *differ) value(a, b any) {
	if d.full() || d.ignored() {
		return
	}
	switch x := a.(type) {
	case map[string]any:
		if y, ok := b.(map[string]any); ok {
			d.object(x, y)
			return
		}
	case []any:
		if y, ok := b.([]any); ok {
			d.array(x, y)
			return
		}
	}
	if !scalarEqual(a, b) {
		d.addHere(renderValue(a), renderValue(b))
	}
}

func (d *differ) addHere(a, b string) {
	path, field := string(d.path), string(d.field)
	if path == "" {
		path, field = fieldRoot, fieldRoot
	}
	d.add(path, field, a, b, false)
}

func (d *differ) object(a, b map[string]any) {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	p, f := len(d.path), len(d.field)
	for _, k := range keys {
		d.path, d.field = appendKey(d.path[:p], k), appendKey(d.field[:f], k)
		va, oka := a[k]
		vb, okb := b[k]
		switch {
		case oka && okb:
			d.value(va, vb)
		case !d.ignored():
			if oka {
				d.addHere(renderValue(va), missingValue)
			} else {
				d.addHere(missingValue, renderValue(vb))
			}
		}
	}
	d.path, d.field = d.path[:p], d.field[:f]
}

func (d *differ) array(a, b []any) {
	p, f := len(d.path), len(d.field)
	for i := range max(len(a), len(b)) {
		if d.full() {
			break
		}
		d.path, d.field = appendIndex(d.path[:p], d.field[:f], i)
		switch {
		case i < len(a) && i < len(b):
			d.value(a[i], b[i])
		case d.ignored():
		case i < len(a):
			d.addHere(renderValue(a[i]), missingValue)
		default:
			d.addHere(missingValue, renderValue(b[i]))
		}
	}
	d.path, d.field = d.path[:p], d.field[:f]
}

// ignored reports whether an ignore rule names the current path.
func (d *differ) ignored() bool {
	for _, r := range d.r.ignorePaths {
		if matchRule(r, d.path) {
			return true
		}
	}
	return false
}

// scalarEqual compares two JSON values that are not both objects or both arrays.
// Numbers are equal when written alike or when they are the same float64 (1.0 and 1).
func scalarEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, errx := strconv.ParseFloat(string(x), 64)
		fy, erry := strconv.ParseFloat(string(y), 64)
		return errx == nil && erry == nil && fx == fy
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false // an object or array against something else
}

// renderValue writes v as JSON text, cut at maxRender bytes.
func renderValue(v any) string {
	if n, ok := v.(json.Number); ok {
		return string(n)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "<unrenderable>"
	}
	return cut(string(b), maxRender)
}

// renderBody describes a body that is not compared field by field: its length and
// hash, then its first bytes.
func renderBody(b []byte) string {
	s := strconv.Itoa(len(b)) + " bytes, xxh64 " + strconv.FormatUint(xxhash.Sum64(b), 16) + ": "
	return s + strconv.Quote(string(b[:min(len(b), maxRender)]))
}

// cut returns s cut to at most n bytes at a rune boundary, marked with "…" when cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	end := max(n-len(mark), 0)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + mark
}
