package fallback

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// handler wraps a handler body into a script source.
func handler(body string) string {
	return "return function(req)\n" + body + "\nend"
}

// mustCompile compiles src; unless opt sets a Timeout, the budget is generous, so
// that a slow or busy test machine does not fail tests that are not about time.
func mustCompile(t testing.TB, src string, opt ScriptOptions) *Script {
	t.Helper()
	if opt.Timeout == 0 {
		opt.Timeout = 10 * time.Second
	}
	s, err := Compile("test.lua", src, opt)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

func TestScriptHappyPath(t *testing.T) {
	src := `
-- Serve the last good feed marked stale, or an empty list.
return function(req)
  if req.cached and req.cached.body then
    local body = req.cached.body:gsub('"stale":false', '"stale":true')
    return {status = req.cached.status, body = body, headers = {
      ["Content-Type"] = req.cached.headers["content-type"],
      ["X-Age"] = string.format("%d", req.cached.age),
    }}
  end
  return {status = 503, body = '{"items":[]}', headers = {["Content-Type"] = "application/json"}}
end`
	cached := &Entry{
		Status: 203,
		Header: [][2]string{{"Content-Type", "application/json"}},
		Body:   []byte(`{"items":[1],"stale":false}`),
	}
	for _, tc := range []struct {
		name   string
		cached *Entry
		want   Response
	}{
		{"cached", cached, Response{
			Status:  203,
			Headers: [][2]string{{"Content-Type", "application/json"}, {"X-Age", "90"}},
			Body:    []byte(`{"items":[1],"stale":true}`),
		}},
		{"nothing cached", nil, Response{
			Status:  503,
			Headers: [][2]string{{"Content-Type", "application/json"}},
			Body:    []byte(`{"items":[]}`),
		}},
	} {
		// In a bubble, so that the clock, and so the entry's age, stands still.
		synctest.Test(t, func(t *testing.T) {
			s := mustCompile(t, src, ScriptOptions{})
			if tc.cached != nil {
				tc.cached.Stored = time.Now().Add(-90 * time.Second)
			}
			got, err := s.Run(context.Background(), Request{Method: "GET", Path: "/api/feed", Cached: tc.cached})
			if err != nil {
				t.Fatalf("%s: Run: %v", tc.name, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%s: got %+v\nwant %+v", tc.name, got, tc.want)
			}
			if st := s.Stats(); st.Runs != 1 || st.Failures != 0 {
				t.Fatalf("%s: stats %+v", tc.name, st)
			}
		})
	}
}

func TestScriptRequestFields(t *testing.T) {
	s := mustCompile(t, handler(`
  local c = req.cached
  return {status = 200, body = table.concat({req.method, req.path, req.query, req.key, req.region,
    req.headers["x-user-id"], tostring(req.headers["X-User-Id"]),
    c.status, c.headers["etag"], tostring(c.body), c.size}, "|")}`), ScriptOptions{MaxInput: 4})
	got, err := s.Run(context.Background(), Request{
		Method: "GET", Path: "/p", Query: "a=1", Key: "u-42", Region: "cloud",
		Headers: [][2]string{{"X-User-Id", "u-42"}},
		Cached:  &Entry{Status: 200, Header: [][2]string{{"ETag", `"v1"`}}, Body: []byte("too long for MaxInput")},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := `GET|/p|a=1|u-42|cloud|u-42|nil|200|"v1"|nil|21`
	if string(got.Body) != want {
		t.Fatalf("body %q, want %q", got.Body, want)
	}
}

// TestScriptSandbox tries the usual ways out of a Lua sandbox; each must fail the run.
func TestScriptSandbox(t *testing.T) {
	for _, escape := range []string{
		`os.exit(1)`,
		`os.execute("true")`,
		`io.open("/etc/passwd")`,
		`io.write("x")`,
		`require("os")`,
		`module("x")`,
		`load("return 1")()`,
		`loadstring("return 1")()`,
		`dofile("/etc/passwd")`,
		`loadfile("/etc/passwd")()`,
		`debug.getregistry()`,
		`package.loaded.os.exit(1)`,
		`getfenv(1).x = 1`,
		`setfenv(1, {})`,
		`collectgarbage()`,
		`coroutine.create(function() end)`,
		`channel.make()`,
		`print("x")`,
		`newproxy()`,
		`string.dump(function() end)`,
		`math.randomseed(1)`,
		`getmetatable("").__index.rep = function() end`,
		`getmetatable("").__index = nil`,
		`setmetatable("", {})`,
		`setmetatable(_G, {__index = function() end})`,
		`setmetatable(_G, nil)`,
		`rawget(getmetatable(_G), "__index").os.exit(1)`,
		`local s = "x"; s.rep = 1`,
		`local mt = getmetatable(string); mt.__index = nil`,
		`_GOPHER_LUA_VERSION:len()`,
	} {
		t.Run(escape, func(t *testing.T) {
			s := mustCompile(t, handler(escape+"\nreturn {status = 200}"), ScriptOptions{})
			_, err := s.Run(context.Background(), Request{})
			if !errors.Is(err, ErrScript) || strings.Contains(err.Error(), "budget") {
				t.Fatalf("escape ran: err = %v", err)
			}
		})
	}
}

// TestScriptIsolation checks that nothing one run assigns is seen by the next one on
// the same (pooled) state.
func TestScriptIsolation(t *testing.T) {
	s := mustCompile(t, `
local seen = tostring(count) .. "/" .. tostring(string.upper ~= nil) .. "/" .. tostring(string.extra)
count = (count or 0) + 1
_G.other = 1
string.upper = nil
rawset(string, "extra", 1)
table.insert = nil
return function(req)
  return {status = 200, body = seen}
end`, ScriptOptions{MaxConcurrent: 1})
	for i := range 5 {
		got, err := s.Run(context.Background(), Request{})
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if string(got.Body) != "nil/true/nil" {
			t.Fatalf("run %d saw %q from an earlier run", i, got.Body)
		}
	}
	if n := len(s.idle); n != 1 {
		t.Fatalf("%d idle states, want the one reused", n)
	}
}

func TestScriptTimeout(t *testing.T) {
	for _, body := range []string{
		`while true do end`,
		`repeat until false`,
		`local function f() return f() end return f()`,
		`while true do pcall(function() while true do end end) end`,
		`while true do xpcall(function() while true do end end, function() while true do end end) end`,
		// Patterns that backtrack for ages: the matcher checks the budget.
		`return string.find(string.rep("a", 5000), string.rep("a-", 20) .. "b")`,
		`return string.gsub(string.rep("a", 5000), string.rep("a*", 20) .. "b", "")`,
		`for w in string.gmatch(string.rep("a", 5000), string.rep("a-", 20) .. "b") do end`,
		// Sorting a large table with a comparator.
		`local t = {} for i = 1, 2e5 do t[i] = -i end while true do table.sort(t, function(a, b) return a < b end) end`,
	} {
		t.Run(body, func(t *testing.T) {
			s := mustCompile(t, handler(body), ScriptOptions{Timeout: 30 * time.Millisecond})
			_, err := s.Run(context.Background(), Request{})
			if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "budget") {
				t.Fatalf("err = %v, want ErrScript naming the budget", err)
			}
			if st := s.Stats(); st.Timeouts != 1 || st.Failures != 1 {
				t.Fatalf("stats %+v, want one timeout", st)
			}
			if len(s.idle) != 0 {
				t.Fatal("interrupted state went back to the pool")
			}
		})
	}
}

func TestScriptContextCanceled(t *testing.T) {
	s := mustCompile(t, handler(`while true do end`), ScriptOptions{Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(10 * time.Millisecond)
		cancel()
	}()
	if _, err := s.Run(ctx, Request{}); !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("err = %v, want ErrScript after cancel", err)
	}
}

// TestScriptMemoryBombs checks that scripts cannot build huge strings or stacks: the
// run fails, and the process did not allocate what was asked.
func TestScriptMemoryBombs(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`string.rep("x", 1e9)`, "string budget"},
		{`("x"):rep(1e9)`, "string budget"},
		{`string.rep("xy", 2^40)`, "string budget"},
		{`pcall(string.rep, "x", 1e9) return {status = 200, body = "x" .. "y"}`, "string budget"},
		{`local s = "x" while true do s = s .. s end`, "string budget"},
		{`local s = ("x"):rep(1e6) local t = s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s`, "string budget"},
		{`local t = {} for i = 1, 100 do t[i] = string.rep("x", 1e5) end for i = 1, 1e3 do table.concat(t) end`, "string budget"},
		{`string.gsub(string.rep("x", 1e5), "x", string.rep("y", 1e3))`, "string budget"},
		{`string.gsub(string.rep("x", 1e4), "x", function() return string.rep("y", 1e4) end)`, "string budget"},
		{`string.format("%099999d", 1)`, "invalid format"},
		{`string.format("%.1000f", 1)`, "invalid format"},
		{`local s = string.rep("x", 1e6) for i = 1, 1e3 do string.format("%s%s%s%s", s, s, s, s) end`, "string budget"},
		{`local s = string.rep("x", 1e6) for i = 1, 100 do s:upper() end`, "string budget"},
		{`unpack({}, 1, 1e8)`, "overflow"},
		{`string.byte(string.rep("x", 1e6), 1, -1)`, "overflow"},
		{`string.char(unpack({}, 1, 1e6))`, "overflow"},
		{`local function f() return 1 + f() end f()`, "overflow"},
		{`local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x`, "overflow"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			s := mustCompile(t, handler(tc.body), ScriptOptions{Timeout: 10 * time.Second})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := s.Run(context.Background(), Request{})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrScript with %q", err, tc.want)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 1<<30 {
				t.Fatalf("run allocated %d MiB", got>>20)
			}
		})
	}
}

func TestScriptErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		opt        ScriptOptions
		want       string // in the error message
	}{
		{"error call", `error("boom")`, ScriptOptions{}, "test.lua:2: boom"},
		{"index nil", `local x = nil
return x.y`, ScriptOptions{}, "test.lua:3:"},
		{"error with table", `error({})`, ScriptOptions{}, "table"},
		{"returns nil", `return nil`, ScriptOptions{}, "want a table"},
		{"returns string", `return "200 OK"`, ScriptOptions{}, "want a table"},
		{"status missing", `return {}`, ScriptOptions{}, "status is nil"},
		{"status as string", `return {status = "200"}`, ScriptOptions{}, `status is string "200"`},
		{"status fraction", `return {status = 200.5}`, ScriptOptions{}, "status is number 200.5"},
		{"status 1xx", `return {status = 101}`, ScriptOptions{}, "200..599"},
		{"status too big", `return {status = 600}`, ScriptOptions{}, "200..599"},
		{"headers not table", `return {status = 200, headers = "x"}`, ScriptOptions{}, "headers is"},
		{"header name with space", `return {status = 200, headers = {["Bad Name"] = "x"}}`, ScriptOptions{}, "not a valid token"},
		{"header name number", `return {status = 200, headers = {"x"}}`, ScriptOptions{}, "not a valid token"},
		{"header value CRLF", `return {status = 200, headers = {["X-A"] = "a\r\nSet-Cookie: x=1"}}`, ScriptOptions{}, "control characters"},
		{"header value table", `return {status = 200, headers = {["X-A"] = {}}}`, ScriptOptions{}, "control characters"},
		{"too many headers", `local h = {} for i = 1, 100 do h["X-" .. i] = "v" end return {status = 200, headers = h}`, ScriptOptions{}, "more than"},
		{"body table", `return {status = 200, body = {}}`, ScriptOptions{}, "body is table"},
		{"body too large", `return {status = 200, body = string.rep("x", 11)}`, ScriptOptions{MaxOutput: 10}, "exceeds"},
		{"concat nil", `return {status = 200, body = "x" .. nil}`, ScriptOptions{}, "concatenate a nil"},
		{"bad pattern", `string.find("x", "[a")`, ScriptOptions{}, "malformed pattern"},
		{"bad capture", `string.gsub("x", "x", "%2")`, ScriptOptions{}, "invalid capture index"},
		{"trailing percent", `string.gsub("x", "x", "a%")`, ScriptOptions{}, "invalid use of '%'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustCompile(t, handler(tc.body), tc.opt)
			_, err := s.Run(context.Background(), Request{})
			if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrScript containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "stack traceback") {
				t.Fatalf("error carries the Lua stack trace: %v", err)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"syntax error with line", "return function(req)\n  return {status = 200\nend", "test.lua line:3"},
		{"unterminated string", "return 'abc", "unterminated string"},
		{"returns a number", "return 42", "returned number, want a function"},
		{"returns nothing", "x = 1", "returned nil, want a function"},
		{"top-level error", "error('at load')", "at load"},
		{"top-level loop", "while true do end", "budget"},
		{"deep nesting", "return " + strings.Repeat("{", 5000) + strings.Repeat("}", 5000), "nested more than"},
		{"deep parentheses are fine", "return function() return " + strings.Repeat("(", 5000) + "1" + strings.Repeat(")", 5000) + " end", ""},
		{"too large", "return function() end --" + strings.Repeat("x", maxSourceBytes), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			budget := 10 * time.Second // generous unless the budget is the point
			if strings.Contains(tc.want, "budget") {
				budget = 20 * time.Millisecond
			}
			_, err := Compile("test.lua", tc.src, ScriptOptions{Timeout: budget})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrScript containing %q", err, tc.want)
			}
		})
	}
}

