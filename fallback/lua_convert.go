package fallback

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

const (
	// maxScriptHeaders and maxScriptHeaderBytes bound the headers a script returns.
	maxScriptHeaders     = 64
	maxScriptHeaderBytes = 16 << 10
)

// errShape reports a script result of the wrong shape; Run wraps it in ErrScript.
func errShape(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// request builds the table a handler receives. Header names are lower-cased; the
// cached body is left out (cached.body is nil) when it is larger than maxInput.
func (st *luaState) request(req Request, maxInput int, now time.Time) *lua.LTable {
	L := st.L
	t := L.CreateTable(0, 8)
	t.RawSetString("method", lua.LString(req.Method))
	t.RawSetString("path", lua.LString(req.Path))
	t.RawSetString("query", lua.LString(req.Query))
	t.RawSetString("key", lua.LString(req.Key))
	t.RawSetString("region", lua.LString(req.Region))
	t.RawSetString("headers", st.headerTable(req.Headers))
	if e := req.Cached; e != nil {
		c := L.CreateTable(0, 5)
		c.RawSetString("status", lua.LNumber(e.Status))
		c.RawSetString("headers", st.headerTable(e.Header))
		c.RawSetString("size", lua.LNumber(len(e.Body)))
		c.RawSetString("age", lua.LNumber(now.Sub(e.Stored).Seconds()))
		if len(e.Body) <= maxInput {
			c.RawSetString("body", lua.LString(e.Body))
		}
		t.RawSetString("cached", c)
	}
	return t
}

func (st *luaState) headerTable(h [][2]string) *lua.LTable {
	t := st.L.CreateTable(0, len(h))
	for _, kv := range h {
		t.RawSetString(strings.ToLower(kv[0]), lua.LString(kv[1]))
	}
	return t
}

// response converts a handler's result, {status=..., headers={...}, body=...}, read
// with raw access only so that no metamethod runs outside the VM's control.
func response(v lua.LValue, maxOutput int) (Response, error) {
	t, ok := v.(*lua.LTable)
	if !ok {
		return Response{}, errShape("handler returned %s, want a table {status=..., headers=..., body=...}", v.Type())
	}
	var resp Response
	status, ok := t.RawGetString("status").(lua.LNumber)
	if !ok || float64(status) != math.Trunc(float64(status)) || status < 200 || status > 599 {
		return Response{}, errShape("status is %s, want an integer in 200..599", describe(t.RawGetString("status")))
	}
	resp.Status = int(status)

	switch h := t.RawGetString("headers").(type) {
	case *lua.LNilType:
	case *lua.LTable:
		var err error
		size := 0
		h.ForEach(func(k, v lua.LValue) {
			if err != nil {
				return
			}
			name, ok := k.(lua.LString)
			if !ok || !validHeaderName(string(name)) {
				err = errShape("header name %s is not a valid token", describe(k))
				return
			}
			if !isStringy(v) || !validHeaderValue(lua.LVAsString(v)) {
				err = errShape("header %q has value %s, want a string without control characters", name, describe(v))
				return
			}
			value := lua.LVAsString(v)
			size += len(name) + len(value)
			if len(resp.Headers) == maxScriptHeaders || size > maxScriptHeaderBytes {
				err = errShape("more than %d headers or %d header bytes", maxScriptHeaders, maxScriptHeaderBytes)
				return
			}
			resp.Headers = append(resp.Headers, [2]string{string(name), value})
		})
		if err != nil {
			return Response{}, err
		}
		// Table order is arbitrary; a sorted order keeps responses reproducible.
		slices.SortFunc(resp.Headers, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	default:
		return Response{}, errShape("headers is %s, want a table", describe(h))
	}

	switch b := t.RawGetString("body").(type) {
	case *lua.LNilType:
	case lua.LString, lua.LNumber:
		s := lua.LVAsString(b)
		if len(s) > maxOutput {
			return Response{}, errShape("body of %d bytes exceeds the %d-byte limit", len(s), maxOutput)
		}
		resp.Body = []byte(s)
	default:
		return Response{}, errShape("body is %s, want a string", describe(b))
	}
	return resp, nil
}

// describe names a Lua value for an error message without running metamethods.
func describe(v lua.LValue) string {
	switch v := v.(type) {
	case lua.LString:
		if len(v) > 40 {
			return fmt.Sprintf("string %q...", string(v[:40]))
		}
		return fmt.Sprintf("string %q", string(v))
	case lua.LNumber:
		return "number " + v.String()
	}
	return v.Type().String()
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isalpha(c) || isdigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s can be sent as a field value: no control
// characters but tab, so a script cannot split the response.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
