package fallback

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// patternProbe runs every pattern function on (s, p, r) and joins the results; an
// error shows as "ERR" or, with detail, as its message.
const patternProbe = `
local function pack(...) local t = {} for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end return table.concat(t, ",") end
local function try(f)
  local ok, r = pcall(f)
  if ok then return r end
  if detail then return "ERR " .. tostring(r) end
  return "ERR"
end
function probe(s, p, r)
  local out = {}
  out[#out+1] = try(function() return pack(string.find(s, p)) end)
  out[#out+1] = try(function() return pack(string.find(s, p, 2)) end)
  out[#out+1] = try(function() return pack(string.match(s, p)) end)
  out[#out+1] = try(function() return pack(string.gsub(s, p, r)) end)
  out[#out+1] = try(function() return pack(string.gsub(s, p, r, 1)) end)
  out[#out+1] = try(function()
    local t, n = {}, 0
    for a, b in string.gmatch(s, p) do n = n + 1 if n > 50 then break end t[#t+1] = pack(a, b) end
    return table.concat(t, ";")
  end)
  return table.concat(out, "|")
end
`

func luaQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "\\%d", s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// TestPatternsMatchLua51 compares the pattern functions with the reference Lua 5.1
// interpreter on random patterns and subjects, when lua5.1 is installed.
func TestPatternsMatchLua51(t *testing.T) {
	lua51, err := exec.LookPath("lua5.1")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("lua5.1 not installed: CI installs it (apt-get install lua5.1)")
		}
		t.Skip("lua5.1 not installed")
	}
	rng := rand.New(rand.NewSource(51))
	atoms := []string{"a", "b", ".", "%a", "%d", "%s", "%w", "%u", "%l", "%p", "%c", "%x", "%A", "%S", "%z",
		"[ab]", "[^a]", "[a-c]", "[%]]", "[]]", "[^%a%d]", "%b()", "%f[%w]", "(", ")", "()", "(a)", "(%a+)",
		"(.-)", "%1", "%2", "^", "$", "*", "+", "-", "?", "%%", "x", "[%d]", "[", "%"}
	chars := []string{"a", "b", "c", "1", " ", "(", ")", "x", "%", "A", "Z", ".", "\x00", "]", "[", "\t", "ab"}
	// Not "%": Lua 5.1 appends the C string's terminating NUL for a trailing '%',
	// where these functions raise an error (as Lua 5.2 does).
	repls := []string{"", "-", "%0", "%1", "<%0>", "%%", "x%2", "%a"}
	const n = 5000
	cases := make([][3]string, n)
	var prog strings.Builder
	prog.WriteString(patternProbe)
	for i := range cases {
		var p, s strings.Builder
		for j := rng.Intn(8); j >= 0; j-- {
			p.WriteString(atoms[rng.Intn(len(atoms))])
		}
		for j := rng.Intn(20); j >= 0; j-- {
			s.WriteString(chars[rng.Intn(len(chars))])
		}
		cases[i] = [3]string{s.String(), p.String(), repls[rng.Intn(len(repls))]}
		fmt.Fprintf(&prog, "io.write(probe(%s, %s, %s), \"\\n\")\n", luaQuote(cases[i][0]), luaQuote(cases[i][1]), luaQuote(cases[i][2]))
	}
	file := filepath.Join(t.TempDir(), "probe.lua")
	if err := os.WriteFile(file, []byte(prog.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(lua51, file).Output()
	if err != nil {
		t.Fatalf("lua5.1: %v", err)
	}
	want := strings.Split(string(out), "\n")
	s := mustCompile(t, patternProbe+handler(`return {status = 200, body = probe(req.headers.s, req.headers.p, req.headers.r)}`), ScriptOptions{})
	for i, c := range cases {
		got, err := s.Run(context.Background(), Request{Headers: [][2]string{{"s", c[0]}, {"p", c[1]}, {"r", c[2]}}})
		if err != nil {
			t.Fatalf("s=%q p=%q r=%q: %v", c[0], c[1], c[2], err)
		}
		if string(got.Body) != want[i] {
			t.Errorf("s=%q p=%q r=%q\n got %s\nwant %s", c[0], c[1], c[2], got.Body, want[i])
		}
	}
}

// FuzzPattern feeds arbitrary subjects, patterns and replacements to the pattern
// functions: errors are fine, Go runtime panics (recovered by the VM) are bugs.
func FuzzPattern(f *testing.F) {
	f.Add("hello world", "(%w+)", "<%1>")
	f.Add("f(a(b)c)d", "%b()", "%0")
	f.Add("THE (quick) fox", "%f[%a]%a+", "W")
	f.Add("c)", "()%1(%1a[a-c]", "x")
	s := mustCompile(f, "detail = true\n"+patternProbe+handler(`return {status = 200, body = probe(req.headers.s, req.headers.p, req.headers.r)}`),
		ScriptOptions{MaxConcurrent: 1, Timeout: time.Second})
	f.Fuzz(func(t *testing.T, subject, pattern, repl string) {
		got, err := s.Run(context.Background(), Request{Headers: [][2]string{{"s", subject}, {"p", pattern}, {"r", repl}}})
		if err != nil {
			if strings.Contains(err.Error(), "budget") { // a pattern that backtracks for long
				return
			}
			t.Fatalf("probe failed: %v", err)
		}
		if strings.Contains(string(got.Body), "runtime error") {
			t.Fatalf("Go panic inside a pattern function: %s", got.Body)
		}
	})
}