// TestScriptLibrary checks the replaced library functions and the compiled `..`
// against Lua 5.1's results.
func TestScriptLibrary(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		// `..`
		{`1 .. 2`, "12"},
		{`"a" .. 1.5 .. "b"`, "a1.5b"},
		{`"x" .. (function() return "a", "b" end)()`, "xa"},
		{`(function() return "a", "b" end)() .. "y"`, "ay"},
		{`(function(...) return "<" .. ... .. ">" end)("a", "b")`, "<a>"},
		{`setmetatable({}, {__concat = function(a, b) return "T" end}) .. "x"`, "T"},
		// Right-associative: t .. "y" first, then "x" .. that.
		{`"x" .. setmetatable({}, {__concat = function(a, b) return "T" .. type(a) .. type(b) end}) .. "y"`, "xTtablestring"},
		{`setmetatable({}, {__concat = function(a, b) return type(a) .. type(b) end}) .. 1`, "tablenumber"},
		// find / match / gmatch
		{`string.find("hello world", "o w")`, "5 7"},
		{`string.find("hello", "l+")`, "3 4"},
		{`string.find("hello", "xyz")`, "nil"},
		{`string.find("a.b", ".", 1, true)`, "2 2"},
		{`string.find("a.b", "%.")`, "2 2"},
		{`string.find("abc", "b", -1)`, "nil"},
		{`string.find("abc", "", 10)`, "4 3"},
		{`string.find("key=val", "(%w+)=(%w+)")`, "1 7 key val"},
		{`string.match("key=val", "(%w+)=(%w+)")`, "key val"},
		{`string.match("hello", "()ll()")`, "3 5"},
		{`string.match("  trim  ", "^%s*(.-)%s*$")`, "trim"},
		{`string.match("f(a(b)c)d", "%b()")`, "(a(b)c)"},
		{`string.match("x = 10", "^(%a+)%s*=%s*(%d+)$")`, "x 10"},
		{`string.match("abab", "(ab)%1")`, "ab"},
		{`string.match("[x]", "[%[]")`, "["},
		{`string.match("a]b", "[]]")`, "]"},
		{`string.match("A-Z", "[A%-Z]+")`, "A-Z"},
		{`string.match("hello", "[^aeiou]+")`, "h"},
		{`string.match("2026", "%d%d?%d?%d?$")`, "2026"},
		{`string.match("THE (quick) fox", "%f[%a]%a+", 5)`, "quick"},
		{`string.match("abc", "^b")`, "nil"},
		{`string.match("a$", "a$")`, "nil"},
		{`string.match("a$b", "a$b")`, "a$b"},
		{`(function() local t = {} for w in ("one two  three"):gmatch("%a+") do t[#t+1] = w end return table.concat(t, ",") end)()`, "one,two,three"},
		{`(function() local t = {} for k, v in ("a=1, b=2"):gmatch("(%w+)=(%w+)") do t[#t+1] = k .. v end return table.concat(t, ",") end)()`, "a1,b2"},
		{`(function() local n = 0 for _ in ("abc"):gmatch("") do n = n + 1 end return n end)()`, "4"},
		// gsub
		{`string.gsub("hello world", "o", "0")`, "hell0 w0rld 2"},
		{`string.gsub("abc", "", "-")`, "-a-b-c- 4"},
		{`string.gsub("hello world", "(%w+)", "<%1>")`, "<hello> <world> 2"},
		{`string.gsub("hello", "l", {l = "L"})`, "heLLo 2"},
		{`string.gsub("hello", "(h)(e)", {h = "H"})`, "Hllo 1"},
		{`string.gsub("abc", "%w", function(c) return c:upper() .. "." end)`, "A.B.C. 3"},
		{`string.gsub("abc", "%w", function(c) if c == "b" then return false end end)`, "abc 3"},
		{`string.gsub("abc", "%w", "%0%0")`, "aabbcc 3"},
		{`string.gsub("abc", "b", "%%")`, "a%c 1"},
		{`string.gsub("aaa", "a", "b", 2)`, "bba 2"},
		{`string.gsub("hello", "^h", "H")`, "Hello 1"},
		{`string.gsub("hello", "^l", "L")`, "hello 0"},
		{`string.gsub("THE (quick) fox", "%f[%a]%a+", "W")`, "W (W) W 3"},
		{`string.gsub("x", "x", 5)`, "5 1"},
		{`string.gsub("abc", ".", {a = 1, b = true and "B"})`, "1Bc 3"},
		// other bounded functions
		{`string.rep("ab", 3)`, "ababab"},
		{`string.rep("ab", 0)`, ""},
		{`string.format("%5.2f|%d|%s|%x|%-3s|%%", 3.14159, 42, "hi", 255, "a")`, " 3.14|42|hi|ff|a  |%"},
		{`string.format("%s %s", 1, "x")`, "1 x"},
		{`("Hello, Wörld"):upper()`, "HELLO, WöRLD"},
		{`("Hello"):lower()`, "hello"},
		{`("Hello"):reverse()`, "olleH"},
		{`string.char(72, 105)`, "Hi"},
		{`table.concat({1, 2, 3}, ",")`, "1,2,3"},
		{`table.concat({1, 2, 3}, ",", 2, 3)`, "2,3"},
		{`table.concat({})`, ""},
		{`(function() local t = {3, 1, 2} table.sort(t) return table.concat(t) end)()`, "123"},
		{`(function() local t = {"b", "c", "a"} table.sort(t, function(a, b) return a > b end) return table.concat(t) end)()`, "cba"},
		{`type(string.len) .. type(math.floor) .. type(table.insert) .. type(pairs) .. type(pcall)`, "functionfunctionfunctionfunctionfunction"},
		{`_G == _G._G`, "true"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			s := mustCompile(t, `
local function pack(...)
  local t = {}
  for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
  return table.concat(t, " ")
end
return function(req) return {status = 200, body = pack(`+tc.expr+`)} end`, ScriptOptions{})
			got, err := s.Run(context.Background(), Request{})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if string(got.Body) != tc.want {
				t.Fatalf("%s = %q, want %q", tc.expr, got.Body, tc.want)
			}
		})
	}
}

