package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
	"github.com/shiftgate/shiftgate/proxy"
)

// TestExitCodes holds every verb to one rule: 0 done (and -h), 1 refused or failed,
// 2 a mistake in the command line; and -h names the verb's positional arguments.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("state_dir: ./state\nregions:\n  idc: { upstreams: [\"127.0.0.1:1\"] }\n  cloud: { upstreams: [\"127.0.0.1:2\"] }\n"+
		"split: { from: idc, to: cloud, salt: s }\nadmin: { listen: \""+freeAddr(t)+"\" }\nroutes:\n  - name: feed\n    match: { path_prefix: / }\n    percent: 5\n"), 0o644)
	dead := "http://" + freeAddr(t) // nothing listens there
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("admin: { listen: \""+strings.TrimPrefix(dead, "http://")+"\" }\nregions: {}\nroutes: []\n"), 0o644)
	urls := filepath.Join(dir, "urls.txt")
	os.WriteFile(urls, []byte("/a\n"), 0o644)
	// A file the gateway would refuse (a certificate that is not there): admin verbs
	// still take the admin address from it and go to the running gateway.
	refused := filepath.Join(dir, "refused.yaml")
	os.WriteFile(refused, []byte("admin: { listen: \""+strings.TrimPrefix(dead, "http://")+"\" }\nregions:\n  idc: { upstreams: [\"127.0.0.1:1\"], tls: { cert_file: gone.crt, key_file: gone.key } }\n"), 0o644)

	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout or stderr
	}{
		// -h: exit 0, the usage with the positional arguments named.
		{[]string{"serve", "-h"}, 0, "usage: shiftgate serve -config FILE"},
		{[]string{"check", "-h"}, 0, "usage: shiftgate check -config FILE"},
		{[]string{"route", "-h"}, 0, "METHOD PATH"},
		{[]string{"bucket", "-h"}, 0, "usage: shiftgate bucket -salt S KEY..."},
		{[]string{"split", "-h"}, 0, "ROUTE PERCENT [ROUTE PERCENT]..."},
		{[]string{"split", "-h"}, 0, "shiftgate split -clear ROUTE..."},
		{[]string{"rollback", "-h"}, 0, "usage: shiftgate rollback [-ramp DURATION] [-local] on|off"},
		{[]string{"status", "-h"}, 0, "usage: shiftgate status [-json] [-fleet]"},
		{[]string{"warm", "-h"}, 0, "URLS.txt"},
		{[]string{"version", "-h"}, 0, "usage: shiftgate version"},
		{[]string{"diff", "-h"}, 0, "usage: shiftgate diff"},
		{[]string{"limit", "-h"}, 0, "-admin"},
		{[]string{"budget", "-h"}, 0, "-admin"},
		{[]string{"cutoff", "-h"}, 0, "on|off"},
		{[]string{"vectors", "-h"}, 0, "usage: shiftgate vectors"},
		{[]string{"plan", "-h"}, 0, "usage: shiftgate plan [-admin URL] start|pause|resume|abort ROUTE"},
		{[]string{"plan", "-h"}, 0, "-admin"},
		{[]string{"plan", "status", "-h"}, 0, "-history"},
		{[]string{"plan", "start", "-h"}, 0, "-admin"},
		{[]string{"loadtest", "-replay", "access.log", "-h"}, 0, "-target"},
		{[]string{"diff", "-nope"}, 2, "flag provided but not defined"},
		{[]string{"plan", "status", "-nope"}, 2, "flag provided but not defined"},
		{[]string{"demo", "-h"}, 0, "usage: shiftgate demo"},
		{[]string{"loadtest", "-h"}, 0, "usage: shiftgate loadtest [flags] URL"},
		{[]string{"loadtest", "-drill", "-h"}, 0, "usage: shiftgate loadtest -drill"},
		{[]string{"backend", "-h"}, 0, "-listen"},
		{[]string{"help"}, 0, "shiftgate VERB -h"},
		{[]string{"version"}, 0, "shiftgate "},
		{[]string{"bucket", "-salt", "cutover-2026", "42"}, 0, "42\t2799"},
		{[]string{"check", "-config", good}, 0, "ok: 2 regions, 1 routes"},
		{[]string{"route", "-config", good, "GET", "/"}, 0, "region"},

		// Usage mistakes: exit 2.
		{nil, 2, "shiftgate moves users"},
		{[]string{"nope"}, 2, `unknown verb "nope"`},
		{[]string{"serve"}, 2, "-config FILE is required"},
		{[]string{"serve", "-config", good, "extra"}, 2, "takes no arguments"},
		{[]string{"check"}, 2, "-config FILE is required"},
		{[]string{"check", "-nope"}, 2, "flag provided but not defined"},
		{[]string{"route", "-config", good, "GET"}, 2, "missing arguments"},
		{[]string{"route", "GET", "/"}, 2, "-config FILE is required"},
		{[]string{"route", "-config", good, "GET", "nopath"}, 2, "path must start with /"},
		{[]string{"bucket", "-salt", "s"}, 2, "missing arguments"},
		{[]string{"split"}, 2, "missing arguments"},
		{[]string{"split", "feed"}, 2, "want ROUTE PERCENT pairs"},
		{[]string{"split", "feed", "abc"}, 2, `route feed: percent: want 0..100 with at most two decimals, got "abc"`},
		{[]string{"split", "feed", "5o"}, 2, `route feed: percent: want 0..100 with at most two decimals, got "5o"`},
		{[]string{"split", "-writes", "x", "feed", "5"}, 2, `-writes: want 0..100 with at most two decimals, got "x"`},
		{[]string{"split", "feed", "5", "feed", "6"}, 2, "named twice"},
		{[]string{"split", "-clear", "-force", "feed"}, 2, "-clear takes route names only"},
		{[]string{"split", "-admin", "notaurl", "feed", "5"}, 2, "-admin: want a URL"},
		{[]string{"rollback"}, 2, "missing arguments"},
		{[]string{"rollback", "sideways"}, 2, `want on or off, got "sideways"`},
		{[]string{"rollback", "on", "now"}, 2, "too many arguments"},
		{[]string{"status", "extra"}, 2, "takes no arguments"},
		{[]string{"status", "-admin", "ftp://x"}, 2, "-admin: want a URL"},
		{[]string{"warm", "-config", good}, 2, "missing arguments"},
		{[]string{"version", "x"}, 2, "takes no arguments"},
		{[]string{"demo", "x"}, 2, "takes no arguments"},
		{[]string{"loadtest", "-drill", "x"}, 2, "takes no arguments"},
		// A -ramp typo is the command line's, whether or not a gateway answers.
		{[]string{"rollback", "-ramp", "abc", "off"}, 2, `-ramp: want a duration up to 24h such as 10m, got "abc"`},
		{[]string{"rollback", "-admin", dead, "-ramp", "25h", "off"}, 2, `-ramp: want a duration up to 24h`},
		{[]string{"rollback", "-ramp", "10m", "on"}, 2, "-ramp applies to turning rollback off"},
		{[]string{"limit", "-admin", dead, "-ramp", "abc", "site", "100"}, 2, `-ramp: want a duration up to 24h such as 10m, got "abc"`},
		{[]string{"budget", "-admin", dead, "-ramp", "-1m", "idc", "cloud", "1Gbit"}, 2, `-ramp: want a duration up to 24h`},
		{[]string{"plan"}, 2, "want a sub-verb"},
		{[]string{"plan", "sideways", "feed"}, 2, `unknown sub-verb "sideways"`},
		{[]string{"plan", "start"}, 2, "want one ROUTE"},
		{[]string{"plan", "status", "feed"}, 2, "takes no argument"},

		// Refused or failed: exit 1.
		{[]string{"check", "-config", broken}, 1, "at least one region"},
		{[]string{"check", "-config", filepath.Join(dir, "missing.yaml")}, 1, "no such file"},
		{[]string{"route", "-config", broken, "GET", "/"}, 1, "at least one region"},
		{[]string{"split", "-config", broken, "feed", "5"}, 1, "admin API at " + dead}, // the gateway, not the file, decides
		{[]string{"split", "-admin", dead, "feed", "5"}, 1, "admin API at"},
		{[]string{"split", "-admin", dead, "feed", "50%"}, 1, "admin API at"}, // a percent sign is fine
		{[]string{"split", "-admin", dead, "-clear", "feed"}, 1, "admin API at"},
		{[]string{"rollback", "-admin", dead, "on"}, 1, "admin API at"},
		{[]string{"status", "-admin", dead}, 1, "admin API at"},
		// plan's flags go before its sub-verb as every verb's do, or after it.
		{[]string{"plan", "-admin", dead, "status"}, 1, "admin API at"},
		{[]string{"plan", "-admin", dead, "start", "feed"}, 1, "admin API at"},
		{[]string{"plan", "status", "-admin", dead}, 1, "admin API at"},
		{[]string{"status", "-config", good}, 1, "admin API at"},
		{[]string{"status", "-config", refused}, 1, "admin API at " + dead},
		{[]string{"rollback", "-config", refused, "on"}, 1, "admin API at " + dead},
		{[]string{"warm", "-config", good, urls}, 1, `route "feed" has no fallback cache`},
	} {
		code, out, errs := runCLI(tc.args...)
		if code != tc.code || !strings.Contains(out+errs, tc.want) {
			t.Errorf("shiftgate %s: exit %d, %q; want %d with %q", strings.Join(tc.args, " "), code, out+errs, tc.code, tc.want)
		}
		if strings.Contains(errs, "json:") || strings.Contains(errs, "invalid number literal") {
			t.Errorf("shiftgate %s: answered with a JSON library's message: %q", strings.Join(tc.args, " "), errs)
		}
	}
	// route only reads: the state_dir it names is not created.
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Errorf("route created the state directory (%v)", err)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI("version")
	if code != 0 || !strings.HasPrefix(out, "shiftgate ") || !strings.Contains(out, runtime.Version()) || !strings.Contains(out, "commit ") {
		t.Errorf("version: %d %q", code, out)
	}
	code, out, _ = runCLI("version", "-json")
	if code != 0 || !strings.Contains(out, `"go_version":"`+runtime.Version()) || !strings.Contains(out, `"commit":`) {
		t.Errorf("version -json: %d %q", code, out)
	}
}

