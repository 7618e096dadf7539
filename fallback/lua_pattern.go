package fallback

import (
	"bytes"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// This file replaces gopher-lua's string.find, match, gmatch and gsub. Its matcher
// recurses once per character a quantifier consumes (a 1 MiB subject took 256 MiB
// of goroutine stack and seconds, beyond any context check) and its gsub copies the
// whole result once per match. The matcher below follows Lua 5.1's lstrlib.c: it
// recurses only per pattern item, to a bounded depth, and it checks the run's
// context every few thousand steps, so a pathological pattern ends with the run's
// budget instead of hanging the goroutine.

const (
	patEsc         = '%'
	patSpecials    = "^$*+?.([%-"
	maxCaptures    = 32
	maxMatchDepth  = 200 // as Lua 5.2's MAXCCALLS
	capUnfinished  = -1
	capPosition    = -2
	stepsPerCheck  = 4096 // matcher steps between context checks
	patternErrPref = "malformed pattern"
)

// matchState is lstrlib's MatchState: one match attempt over src.
type matchState struct {
	st      *luaState
	L       *lua.LState
	src     string
	pat     string
	level   int
	depth   int
	steps   int
	capture [maxCaptures]struct{ init, len int }
}

// step counts matcher work and ends the run once its context is done.
func (ms *matchState) step(n int) {
	ms.steps += n
	if ms.steps >= stepsPerCheck {
		ms.steps = 0
		if ctx := ms.L.Context(); ctx != nil && ctx.Err() != nil {
			ms.L.RaiseError("pattern matching interrupted: %v", ctx.Err())
		}
	}
}

func (ms *matchState) patAt(p int) byte {
	if p < len(ms.pat) {
		return ms.pat[p]
	}
	return 0
}

func (ms *matchState) checkCapture(l int) int {
	l -= '1'
	if l < 0 || l >= ms.level || ms.capture[l].len == capUnfinished {
		ms.L.RaiseError("invalid capture index")
	}
	return l
}

func (ms *matchState) captureToClose() int {
	for level := ms.level - 1; level >= 0; level-- {
		if ms.capture[level].len == capUnfinished {
			return level
		}
	}
	ms.L.RaiseError("invalid pattern capture")
	return 0
}

// classEnd returns the index just past the single-character class at p.
func (ms *matchState) classEnd(p int) int {
	c := ms.patAt(p)
	p++
	switch c {
	case patEsc:
		if p >= len(ms.pat) {
			ms.L.RaiseError("%s (ends with '%%')", patternErrPref)
		}
		return p + 1
	case '[':
		if ms.patAt(p) == '^' {
			p++
		}
		for { // look for a ']'
			if p >= len(ms.pat) {
				ms.L.RaiseError("%s (missing ']')", patternErrPref)
			}
			c := ms.pat[p]
			p++
			if c == patEsc && p < len(ms.pat) {
				p++ // skip escapes such as '%]'
			}
			if ms.patAt(p) == ']' {
				break
			}
		}
		return p + 1
	}
	return p
}

func isalpha(c byte) bool  { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isdigit(c byte) bool  { return c >= '0' && c <= '9' }
func islower(c byte) bool  { return c >= 'a' && c <= 'z' }
func isupper(c byte) bool  { return c >= 'A' && c <= 'Z' }
func isspace(c byte) bool  { return c == ' ' || c >= '\t' && c <= '\r' }
func iscntrl(c byte) bool  { return c < 0x20 || c == 0x7f }
func ispunct(c byte) bool  { return c > 0x20 && c < 0x7f && !isalpha(c) && !isdigit(c) }
func isxdigit(c byte) bool { return isdigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }

// matchClass reports whether c is in the class %cl (C locale).
func matchClass(c, cl byte) bool {
	var res bool
	switch cl | 0x20 {
	case 'a':
		res = isalpha(c)
	case 'c':
		res = iscntrl(c)
	case 'd':
		res = isdigit(c)
	case 'l':
		res = islower(c)
	case 'p':
		res = ispunct(c)
	case 's':
		res = isspace(c)
	case 'u':
		res = isupper(c)
	case 'w':
		res = isalpha(c) || isdigit(c)
	case 'x':
		res = isxdigit(c)
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if isupper(cl) {
		return !res
	}
	return res
}

// matchBracketClass matches c against the set pat[p:ec+1], p at '[' and ec at ']'.
func (ms *matchState) matchBracketClass(c byte, p, ec int) bool {
	sig := true
	if ms.patAt(p+1) == '^' {
		sig = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case ms.pat[p] == patEsc:
			p++
			if matchClass(c, ms.patAt(p)) {
				return sig
			}
		case ms.patAt(p+1) == '-' && p+2 < ec:
			p += 2
			if ms.pat[p-2] <= c && c <= ms.pat[p] {
				return sig
			}
		case ms.pat[p] == c:
			return sig
		}
	}
	return !sig
}

// singleMatch matches the character at s against the class pat[p:ep].
func (ms *matchState) singleMatch(s, p, ep int) bool {
	if s >= len(ms.src) {
		return false
	}
	c := ms.src[s]
	switch ms.pat[p] {
	case '.':
		return true
	case patEsc:
		return matchClass(c, ms.patAt(p+1))
	case '[':
		return ms.matchBracketClass(c, p, ep-1)
	}
	return ms.pat[p] == c
}

func (ms *matchState) matchBalance(s, p int) int {
	if p+1 >= len(ms.pat) {
		ms.L.RaiseError("unbalanced pattern")
	}
	if s >= len(ms.src) || ms.src[s] != ms.pat[p] {
		return -1
	}
	b, e, cont := ms.pat[p], ms.pat[p+1], 1
	start := s
	for s++; s < len(ms.src); s++ {
		if ms.src[s] == e {
			cont--
			if cont == 0 {
				ms.step(s - start)
				return s + 1
			}
		} else if ms.src[s] == b {
			cont++
		}
	}
	ms.step(s - start)
	return -1
}

func (ms *matchState) maxExpand(s, p, ep int) int {
	i := 0
	for ms.singleMatch(s+i, p, ep) {
		i++
	}
	ms.step(i)
	for ; i >= 0; i-- { // try with the most repetitions first
		if res := ms.match(s+i, ep+1); res != -1 {
			return res
		}
		ms.step(1)
	}
	return -1
}

func (ms *matchState) minExpand(s, p, ep int) int {
	for {
		if res := ms.match(s, ep+1); res != -1 {
			return res
		}
		if !ms.singleMatch(s, p, ep) {
			return -1
		}
		s++
		ms.step(1)
	}
}

func (ms *matchState) startCapture(s, p, what int) int {
	if ms.level >= maxCaptures {
		ms.L.RaiseError("too many captures")
	}
	ms.capture[ms.level].init = s
	ms.capture[ms.level].len = what
	ms.level++
	res := ms.match(s, p)
	if res == -1 {
		ms.level--
	}
	return res
}

func (ms *matchState) endCapture(s, p int) int {
	l := ms.captureToClose()
	ms.capture[l].len = s - ms.capture[l].init
	res := ms.match(s, p)
	if res == -1 {
		ms.capture[l].len = capUnfinished
	}
	return res
}

func (ms *matchState) matchCapture(s int, l byte) int {
	i := ms.checkCapture(int(l))
	c := ms.capture[i]
	// A position capture has a negative length; C Lua compares it as a huge
	// unsigned length, so it never matches.
	if c.len >= 0 && len(ms.src)-s >= c.len && ms.src[c.init:c.init+c.len] == ms.src[s:s+c.len] {
		ms.step(c.len)
		return s + c.len
	}
	return -1
}

// match returns the end of a match of pat[p:] at src[s:], or -1.
func (ms *matchState) match(s, p int) int {
	ms.depth++
	defer func() { ms.depth-- }()
	if ms.depth > maxMatchDepth {
		ms.L.RaiseError("pattern too complex")
	}
	ms.step(1)
	for {
		if p >= len(ms.pat) { // end of pattern
			return s
		}
		switch ms.pat[p] {
		case '(':
			if ms.patAt(p+1) == ')' {
				return ms.startCapture(s, p+2, capPosition)
			}
			return ms.startCapture(s, p+1, capUnfinished)
		case ')':
			return ms.endCapture(s, p+1)
		case '$':
			if p+1 == len(ms.pat) {
				if s == len(ms.src) {
					return s
				}
				return -1
			}
		case patEsc:
			switch ms.patAt(p + 1) {
			case 'b':
				s = ms.matchBalance(s, p+2)
				if s == -1 {
					return -1
				}
				p += 4
				continue
			case 'f':
				p += 2
				if ms.patAt(p) != '[' {
					ms.L.RaiseError("%s", "missing '[' after '%f' in pattern")
				}
				ep := ms.classEnd(p)
				var prev, cur byte
				if s > 0 {
					prev = ms.src[s-1]
				}
				if s < len(ms.src) {
					cur = ms.src[s]
				}
				if ms.matchBracketClass(prev, p, ep-1) || !ms.matchBracketClass(cur, p, ep-1) {
					return -1
				}
				p = ep
				continue
			default:
				if isdigit(ms.patAt(p + 1)) {
					s = ms.matchCapture(s, ms.pat[p+1])
					if s == -1 {
						return -1
					}
					p += 2
					continue
				}
			}
		}
		// A single-character class, possibly quantified.
		ep := ms.classEnd(p)
		m := ms.singleMatch(s, p, ep)
		switch ms.patAt(ep) {
		case '?':
			if m {
				if res := ms.match(s+1, ep+1); res != -1 {
					return res
				}
			}
			p = ep + 1
			continue
		case '*':
			return ms.maxExpand(s, p, ep)
		case '+':
			if !m {
				return -1
			}
			return ms.maxExpand(s+1, p, ep)
		case '-':
			return ms.minExpand(s, p, ep)
		}
		if !m {
			return -1
		}
		s++
		p = ep
	}
}

// captureValue returns capture i of a match of src[s:e].
func (ms *matchState) captureValue(i, s, e int) lua.LValue {
	if i >= ms.level {
		if i == 0 { // no captures: the whole match
			return lua.LString(ms.src[s:e])
		}
		ms.L.RaiseError("invalid capture index")
	}
	c := ms.capture[i]
	switch c.len {
	case capUnfinished:
		ms.L.RaiseError("unfinished capture")
	case capPosition:
		return lua.LNumber(c.init + 1)
	}
	return lua.LString(ms.src[c.init : c.init+c.len])
}

// pushCaptures pushes the captures of a match of src[s:e] (the whole match when the
// pattern has none and wholeIfNone) and returns how many it pushed.
func (ms *matchState) pushCaptures(s, e int, wholeIfNone bool) int {
	n := ms.level
	if n == 0 && wholeIfNone {
		n = 1
	}
	for i := 0; i < n; i++ {
		ms.L.Push(ms.captureValue(i, s, e))
	}
	return n
}

// strIndex converts a Lua string position (1-based, negative from the end) to a
// 0-based offset clamped to [0, n].
func strIndex(pos, n int) int {
	if pos < 0 {
		pos += n + 1
	}
	pos--
	if pos < 0 {
		return 0
	}
	if pos > n {
		return n
	}
	return pos
}

// findAux implements string.find (find) and string.match (!find).
func (st *luaState) findAux(L *lua.LState, find bool) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	init := strIndex(L.OptInt(3, 1), len(src))
	if find && (L.ToBool(4) || !strings.ContainsAny(pat, patSpecials)) {
		if i := strings.Index(src[init:], pat); i >= 0 {
			L.Push(lua.LNumber(init + i + 1))
			L.Push(lua.LNumber(init + i + len(pat)))
			return 2
		}
		L.Push(lua.LNil)
		return 1
	}
	anchor := len(pat) > 0 && pat[0] == '^'
	if anchor {
		pat = pat[1:]
	}
	ms := &matchState{st: st, L: L, src: src, pat: pat}
	for s := init; ; s++ {
		ms.level, ms.depth = 0, 0
		if e := ms.match(s, 0); e != -1 {
			if find {
				L.Push(lua.LNumber(s + 1))
				L.Push(lua.LNumber(e))
				return ms.pushCaptures(-1, -1, false) + 2
			}
			return ms.pushCaptures(s, e, true)
		}
		if s >= len(src) || anchor {
			break
		}
	}
	L.Push(lua.LNil)
	return 1
}

func (st *luaState) strFind(L *lua.LState) int  { return st.findAux(L, true) }
func (st *luaState) strMatch(L *lua.LState) int { return st.findAux(L, false) }

// strGmatch implements string.gmatch: an iterator that finds one match per call.
// As in Lua 5.1, '^' has no special meaning here.
func (st *luaState) strGmatch(L *lua.LState) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	pos := 0
	L.Push(L.NewFunction(func(L *lua.LState) int {
		ms := &matchState{st: st, L: L, src: src, pat: pat}
		for s := pos; s <= len(src); s++ {
			ms.level, ms.depth = 0, 0
			if e := ms.match(s, 0); e != -1 {
				pos = e
				if e == s { // empty match: move on at least one position
					pos++
				}
				return ms.pushCaptures(s, e, true)
			}
		}
		pos = len(src) + 1
		return 0
	}))
	return 1
}