// TestScriptStateReuse checks that a failed run's state is discarded and a clean
// run's state is reused.
func TestScriptStateReuse(t *testing.T) {
	s := mustCompile(t, handler(`if req.path == "/fail" then error("x") end return {status = 200}`),
		ScriptOptions{MaxConcurrent: 1})
	steps := []struct {
		path     string
		wantErr  bool
		wantIdle int
	}{
		{"/ok", false, 1},
		{"/fail", true, 0},
		{"/ok", false, 1},
		{"/ok", false, 1},
	}
	for i, step := range steps {
		_, err := s.Run(context.Background(), Request{Path: step.path})
		if (err != nil) != step.wantErr {
			t.Fatalf("step %d: err = %v", i, err)
		}
		if n := len(s.idle); n != step.wantIdle {
			t.Fatalf("step %d: %d idle states, want %d", i, n, step.wantIdle)
		}
	}
}

func TestScriptConcurrent(t *testing.T) {
	s := mustCompile(t, handler(`return {status = 200, body = req.key .. ":" .. (req.cached and req.cached.body or "")}`),
		ScriptOptions{MaxConcurrent: 2, Timeout: 5 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				key := fmt.Sprintf("u-%d-%d", g, i)
				got, err := s.Run(context.Background(), Request{Key: key, Cached: &Entry{Status: 200, Body: []byte("b")}})
				if err == nil && string(got.Body) != key+":b" {
					err = fmt.Errorf("got %q for %s", got.Body, key)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := s.Stats(); st.Runs != 200 || st.Failures != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestScriptAbandonsStuckRun checks the backstop: a run stuck in Go code that ignores
// the context is given up on at the budget, counted as stuck until it ends, and its
// state is not reused. The stuck function is a test stand-in installed in the pooled
// state; every library function a script can call is bounded.
func TestScriptAbandonsStuckRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustCompile(t, handler(`stuck() return {status = 200}`), ScriptOptions{MaxConcurrent: 1, Timeout: 30 * time.Millisecond})
		st := <-s.idle
		st.base.RawSetString("stuck", st.L.NewFunction(func(*lua.LState) int {
			time.Sleep(time.Second)
			return 0
		}))
		s.idle <- st

		_, err := s.Run(context.Background(), Request{})
		if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "did not stop") {
			t.Fatalf("err = %v, want ErrScript for a run that did not stop", err)
		}
		if got := s.Stats(); got.Stuck != 1 || got.Timeouts != 1 {
			t.Fatalf("stats %+v, want one stuck run", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := s.Stats(); got.Stuck != 0 {
			t.Fatalf("stats %+v after the stuck run ended", got)
		}
		if len(s.idle) != 0 || len(s.slots) != 0 {
			t.Fatalf("abandoned state reused (%d idle) or slot kept (%d)", len(s.idle), len(s.slots))
		}
	})
}

// TestScriptSlotsExhausted checks that a run waiting for a slot gives up with the
// budget instead of queueing forever.
func TestScriptSlotsExhausted(t *testing.T) {
	s := mustCompile(t, handler(`return {status = 200}`), ScriptOptions{MaxConcurrent: 1, Timeout: 20 * time.Millisecond})
	s.slots <- struct{}{} // hold the only slot
	_, err := s.Run(context.Background(), Request{})
	<-s.slots
	if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "no Lua state free") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzScript(f *testing.F) {
	for _, seed := range []string{
		handler(`return {status = 200, body = "ok"}`),
		handler(`return {status = 200, body = (req.cached and req.cached.body or ""):gsub("a", "%0%0")}`),
		handler(`local t = {} for w in ("a b c"):gmatch("%a") do t[#t+1] = w end return {status = 200, body = table.concat(t)}`),
		handler(`return {status = 200, body = string.format("%5.1f", 1.25) .. string.rep("x", 3)}`),
		handler(`while true do end`),
		handler(`os.exit(1)`),
		`return function(req) return setmetatable({}, {__index = function() return 200 end}) end`,
		`return`,
		`x = = 1`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		opt := ScriptOptions{Timeout: 20 * time.Millisecond, MaxAlloc: 1 << 20, MaxConcurrent: 1}
		s, err := Compile("fuzz.lua", src, opt)
		if err != nil {
			if !errors.Is(err, ErrScript) {
				t.Fatalf("Compile error %v does not wrap ErrScript", err)
			}
			return
		}
		resp, err := s.Run(context.Background(), Request{Method: "GET", Path: "/", Cached: &Entry{Status: 200, Body: []byte("abc")}})
		if err != nil {
			if !errors.Is(err, ErrScript) {
				t.Fatalf("Run error %v does not wrap ErrScript", err)
			}
			return
		}
		if resp.Status < 200 || resp.Status > 599 || len(resp.Body) > DefaultMaxOutput {
			t.Fatalf("invalid response accepted: %d, %d bytes", resp.Status, len(resp.Body))
		}
	})
}

func BenchmarkScriptRun(b *testing.B) {
	s := mustCompile(b, `
return function(req)
  if req.cached then
    return {status = 200, body = req.cached.body, headers = {["content-type"] = "application/json", ["x-stale"] = "1"}}
  end
  return {status = 503, body = "unavailable"}
end`, ScriptOptions{})
	req := Request{Method: "GET", Path: "/api/feed", Query: "page=1", Key: "u-1", Region: "cloud",
		Headers: [][2]string{{"X-User-Id", "u-1"}},
		Cached:  &Entry{Status: 200, Header: [][2]string{{"Content-Type", "application/json"}}, Body: make([]byte, 2048), Stored: time.Now()}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Run(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
