package fallback

import (
	"fmt"
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// This file holds the bounded replacements of the library functions that can build
// large strings in one call, where the VM's per-instruction context check cannot
// step in: each charges what it is about to build to the run's string budget
// (ScriptOptions.MaxAlloc) before building it. The `..` operator is compiled into a
// call of strConcat (see lua_compile.go) for the same reason.

// charge counts n more bytes of strings built by this run and raises a Lua error,
// ending the run, once the run's budget is spent.
func (st *luaState) charge(L *lua.LState, n int) {
	if n < 0 || n > st.maxAlloc-st.used {
		st.used = st.maxAlloc
		L.RaiseError("script exceeds its string budget of %d bytes", st.maxAlloc)
	}
	st.used += n
}

// strRep is string.rep(s, n) with its result charged before it is built.
func (st *luaState) strRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	if n > (st.maxAlloc-st.used)/len(s) {
		st.charge(L, -1) // over budget: raises
	}
	st.charge(L, n*len(s))
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}

// asciiMap returns s with f applied to every byte, as C's toupper/tolower in the C
// locale do; unlike strings.ToUpper it never changes the length.
func (st *luaState) asciiMap(L *lua.LState, f func(byte) byte) int {
	s := L.CheckString(1)
	st.charge(L, len(s))
	b := []byte(s)
	for i, c := range b {
		b[i] = f(c)
	}
	L.Push(lua.LString(b))
	return 1
}

func (st *luaState) strUpper(L *lua.LState) int {
	return st.asciiMap(L, func(c byte) byte {
		if islower(c) {
			return c - 'a' + 'A'
		}
		return c
	})
}

func (st *luaState) strLower(L *lua.LState) int {
	return st.asciiMap(L, func(c byte) byte {
		if isupper(c) {
			return c - 'A' + 'a'
		}
		return c
	})
}

func (st *luaState) strReverse(L *lua.LState) int {
	s := L.CheckString(1)
	st.charge(L, len(s))
	b := make([]byte, len(s))
	for i := range b {
		b[i] = s[len(s)-1-i]
	}
	L.Push(lua.LString(b))
	return 1
}

func (st *luaState) strChar(L *lua.LState) int {
	n := L.GetTop()
	st.charge(L, n)
	b := make([]byte, n)
	for i := range b {
		c := L.CheckInt(i + 1)
		if c < 0 || c > 255 {
			L.ArgError(i+1, "invalid value")
		}
		b[i] = byte(c)
	}
	L.Push(lua.LString(b))
	return 1
}

// maxFormatItem bounds the output of one numeric conversion with width and precision
// of at most two digits each: %.99f of 1e308 is 309 + 1 + 99 characters.
const maxFormatItem = 512

// strFormat is string.format with C Lua's limits on width and precision (two digits
// each) and its result size charged before it is built; gopher-lua's own version
// hands any width to fmt.Sprintf.
func (st *luaState) strFormat(L *lua.LState) int {
	format := L.CheckString(1)
	size, arg := len(format), 1
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		if i < len(format) && format[i] == '%' {
			continue
		}
		for i < len(format) && strings.IndexByte("-+ #0", format[i]) >= 0 {
			i++
		}
		digits := 0
		for i < len(format) && isdigit(format[i]) {
			i, digits = i+1, digits+1
		}
		if i < len(format) && format[i] == '.' {
			i++
			pdigits := 0
			for i < len(format) && isdigit(format[i]) {
				i, pdigits = i+1, pdigits+1
			}
			digits = max(digits, pdigits)
		}
		if digits > 2 {
			L.RaiseError("invalid format (width or precision too long)")
		}
		if i >= len(format) {
			L.RaiseError("%s", "invalid option '%' to 'format'")
		}
		arg++
		switch c := format[i]; c {
		case 's':
			v := L.CheckAny(arg)
			size += 99 + len(lua.LVAsString(v))
			if !lua.LVCanConvToString(v) {
				size += 64 // "table: 0x..."
			}
		case 'q':
			size += 2 + 4*len(L.CheckString(arg))
		case 'c', 'd', 'i', 'o', 'u', 'x', 'X', 'e', 'E', 'f', 'g', 'G':
			L.CheckNumber(arg)
			size += maxFormatItem
		default:
			L.RaiseError("invalid option '%%%c' to 'format'", c)
		}
	}
	st.charge(L, size)
	args := make([]any, L.GetTop()-1)
	for i := range args {
		args[i] = L.Get(i + 2)
	}
	L.Push(lua.LString(fmt.Sprintf(format, args[:min(arg-1, len(args))]...)))
	return 1
}