// strGsub implements string.gsub, building the result once and charging its size to
// the run's string budget as it grows.
func (st *luaState) strGsub(L *lua.LState) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	repl := L.Get(3)
	switch repl.Type() {
	case lua.LTNumber, lua.LTString, lua.LTTable, lua.LTFunction:
	default:
		L.ArgError(3, "string/function/table expected")
	}
	maxN := L.OptInt(4, len(src)+1)
	anchor := len(pat) > 0 && pat[0] == '^'
	if anchor {
		pat = pat[1:]
	}
	var replStr string
	if repl.Type() == lua.LTNumber || repl.Type() == lua.LTString {
		replStr = lua.LVAsString(repl)
	}
	ms := &matchState{st: st, L: L, src: src, pat: pat}
	var b bytes.Buffer
	add := func(s string) { st.charge(L, len(s)); b.WriteString(s) }
	n, s := 0, 0
	for n < maxN {
		ms.level, ms.depth = 0, 0
		e := ms.match(s, 0)
		if e != -1 {
			n++
			st.gsubValue(ms, repl, replStr, s, e, add)
		}
		switch {
		case e != -1 && e > s: // non-empty match: skip it
			s = e
		case s < len(src):
			add(src[s : s+1])
			s++
		default:
			s = len(src) + 1
		}
		if s > len(src) || anchor {
			break
		}
	}
	if s < len(src) {
		add(src[s:])
	}
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(n))
	return 2
}

