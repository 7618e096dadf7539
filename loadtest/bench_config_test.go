package loadtest

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func testFields(t *testing.T) configFields {
	return configFields{
		Dir: t.TempDir(), Listen: "127.0.0.1:18080", Admin: "127.0.0.1:19090", Backend: "127.0.0.1:19001",
	}
}

// TestPeerConfigs renders the nginx and HAProxy configs and, where the binaries are
// installed, has them check the result.
func TestPeerConfigs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bin   string
		check func(dir, cfg string) []string
	}{
		{"nginx.conf", "nginx", func(dir, cfg string) []string {
			return []string{"-t", "-q", "-p", dir, "-c", cfg, "-e", filepath.Join(dir, "nginx-error.log")}
		}},
		{"haproxy.cfg", "haproxy", func(dir, cfg string) []string { return []string{"-c", "-q", "-f", cfg} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := testFields(t)
			cfg, err := writeConfig(tc.name, f)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), f.Listen) || !strings.Contains(string(b), f.Backend) {
				t.Errorf("%s lacks the listen or backend address:\n%s", tc.name, b)
			}
			bin, err := lookPathSbin(tc.bin)
			if err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("%s not installed: CI installs it", tc.bin)
				}
				t.Skipf("%s not installed: rendered only", tc.bin)
			}
			if out, err := exec.Command(bin, tc.check(f.Dir, cfg)...).CombinedOutput(); err != nil {
				t.Errorf("%s rejects the config: %v\n%s", tc.bin, err, out)
			}
		})
	}
}

// TestShiftgateConfigMatchesExample: the bench's shiftgate config is the example
// cutover config with only the addresses and the state directory changed, so it routes,
// breaks and falls back exactly as the example does. Compared as YAML data.
func TestShiftgateConfigMatchesExample(t *testing.T) {
	example := filepath.Join("..", "..", "shared", "examples", "cutover.yaml")
	wantBytes, err := os.ReadFile(example)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("example config not found beside the repository: %v", err)
		}
		t.Skipf("example config not found beside the repository: %v", err)
	}
	f := testFields(t)
	path, err := writeShiftgateConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	gotBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	if err := yaml.Unmarshal(gotBytes, &got); err != nil {
		t.Fatalf("bench config is not YAML: %v", err)
	}
	if err := yaml.Unmarshal(wantBytes, &want); err != nil {
		t.Fatal(err)
	}

	// The parts that must differ: where things listen and live.
	if got["listen"] != f.Listen || got["admin"].(map[string]any)["listen"] != f.Admin ||
		got["state_dir"] != filepath.Join(f.Dir, "state") {
		t.Errorf("listen %v admin %v state_dir %v", got["listen"], got["admin"], got["state_dir"])
	}
	gotRegions, wantRegions := got["regions"].(map[string]any), want["regions"].(map[string]any)
	if g, w := slices.Sorted(maps.Keys(gotRegions)), slices.Sorted(maps.Keys(wantRegions)); !slices.Equal(g, w) {
		t.Errorf("regions %v, example has %v", g, w)
	}
	for name, r := range gotRegions {
		if up := r.(map[string]any)["upstreams"]; !reflect.DeepEqual(up, []any{f.Backend}) {
			t.Errorf("region %s upstreams %v, want the backend only", name, up)
		}
	}
	// Everything else is the example's.
	for _, m := range []map[string]any{got, want} {
		delete(m, "listen")
		delete(m, "state_dir")
		delete(m["admin"].(map[string]any), "listen")
		for _, r := range m["regions"].(map[string]any) {
			delete(r.(map[string]any), "upstreams")
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bench config differs from the example beyond addresses:\n got %v\nwant %v", got, want)
	}
	body, err := os.ReadFile(filepath.Join(f.Dir, "feed-fallback.json"))
	exampleBody, err2 := os.ReadFile(filepath.Join(filepath.Dir(example), "feed-fallback.json"))
	if err != nil || err2 != nil || string(body) != string(exampleBody) {
		t.Errorf("fallback body differs from the example's (%v, %v)", err, err2)
	}
}
