package fallback

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Defaults applied to the zero fields of ScriptOptions.
const (
	DefaultScriptTimeout = 50 * time.Millisecond
	DefaultMaxInput      = 1 << 20
	DefaultMaxOutput     = 1 << 20
	DefaultMaxAlloc      = 16 << 20
)

// stopGrace is how long Run waits, after the budget, for a run to stop by itself
// before abandoning it. The VM stops within an instruction and the bounded library
// functions within a few thousand steps, so this is only a backstop.
const stopGrace = 10 * time.Millisecond

// ScriptOptions bounds a Script. The zero value of every field means its default.
type ScriptOptions struct {
	// Timeout is one run's time budget, chunk and handler together
	// (DefaultScriptTimeout). A shorter deadline on Run's context also applies.
	Timeout time.Duration
	// MaxConcurrent bounds the runs in progress, and so the Lua states alive;
	// further runs wait for a slot within their budget (runtime.GOMAXPROCS(0):
	// runs use CPU only, so more would not finish sooner).
	MaxConcurrent int
	// MaxInput bounds the cached body handed to a script; a larger one is left
	// out (DefaultMaxInput).
	MaxInput int
	// MaxOutput bounds the body a script returns (DefaultMaxOutput).
	MaxOutput int
	// MaxAlloc bounds the bytes of strings one run may build with `..`,
	// string.rep, string.format, string.gsub, table.concat and the like
	// (DefaultMaxAlloc); past it the run fails.
	MaxAlloc int
}

func (o ScriptOptions) withDefaults() ScriptOptions {
	if o.Timeout <= 0 {
		o.Timeout = DefaultScriptTimeout
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = runtime.GOMAXPROCS(0)
	}
	if o.MaxInput <= 0 {
		o.MaxInput = DefaultMaxInput
	}
	if o.MaxOutput <= 0 {
		o.MaxOutput = DefaultMaxOutput
	}
	if o.MaxAlloc <= 0 {
		o.MaxAlloc = DefaultMaxAlloc
	}
	return o
}

// Request is what a script learns of the request that found every region failing.
// Run does not retain it.
type Request struct {
	Method, Path, Query string
	// Key is the routing key the request was split by (a user id, say), if any.
	Key string
	// Region is the name of the region the request was routed to.
	Region string
	// Headers are the request headers the proxy chose to pass. The script sees
	// them by lower-cased name; of repeated names, the last value.
	Headers [][2]string
	// Cached is the route's cached entry for the request (from Cache.Get), or
	// nil. The script reads it and does not retain it.
	Cached *Entry
}

// Response is a script's answer. Headers are sorted by name; Body is the script's
// own copy.
type Response struct {
	Status  int
	Headers [][2]string
	Body    []byte
}

// ScriptStats is a point-in-time view of a Script's counters, for metrics.
type ScriptStats struct {
	Runs     uint64 // runs started
	Failures uint64 // runs that returned an error, timeouts included
	Timeouts uint64 // runs stopped by their budget or their context
	Stuck    int64  // abandoned runs still executing (should stay 0)
}

// Script is a compiled Lua fallback script (the role of nginx's ngx_lua): given the
// failed request and the cached entry, if any, it returns a response.
//
// The source is a chunk that returns the handler function, which receives the request
// as a table and returns the response as a table:
//
//	-- Serve the last good feed marked stale, or a minimal list.
//	return function(req)
//	  -- req.method, req.path, req.query, req.key, req.region: strings
//	  -- req.headers: table of lower-cased name -> value
//	  -- req.cached: nil, or {status=, headers=, body=, size=, age=seconds}
//	  if req.cached and req.cached.body then
//	    return {status = 200, body = req.cached.body,
//	            headers = {["content-type"] = "application/json", ["x-stale"] = "1"}}
//	  end
//	  return {status = 503, body = '{"items":[]}',
//	          headers = {["content-type"] = "application/json"}}
//	end
//
// status must be an integer in 200..599; headers (optional) a table of name to
// string; body (optional) a string. Each run executes the chunk in a fresh global
// environment and then calls the handler, so nothing a run assigns (globals, fields
// of the string, table or math tables) is seen by another: keep the chunk's top level
// cheap. (The fresh environment reads through to the shared libraries, so pairs over
// _G or string sees only what the run assigned.)
//
// The sandbox offers the base functions (without dofile, load, loadfile, loadstring,
// require, module, getfenv, setfenv, collectgarbage, newproxy and print) and the
// string, table and math libraries; no io, os, package, debug, coroutine or channel.
// getmetatable("") is false, and the environment's metatable is protected. Runs are
// bounded in time (ScriptOptions.Timeout, enforced between VM instructions and inside
// the pattern, sort and string-building functions), in the strings they may build
// (MaxAlloc), in call depth and value-stack size, and in the body they return.
//
// A Script is safe for concurrent use. It keeps a pool of Lua states; a state whose
// run failed in any way is discarded, never reused.
type Script struct {
	name  string
	proto *lua.FunctionProto
	opt   ScriptOptions
	slots chan struct{}
	idle  chan *luaState

	runs, failures, timeouts atomic.Uint64
	stuck                    atomic.Int64
}