// TestSplitOverrideLifecycle drives an override through the CLI: status shows the
// file's split, the override and which is in force; a split that moves users back is
// refused (exit 1) unless -force; -clear gives the route back to the file.
func TestSplitOverrideLifecycle(t *testing.T) {
	s := startServe(t)
	admin := "http://" + s.admin
	row := func() []string {
		t.Helper()
		code, out, errs := runCLI("status", "-admin", admin)
		if code != 0 {
			t.Fatalf("status: %d %s", code, errs)
		}
		if !regexp.MustCompile(`ROUTE +FROM->TO +FILE +OVERRIDE +SOURCE +IN EFFECT`).MatchString(out) || !strings.Contains(out, "shiftgate ") {
			t.Fatalf("status header:\n%s", out)
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == "feed" {
				return f
			}
		}
		t.Fatalf("no feed row in\n%s", out)
		return nil
	}
	if f := row(); f[2] != "25/5" || f[3] != "-" || f[4] != "file" || f[5] != "25/5" {
		t.Fatalf("before any split: %v", f)
	}
	if code, out, errs := runCLI("split", "-admin", admin, "feed", "50"); code != 0 || !strings.Contains(out, "now 50% (writes 5%)") {
		t.Fatalf("split feed 50: %d %q %q", code, out, errs)
	}
	if f := row(); f[2] != "25/5" || f[3] != "50/5" || f[4] != "override" || f[5] != "50/5" {
		t.Fatalf("after split feed 50: %v", f)
	}
	code, out, errs := runCLI("split", "-admin", admin, "feed", "10")
	if code != 1 || !strings.Contains(errs, "moves 40.00% of users' reads") || !strings.Contains(errs, "rollback") {
		t.Fatalf("split feed 10 after 50: %d %q %q", code, out, errs)
	}
	if f := row(); f[3] != "50/5" {
		t.Fatalf("a refused split changed the override: %v", f)
	}
	if code, out, errs := runCLI("split", "-admin", admin, "-force", "feed", "10"); code != 0 || !strings.Contains(out, "forced: users moved back (audited)") {
		t.Fatalf("split -force feed 10: %d %q %q", code, out, errs)
	}
	if code, out, errs := runCLI("split", "-admin", admin, "-clear", "feed"); code != 0 || !strings.Contains(out, "route feed: override cleared") {
		t.Fatalf("split -clear feed: %d %q %q", code, out, errs)
	}
	if f := row(); f[2] != "25/5" || f[3] != "-" || f[4] != "file" || f[5] != "25/5" {
		t.Fatalf("after -clear: %v", f)
	}
	if code, _, errs := runCLI("split", "-admin", admin, "-clear", "feed"); code != 1 || !strings.Contains(errs, "has no override to clear") {
		t.Fatalf("clearing twice: %d %q", code, errs)
	}
}

