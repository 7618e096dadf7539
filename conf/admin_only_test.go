package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadAdmin: the admin block comes out of a file whose other parts do not load
// (a certificate that is not there, a percent the gateway refuses), with the token
// read relative to the file; a file that is not YAML, or a token file that cannot be
// read, is an error that names it.
func TestLoadAdmin(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("0123456789abcdef0123\n"), 0o600)
	broken := `regions:
  idc: { upstreams: ["127.0.0.1:1"], tls: { cert_file: missing.crt, key_file: missing.key } }
split: { from: idc, to: idc, salt: s }
routes:
  - { name: a, match: { path_prefix: / }, percent: 150 }
`
	for _, tc := range []struct {
		name, text    string
		listen, token string
		errContains   string
	}{
		{"default", "routes: []\n", DefaultAdminListen, "", ""},
		{"broken elsewhere", broken + "admin: { listen: 127.0.0.1:19999, token_file: token }\n", "127.0.0.1:19999", "0123456789abcdef0123", ""},
		{"no admin block, broken elsewhere", broken, DefaultAdminListen, "", ""},
		{"token file missing", "admin: { token_file: nope }\n", "", "", "admin.token_file"},
		{"not YAML", "admin: [\n", "", "", "shiftgate.yaml"},
		{"admin not a mapping", "admin: 3\n", "", "", "shiftgate.yaml"},
	} {
		path := filepath.Join(dir, "shiftgate.yaml")
		os.WriteFile(path, []byte(tc.text), 0o644)
		a, err := LoadAdmin(path)
		if tc.errContains != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Errorf("%s: %+v, %v; want an error naming %s", tc.name, a, err, tc.errContains)
			}
			continue
		}
		if err != nil || a.Listen != tc.listen || a.Token != tc.token {
			t.Errorf("%s: %+v, %v; want listen %s token %q", tc.name, a, err, tc.listen, tc.token)
		}
	}
	if _, err := LoadFile(filepath.Join(dir, "shiftgate.yaml")); err == nil {
		t.Fatal("the last file was meant not to load as a whole")
	}
}

// FuzzParseAdmin: the admin block read alone never panics, and for every file the
// full parse accepts it finds the same admin address the gateway listens on.
func FuzzParseAdmin(f *testing.F) {
	ex, err := os.ReadFile(examplePath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ex)
	f.Add([]byte(base + "admin: { listen: 127.0.0.1:9191 }\n"))
	f.Add([]byte("admin: [\n"))
	f.Add([]byte("admin: &a { listen: x }\nb: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, aerr := parseAdmin("fuzz.yaml", data)
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		if aerr != nil || a.Listen != c.Admin.Listen {
			t.Fatalf("a file the gateway loads gives admin %q (%v); the gateway listens on %q", a.Listen, aerr, c.Admin.Listen)
		}
	})
}