// gsubValue appends the replacement for the match src[s:e].
func (st *luaState) gsubValue(ms *matchState, repl lua.LValue, replStr string, s, e int, add func(string)) {
	L := ms.L
	var v lua.LValue
	switch r := repl.(type) {
	case *lua.LTable:
		v = L.GetTable(r, ms.captureValue(0, s, e))
	case *lua.LFunction:
		L.Push(r)
		L.Call(ms.pushCaptures(s, e, true), 1)
		v = L.Get(-1)
		L.Pop(1)
	default:
		for i := 0; i < len(replStr); i++ {
			c := replStr[i]
			if c != patEsc {
				j := i + strings.IndexByte(replStr[i:], patEsc)
				if j < i {
					j = len(replStr)
				}
				add(replStr[i:j])
				i = j - 1
				continue
			}
			i++
			if i == len(replStr) {
				L.RaiseError("%s", "invalid use of '%' in replacement string")
			}
			switch c := replStr[i]; {
			case !isdigit(c):
				add(replStr[i : i+1])
			case c == '0':
				add(ms.src[s:e])
			default:
				add(lua.LVAsString(ms.captureValue(int(c-'1'), s, e)))
			}
		}
		return
	}
	switch v.Type() {
	case lua.LTNil:
		add(ms.src[s:e]) // keep the original text
	case lua.LTBool:
		if v == lua.LFalse {
			add(ms.src[s:e])
			return
		}
		L.RaiseError("invalid replacement value (a %s)", v.Type().String())
	case lua.LTString, lua.LTNumber:
		add(lua.LVAsString(v))
	default:
		L.RaiseError("invalid replacement value (a %s)", v.Type().String())
	}
}