// TestReadmeExamples runs the README's CLI example as written against a gateway
// serving the reference config (on free ports: admin verbs get -admin).
func TestReadmeExamples(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	i := strings.Index(text, "Example, against a gateway\nserving the reference config:")
	if i < 0 {
		i = strings.Index(text, "Example, against a gateway serving the reference config:")
	}
	if i < 0 {
		t.Fatal("README has no CLI example against the reference config")
	}
	block := text[i:]
	block = block[strings.Index(block, "```sh\n")+6:]
	block = block[:strings.Index(block, "```")]

	ref, err := os.ReadFile("../shared/examples/cutover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fb, _ := os.ReadFile("../shared/examples/feed-fallback.json")
	os.WriteFile(filepath.Join(dir, "feed-fallback.json"), fb, 0o644)
	admin := freeAddr(t)
	cfg := strings.NewReplacer("listen: 127.0.0.1:8080", "listen: "+freeAddr(t), "listen: 127.0.0.1:9090", "listen: "+admin).Replace(string(ref))
	path := filepath.Join(dir, "cutover.yaml")
	os.WriteFile(path, []byte(cfg), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan *proxy.Server, 1)
	go func() { done <- serve(ctx, path, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	defer func() { cancel(); <-done }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}

	n := 0
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		args := shellWords(line)
		if len(args) == 0 {
			continue
		}
		if args[0] != "shiftgate" {
			t.Fatalf("example line %q does not run shiftgate", line)
		}
		args = args[1:]
		switch args[0] {
		case "split", "rollback", "status":
			args = append([]string{args[0], "-admin", "http://" + admin}, args[1:]...)
		}
		n++
		if code, out, errs := runCLI(args...); code != 0 {
			t.Errorf("README example %q: exit %d\n%s%s", strings.TrimSpace(line), code, out, errs)
		}
	}
	if n < 5 {
		t.Errorf("only %d example lines ran", n)
	}
}

// shellWords splits a command line as a shell would for the README's examples:
// spaces separate words, single quotes group them.
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, in := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// TestStatusShowsStaleOverrides: an override for a route the config does not have (a
// typo written straight to etcd, a route since removed) is listed by `status`, with
// the way to drop it.
func TestStatusShowsStaleOverrides(t *testing.T) {
	s := startServe(t)
	ov := s.srv.Overrides()
	ov.Routes = map[string]conf.RouteOverride{"fead": {PercentBP: 7000, WritePercentBP: 7000}}
	ov.Revision++
	if err := s.srv.ApplyOverrides(ov); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("status", "-admin", "http://"+s.admin)
	if code != 0 || !strings.Contains(out, "STALE OVERRIDES") || !strings.Contains(out, "fead") {
		t.Errorf("status: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI("split", "-admin", "http://"+s.admin, "-clear", "fead"); code != 0 {
		t.Fatalf("split -clear fead: %d %s%s", code, out, errs)
	}
	if _, out, _ := runCLI("status", "-admin", "http://"+s.admin); strings.Contains(out, "STALE") {
		t.Errorf("still stale after -clear:\n%s", out)
	}
}

// TestSplitClearUnpersisted: a clear that is in force but that state_dir did not take
// exits 3 with the warning every other lever gives, so a script knows a restart would
// bring the override back. Before, it exited 0 and said nothing.
func TestSplitClearUnpersisted(t *testing.T) {
	s := startServe(t)
	admin := "http://" + s.admin
	if code, out, errs := runCLI("split", "-admin", admin, "feed", "50"); code != 0 {
		t.Fatalf("split feed 50: %d %q %q", code, out, errs)
	}
	// The overrides file becomes a directory: a path no one can write, root included.
	path := filepath.Join(filepath.Dir(s.path), "state", store.OverridesFile)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("split", "-admin", admin, "-clear", "feed")
	if code != 3 || !strings.Contains(out, "route feed: override cleared") || !strings.Contains(errs, "IN FORCE but NOT PERSISTED") {
		t.Fatalf("split -clear with state_dir unwritable: exit %d %q %q; want 3 and the warning", code, out, errs)
	}
	if _, ok := s.srv.Overrides().Routes["feed"]; ok {
		t.Error("the clear is not in force")
	}
}
