package fallback

import (
	lua "github.com/yuin/gopher-lua"
)

const (
	// luaCallStack bounds nested calls (Lua's own recursion and Go→Lua calls such
	// as pcall, metamethods and sort comparators), so deep recursion is an error.
	luaCallStack = 200
	// luaRegistry is the fixed size of a state's value stack. It must not grow:
	// gopher-lua grows it by a few slots at a time, copying it each time, so
	// unpack(t, 1, 1e8) took seconds before failing.
	luaRegistry = 8 << 10
)

// Names removed from the base library: everything that reaches files, loads code,
// changes function environments, touches the collector or prints.
var luaBaseRemoved = []string{
	"collectgarbage", "dofile", "getfenv", "load", "loadfile", "loadstring",
	"module", "newproxy", "print", "require", "setfenv", "_printregs",
	"_G", "_GOPHER_LUA_VERSION",
}

// luaLibs are the libraries a script sees; each run gets its own table for each,
// reading through to the shared one (see newEnv).
var luaLibs = []string{lua.StringLibName, lua.TabLibName, lua.MathLibName}

// luaState is one sandboxed interpreter of a Script's pool. It is used by one run at
// a time; a run that fails discards it.
type luaState struct {
	L *lua.LState
	// base holds the safe globals; each run's environment reads through to it and
	// scripts hold no reference to it, so a run cannot change what the next sees.
	base    *lua.LTable
	envMeta *lua.LTable
	// libMetas are protected metatables reading through to the library tables,
	// parallel to luaLibs.
	libMetas []*lua.LTable
	concat   *lua.LFunction

	maxAlloc int // string bytes one run may build
	used     int // string bytes this run has built
}

// newLuaState builds a sandboxed state: base (less luaBaseRemoved), string, table
// and math libraries only, with the functions that can build large strings or run
// long in Go replaced by bounded ones. No io, os, package, debug, coroutine or
// channel library is opened.
func newLuaState(maxAlloc int) *luaState {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:  true,
		CallStackSize: luaCallStack,
		RegistrySize:  luaRegistry,
	})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	st := &luaState{L: L, base: L.G.Global, maxAlloc: maxAlloc}
	for _, name := range luaBaseRemoved {
		st.base.RawSetString(name, lua.LNil)
	}

	str := st.base.RawGetString(lua.StringLibName).(*lua.LTable)
	for name, fn := range map[string]lua.LGFunction{
		"rep": st.strRep, "format": st.strFormat, "upper": st.strUpper,
		"lower": st.strLower, "reverse": st.strReverse, "char": st.strChar,
		"find": st.strFind, "match": st.strMatch, "gmatch": st.strGmatch,
		"gfind": st.strGmatch, "gsub": st.strGsub,
	} {
		str.RawSetString(name, L.NewFunction(fn))
	}
	str.RawSetString("dump", lua.LNil)
	// OpenString made the library table its own __index and the strings'
	// metatable, so getmetatable("").__index.rep = ... would reach it. Strings get
	// a separate, protected metatable instead: getmetatable("") is false.
	str.RawSetString("__index", lua.LNil)
	strMeta := L.NewTable()
	strMeta.RawSetString("__index", str)
	strMeta.RawSetString("__metatable", lua.LFalse)
	L.SetMetatable(lua.LString(""), strMeta)

	tab := st.base.RawGetString(lua.TabLibName).(*lua.LTable)
	tab.RawSetString("concat", L.NewFunction(st.tabConcat))
	tab.RawSetString("sort", L.NewFunction(st.tabSort))

	math := st.base.RawGetString(lua.MathLibName).(*lua.LTable)
	math.RawSetString("randomseed", lua.LNil) // would reseed the process-wide source

	for _, name := range luaLibs {
		st.libMetas = append(st.libMetas, protectedIndex(L, st.base.RawGetString(name)))
		st.base.RawSetString(name, lua.LNil)
	}
	st.envMeta = protectedIndex(L, st.base)
	st.concat = L.NewFunction(st.strConcat)
	return st
}

// protectedIndex returns a metatable that reads missing keys from t and that scripts
// can neither read nor replace (getmetatable returns false).
func protectedIndex(L *lua.LState, t lua.LValue) *lua.LTable {
	mt := L.CreateTable(0, 2)
	mt.RawSetString("__index", t)
	mt.RawSetString("__metatable", lua.LFalse)
	return mt
}

// newEnv returns a fresh global environment for one run: its own _G and its own
// string, table and math tables, all empty and reading through protected metatables
// to the shared base functions and libraries, which no script can reach to change.
// Whatever a run assigns (globals, string.foo, ...) is gone with it. The price:
// pairs(_G) and pairs(string) show only what the run itself assigned.
func (st *luaState) newEnv() *lua.LTable {
	L := st.L
	env := L.CreateTable(0, 8)
	env.Metatable = st.envMeta
	env.RawSetString("_G", env)
	for i, name := range luaLibs {
		lib := L.CreateTable(0, 0)
		lib.Metatable = st.libMetas[i]
		env.RawSetString(name, lib)
	}
	return env
}

// loadHandler runs proto, a chunk compiled by compileChunk, in a fresh environment
// and returns the function it returns: the script's handler.
func (st *luaState) loadHandler(proto *lua.FunctionProto) (*lua.LFunction, error) {
	L := st.L
	chunk := L.NewFunctionFromProto(proto)
	chunk.Env = st.newEnv()
	L.Push(chunk)
	L.Push(st.concat)
	if err := L.PCall(1, 1, nil); err != nil {
		return nil, err
	}
	ret := L.Get(-1)
	L.Pop(1)
	fn, ok := ret.(*lua.LFunction)
	if !ok {
		return nil, errShape("the chunk returned %s, want a function (return function(req) ... end)", ret.Type())
	}
	return fn, nil
}

// close releases the state; it is not used again.
func (st *luaState) close() { st.L.Close() }
