package mirror

import (
	"errors"
	"strconv"
	"strings"
)

// Field paths name a value inside a JSON answer the way people write them: `title`,
// `meta.ts`, `items[3].title`, and `["a.b"]` for a key that is not a plain word. The
// root value itself is `$`. Fields that are not JSON start with a colon, which a
// rendered JSON key never does (such keys are quoted): `:status`, `:header:NAME`,
// `:body`.

// Names of the fields that are not JSON.
const (
	fieldStatus = ":status"
	fieldHeader = ":header:"
	fieldBody   = ":body"
	fieldOther  = ":other"
	fieldRoot   = "$"
)

// plainKey reports whether k can be written bare in a path.
func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c >= 0x80:
		default:
			return false
		}
	}
	return true
}

// appendKey appends object key k to path p.
func appendKey(p []byte, k string) []byte {
	if plainKey(k) {
		if len(p) > 0 {
			p = append(p, '.')
		}
		return append(p, k...)
	}
	p = append(p, '[')
	p = strconv.AppendQuote(p, k)
	return append(p, ']')
}

// appendIndex appends array index i to the concrete path p and [*] to the field key f.
func appendIndex(p, f []byte, i int) ([]byte, []byte) {
	p = append(p, '[')
	p = strconv.AppendInt(p, int64(i), 10)
	p = append(p, ']')
	return p, append(f, "[*]"...)
}

// parseRule turns an ignore path as configured into the form paths are rendered in:
// a leading `$` and `.` go; brackets must hold an index, `*` or a quoted key.
func parseRule(s string) (string, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "$")
	s = strings.TrimPrefix(s, ".")
	if s == "" {
		return "", errEmptyRule
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			end, err := bracketEnd(s, i)
			if err != nil {
				return "", err
			}
			i = end
		case ']':
			return "", errors.New("unbalanced ]")
		case '.':
			if i+1 == len(s) || s[i+1] == '.' || s[i+1] == '[' {
				return "", errors.New("empty key")
			}
		}
	}
	return s, nil
}

// bracketEnd returns the index of the ] closing the bracket at s[i].
func bracketEnd(s string, i int) (int, error) {
	j := i + 1
	if j < len(s) && s[j] == '"' {
		// A quoted key: find the closing quote, skipping escapes.
		for j++; j < len(s) && s[j] != '"'; j++ {
			if s[j] == '\\' {
				j++
			}
		}
		if j >= len(s) {
			return 0, errors.New("unterminated quoted key")
		}
		if _, err := strconv.Unquote(s[i+1 : j+1]); err != nil {
			return 0, errors.New("bad quoted key")
		}
		j++
	} else if j < len(s) && s[j] == '*' {
		j++
	} else {
		start := j
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == start {
			return 0, errors.New("want an index, * or a quoted key in brackets")
		}
	}
	if j >= len(s) || s[j] != ']' {
		return 0, errors.New("unbalanced [")
	}
	return j, nil
}

// matchRule reports whether the concrete path p is the one rule names, where [*] in
// the rule matches any index.
func matchRule(rule string, p []byte) bool {
	i, j := 0, 0
	// Both sides advance together while equal, so one quote state serves both; inside
	// a quoted key "[*]" is literal.
	quoted, escaped := false, false
	for i < len(rule) && j < len(p) {
		if !quoted && rule[i] == '[' && strings.HasPrefix(rule[i:], "[*]") && p[j] == '[' && j+1 < len(p) && p[j+1] >= '0' && p[j+1] <= '9' {
			i += 3
			for j++; j < len(p) && p[j] != ']'; j++ {
			}
			j++
			continue
		}
		if rule[i] != p[j] {
			return false
		}
		switch {
		case escaped:
			escaped = false
		case quoted && rule[i] == '\\':
			escaped = true
		case rule[i] == '"':
			quoted = !quoted
		}
		i++
		j++
	}
	return i == len(rule) && j == len(p)
}