// Compile parses and compiles source once, then runs its chunk once in a sandbox to
// check that it returns a function. name identifies the script in errors, for
// example the route or file name. Every error wraps ErrScript; a syntax error
// names the script and the line.
func Compile(name, source string, opt ScriptOptions) (*Script, error) {
	proto, err := compileChunk(name, source)
	if err != nil {
		return nil, err
	}
	opt = opt.withDefaults()
	s := &Script{
		name:  name,
		proto: proto,
		opt:   opt,
		slots: make(chan struct{}, opt.MaxConcurrent),
		idle:  make(chan *luaState, opt.MaxConcurrent),
	}
	ctx, cancel := context.WithTimeout(context.Background(), opt.Timeout)
	defer cancel()
	st := newLuaState(opt.MaxAlloc)
	st.L.SetContext(ctx)
	_, err = st.loadHandler(proto)
	st.L.RemoveContext()
	if err != nil {
		st.close()
		return nil, s.failure(ctx, err)
	}
	st.L.SetTop(0)
	s.put(st)
	return s, nil
}

// Name returns the name the script was compiled with.
func (s *Script) Name() string { return s.name }

// Stats returns the script's counters.
func (s *Script) Stats() ScriptStats {
	return ScriptStats{
		Runs:     s.runs.Load(),
		Failures: s.failures.Load(),
		Timeouts: s.timeouts.Load(),
		Stuck:    s.stuck.Load(),
	}
}

// run is one execution, shared by Run and the goroutine executing it.
type run struct {
	done     chan struct{}
	resp     Response
	err      error
	timedOut bool         // err came from the budget or the context running out
	state    atomic.Int32 // runRunning, then runFinished or runAbandoned
}

const (
	runRunning int32 = iota
	runFinished
	runAbandoned
)

// Run executes the script for req within the script's budget and ctx, which must be
// non-nil. Any failure, including a script error, a result of the wrong shape, the
// budget running out or no Lua state free in time, is an error wrapping ErrScript; a
// failing script never panics the caller, and Run returns by the end of the budget
// plus a few milliseconds.
func (s *Script) Run(ctx context.Context, req Request) (Response, error) {
	s.runs.Add(1)
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel() // also stops an abandoned run at its next check
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		s.failures.Add(1)
		s.timeouts.Add(1)
		return Response{}, fmt.Errorf("%w: %s: no Lua state free within the budget: %v", ErrScript, s.name, ctx.Err())
	}
	r := &run{done: make(chan struct{})}
	// The run has its own goroutine so that Run can give up on it, should some
	// library function ignore the context.
	go s.execute(ctx, s.get(), req, r)

	select {
	case <-r.done:
		return s.finish(r)
	case <-ctx.Done():
	}
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-r.done:
		return s.finish(r)
	case <-grace.C:
	}
	s.stuck.Add(1)
	if !r.state.CompareAndSwap(runRunning, runAbandoned) {
		s.stuck.Add(-1) // it finished just now
		<-r.done
		return s.finish(r)
	}
	s.failures.Add(1)
	s.timeouts.Add(1)
	return Response{}, fmt.Errorf("%w: %s: did not stop within its %v budget (%v)", ErrScript, s.name, s.opt.Timeout, ctx.Err())
}

// finish counts a completed run and returns its result.
func (s *Script) finish(r *run) (Response, error) {
	if r.err != nil {
		s.failures.Add(1)
		if r.timedOut {
			s.timeouts.Add(1)
		}
	}
	return r.resp, r.err
}

// execute runs req on st and reports into r. It owns st: a state comes back to the
// pool only after a clean run.
func (s *Script) execute(ctx context.Context, st *luaState, req Request, r *run) {
	defer func() {
		if p := recover(); p != nil { // a bug, not the script's doing; keep serving
			r.resp, r.err = Response{}, fmt.Errorf("%w: %s: internal error: %v", ErrScript, s.name, p)
		}
		if r.err == nil {
			s.put(st)
		} else {
			r.timedOut = ctx.Err() != nil
			st.close()
		}
		<-s.slots
		if !r.state.CompareAndSwap(runRunning, runFinished) {
			s.stuck.Add(-1) // Run gave up on this one
		}
		close(r.done)
	}()
	r.resp, r.err = s.call(ctx, st, req)
}

// call executes the chunk and the handler on st.
func (s *Script) call(ctx context.Context, st *luaState, req Request) (Response, error) {
	L := st.L
	st.used = 0
	L.SetContext(ctx)
	defer L.RemoveContext()
	defer L.SetTop(0)
	handler, err := st.loadHandler(s.proto)
	if err != nil {
		return Response{}, s.failure(ctx, err)
	}
	L.Push(handler)
	L.Push(st.request(req, s.opt.MaxInput, time.Now()))
	if err := L.PCall(1, 1, nil); err != nil {
		return Response{}, s.failure(ctx, err)
	}
	resp, err := response(L.Get(-1), s.opt.MaxOutput)
	if err != nil {
		return Response{}, s.failure(ctx, err)
	}
	return resp, nil
}

// failure wraps a run's error in ErrScript, without the Lua stack trace and cut to a
// sane length, saying whether the budget or the context stopped it.
func (s *Script) failure(ctx context.Context, err error) error {
	msg := err.Error()
	if ae, ok := err.(*lua.ApiError); ok && ae.Object != nil {
		msg = ae.Object.String()
	}
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %s: stopped (%v; budget %v): %s", ErrScript, s.name, ctx.Err(), s.opt.Timeout, msg)
	}
	return fmt.Errorf("%w: %s: %s", ErrScript, s.name, msg)
}

// get returns an idle state or a new one.
func (s *Script) get() *luaState {
	select {
	case st := <-s.idle:
		return st
	default:
		return newLuaState(s.opt.MaxAlloc)
	}
}

// put returns a clean state to the pool, or closes it when the pool is full.
func (s *Script) put(st *luaState) {
	select {
	case s.idle <- st:
	default:
		st.close()
	}
}
