package clientcfg

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The SDKs live next to the vectors; the cross-checks run them on many more inputs
// than the vectors hold.
const (
	jsDir   = "../../clients/js"
	javaDir = "../../clients/java"
)

// crossCheckKeys is how many random (salt, key) pairs each SDK must agree on.
const crossCheckKeys = 100_000

type crossInput struct {
	Cases [][2]string `json:"cases"`
	IPs   []string    `json:"ips"`
}

type crossOutput struct {
	Buckets []int    `json:"buckets"`
	IPs     []string `json:"ips"`
}

// crossCheckInput draws keys from every part of Unicode that hashing could get wrong
// (multi-byte, astral, combining, control), salts likewise, and address spellings.
// The seed is fixed, so a failure repeats.
func crossCheckInput() (crossInput, crossOutput) {
	rng := rand.New(rand.NewPCG(20260501, 42))
	in := crossInput{Cases: make([][2]string, crossCheckKeys)}
	want := crossOutput{Buckets: make([]int, crossCheckKeys)}
	salts := []string{ContractSalt, "", "迁移-2026", "s\x00alt"}
	for i := range in.Cases {
		salt := salts[rng.IntN(len(salts))]
		if rng.IntN(10) == 0 {
			salt = randomKey(rng, 30)
		}
		n := rng.IntN(40)
		switch rng.IntN(20) {
		case 0:
			n = rng.IntN(2000)
		case 1, 2:
			n = 28 + rng.IntN(10) // around the 32-byte stripe
		}
		key := randomKey(rng, n)
		in.Cases[i] = [2]string{salt, key}
		want.Buckets[i] = Bucket(salt, key)
	}
	for range 20_000 {
		s := randomIPSpelling(rng)
		in.IPs = append(in.IPs, s)
		want.IPs = append(want.IPs, IPKey(s))
	}
	return in, want
}

// randomKey returns n runes from a mix of scripts; Go strings from runes are valid
// UTF-8, as every SDK string is.
func randomKey(rng *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		var r rune
		switch rng.IntN(10) {
		case 0, 1, 2, 3:
			r = rune(0x20 + rng.IntN(0x5f)) // printable ASCII
		case 4:
			r = rune(rng.IntN(0x20)) // controls, NUL
		case 5:
			r = rune(0xa0 + rng.IntN(0x60)) // Latin-1
		case 6:
			r = rune(0x300 + rng.IntN(0x70)) // combining marks
		case 7:
			r = rune(0x4e00 + rng.IntN(0x5200)) // CJK
		case 8:
			r = rune(0x1f300 + rng.IntN(0x700)) // emoji, astral
		default:
			r = rune(rng.IntN(0x110000))
			if r >= 0xd800 && r <= 0xdfff {
				r = 0xfffd
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

// needTool returns the path of a tool, skipping the test when it is missing, except
// under CI=true, where a missing SDK toolchain must fail the build.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required when CI=true: %v", name, err)
		}
		t.Skipf("%s not found; the cross-check runs where it is (and always under CI=true)", name)
	}
	return p
}

// runCrossCheck writes the input, runs the SDK's cross-check program on it and
// compares every answer.
func runCrossCheck(t *testing.T, run func(ctx context.Context, input string) *exec.Cmd) {
	in, want := crossCheckInput()
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := run(ctx, path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.String())
	}
	var got crossOutput
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output: %v", err)
	}
	if len(got.Buckets) != len(want.Buckets) || len(got.IPs) != len(want.IPs) {
		t.Fatalf("got %d buckets and %d ips, want %d and %d", len(got.Buckets), len(got.IPs), len(want.Buckets), len(want.IPs))
	}
	bad := 0
	for i, b := range got.Buckets {
		if b != want.Buckets[i] {
			if bad++; bad <= 5 {
				t.Errorf("bucket(%q, %q) = %d, Go says %d", in.Cases[i][0], in.Cases[i][1], b, want.Buckets[i])
			}
		}
	}
	for i, k := range got.IPs {
		if k != want.IPs[i] {
			if bad++; bad <= 10 {
				t.Errorf("ipKey(%q) = %q, Go says %q", in.IPs[i], k, want.IPs[i])
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d disagreements", bad)
	}
	t.Logf("%d buckets and %d ip keys agree", len(got.Buckets), len(got.IPs))
}

// TestCrossCheckJS runs clients/js on 100,000 random keys and 20,000 addresses.
func TestCrossCheckJS(t *testing.T) {
	node := needTool(t, "node")
	runCrossCheck(t, func(ctx context.Context, input string) *exec.Cmd {
		return exec.CommandContext(ctx, node, filepath.Join(jsDir, "tools", "crosscheck.mjs"), input)
	})
}

// TestCrossCheckJava compiles clients/java at Java 8 source level and runs it on the
// same inputs.
func TestCrossCheckJava(t *testing.T) {
	javac := needTool(t, "javac")
	java := needTool(t, "java")
	classes := t.TempDir()
	var sources []string
	for _, dir := range []string{"src", "test"} {
		err := filepath.WalkDir(filepath.Join(javaDir, dir), func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".java") {
				sources = append(sources, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"--release", "8", "-Xlint:all,-options", "-Werror", "-d", classes}, sources...)
	if out, err := exec.CommandContext(ctx, javac, args...).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	runCrossCheck(t, func(ctx context.Context, input string) *exec.Cmd {
		return exec.CommandContext(ctx, java, "-cp", classes, "dev.shiftgate.client.CrossCheck", input)
	})
}