// tabConcat is table.concat(t [, sep [, i [, j]]]), its result charged before it is
// built.
func (st *luaState) tabConcat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, t.Len())
	if i > j {
		L.Push(lua.LString(""))
		return 1
	}
	if j-i >= st.maxAlloc { // more items than bytes left, even if all were empty
		st.charge(L, -1)
	}
	size := 0
	for k := i; k <= j; k++ {
		v := t.RawGetInt(k)
		if !lua.LVCanConvToString(v) {
			L.RaiseError("invalid value (at index %d) in table for 'concat'", k)
		}
		size += len(lua.LVAsString(v))
		if k < j {
			size += len(sep)
		}
		if size > st.maxAlloc-st.used {
			st.charge(L, -1)
		}
	}
	st.charge(L, size)
	var b strings.Builder
	b.Grow(size)
	for k := i; k <= j; k++ {
		b.WriteString(lua.LVAsString(t.RawGetInt(k)))
		if k < j {
			b.WriteString(sep)
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

// luaSorter sorts a table's values 1..n, checking the run's context as it goes so
// that sorting a huge table does not outlive the budget.
type luaSorter struct {
	L      *lua.LState
	fn     *lua.LFunction
	values []lua.LValue
	steps  int
}

func (s *luaSorter) Len() int      { return len(s.values) }
func (s *luaSorter) Swap(i, j int) { s.values[i], s.values[j] = s.values[j], s.values[i] }
func (s *luaSorter) Less(i, j int) bool {
	if s.steps++; s.steps%stepsPerCheck == 0 {
		if ctx := s.L.Context(); ctx != nil && ctx.Err() != nil {
			s.L.RaiseError("sort interrupted: %v", ctx.Err())
		}
	}
	if s.fn == nil {
		return s.L.LessThan(s.values[i], s.values[j])
	}
	s.L.Push(s.fn)
	s.L.Push(s.values[i])
	s.L.Push(s.values[j])
	s.L.Call(2, 1)
	less := lua.LVAsBool(s.L.Get(-1))
	s.L.Pop(1)
	return less
}

// tabSort is table.sort(t [, comp]).
func (st *luaState) tabSort(L *lua.LState) int {
	t := L.CheckTable(1)
	s := &luaSorter{L: L}
	if L.GetTop() >= 2 && L.Get(2) != lua.LNil {
		s.fn = L.CheckFunction(2)
	}
	n := t.Len()
	s.values = make([]lua.LValue, n)
	for i := range s.values {
		s.values[i] = t.RawGetInt(i + 1)
	}
	sort.Sort(s)
	for i, v := range s.values {
		t.RawSetInt(i+1, v)
	}
	return 0
}

// strConcat implements the `..` operator, which scripts are compiled to call with
// the operands of a whole chain (a .. b .. c): strings and numbers are joined at
// once, after charging the result; any other operand goes through __concat
// metamethods pairwise from the right, as Lua does.
func (st *luaState) strConcat(L *lua.LState) int {
	n := L.GetTop()
	size, plain := 0, true
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case lua.LString:
			size += len(v)
		case lua.LNumber:
			size += len(v.String())
		default:
			plain = false
		}
	}
	if plain {
		st.charge(L, size)
		var b strings.Builder
		b.Grow(size)
		for i := 1; i <= n; i++ {
			b.WriteString(lua.LVAsString(L.Get(i)))
		}
		L.Push(lua.LString(b.String()))
		return 1
	}
	acc := L.Get(n)
	for i := n - 1; i >= 1; i-- {
		acc = st.concat2(L, L.Get(i), acc)
	}
	L.Push(acc)
	return 1
}

// concat2 is a .. b for one pair of operands.
func (st *luaState) concat2(L *lua.LState, a, b lua.LValue) lua.LValue {
	if isStringy(a) && isStringy(b) {
		sa, sb := lua.LVAsString(a), lua.LVAsString(b)
		st.charge(L, len(sa)+len(sb))
		return lua.LString(sa + sb)
	}
	mm := L.GetMetaField(a, "__concat")
	if mm == lua.LNil {
		mm = L.GetMetaField(b, "__concat")
	}
	if mm == lua.LNil {
		bad := a
		if isStringy(a) {
			bad = b
		}
		L.RaiseError("attempt to concatenate a %s value", bad.Type().String())
	}
	L.Push(mm)
	L.Push(a)
	L.Push(b)
	L.Call(2, 1)
	v := L.Get(-1)
	L.Pop(1)
	return v
}

func isStringy(v lua.LValue) bool {
	t := v.Type()
	return t == lua.LTString || t == lua.LTNumber
}
