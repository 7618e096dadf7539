package clientcfg

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const minimal = `{"version":"3","algorithm":"xxh64-salt0-mod10000","ttl":30,"rollback":false,"cutoff":false,
"regions":{"idc":{"public_url":"https://idc.example.com"},"cloud":{"public_url":"https://cloud.example.com"}},
"routes":[{"name":"feed","match":{"path_prefix":"/api/feed"},"from":"idc","to":"cloud","salt":"cutover-2026",
"keys":["header:X-User-Id","ip"],"percent":25,"write_percent":5,"cutoff":false}],
"a_field_from_a_newer_gateway":{"x":1}}`

func TestParse(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Version: "3", Algorithm: Algorithm, TTL: 30,
		Regions: map[string]Region{"idc": {"https://idc.example.com"}, "cloud": {"https://cloud.example.com"}},
		Routes: []Route{{Name: "feed", Match: Match{PathPrefix: "/api/feed"}, From: "idc", To: "cloud",
			Salt: "cutover-2026", Keys: []string{"header:X-User-Id", "ip"}, Percent: 25, WritePercent: 5}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Parse = %+v\nwant    %+v", c, want)
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(`{"algorithm":"xxh64-salt0-mod10000","routes":[
		{"name":"r","from":"a","to":"b","percent":12.5},
		{"name":"s","from":"a","to":"b","percent":12.5,"write_percent":0,"match":{"path_prefix":""}},
		{"name":"t","from":"a","to":"b","percent":null,"write_percent":null}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		write  float64
		prefix string
	}{{12.5, "/"}, {0, "/"}, {0, "/"}} {
		r := c.Routes[i]
		if r.WritePercent != want.write || r.Match.PathPrefix != want.prefix {
			t.Errorf("routes[%d]: write_percent %v, path_prefix %q; want %v, %q", i, r.WritePercent, r.Match.PathPrefix, want.write, want.prefix)
		}
	}
}

func TestParseErrors(t *testing.T) {
	f := func(doc, wantErr string) {
		t.Helper()
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Parse(%s) = %v, want an error with %q", doc, err, wantErr)
		}
	}
	route := func(fields string) string {
		return `{"algorithm":"xxh64-salt0-mod10000","routes":[{"name":"ok","from":"a","to":"b"},{` + fields + `}]}`
	}
	f(`{"algorithm":"fnv"}`, `unsupported algorithm "fnv"`)
	f(`{"algorithm":"xxh64-salt0-mod10000","ttl":-5}`, "ttl: want >= 0, got -5")
	f(route(`"from":"a","to":"b"`), "routes[1].name: must not be empty")
	f(route(`"name":"r","to":"b"`), "routes[1].from: must not be empty")
	f(route(`"name":"r","from":"a"`), "routes[1].to: must not be empty")
	f(route(`"name":"r","from":"a","to":"b","percent":100.5`), "routes[1].percent: want 0..100 with at most two decimals, got 100.5")
	f(route(`"name":"r","from":"a","to":"b","percent":0.001`), "routes[1].percent: want 0..100")
	f(route(`"name":"r","from":"a","to":"b","percent":5,"write_percent":-1`), "routes[1].write_percent: want 0..100")
	f(route(`"name":"r","from":"a","to":"b","percent":5,"write_percent":6`), "routes[1].write_percent: 6 is above percent 5")
	f(route(`"name":"r","from":"a","to":"b","keys":["ip","Header:x"]`), `routes[1].keys[1]: want header:NAME, cookie:NAME, query:NAME or ip, got "Header:x"`)
	f(route(`"name":"r","from":"a","to":"b","match":{"path_prefix":"api"}`), `routes[1].match.path_prefix: must start with /, got "api"`)
	f(`{"algorithm":"xxh64-salt0-mod10000","version":7}`, "cannot unmarshal number")
	f(`{`, "unexpected end of JSON input")
}

func TestParseUnsupportedIsDistinguishable(t *testing.T) {
	_, err := Parse([]byte(`{"algorithm":"xxh3-salt0-mod100000"}`))
	if !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Fatalf("err = %v, want ErrUnsupportedAlgorithm", err)
	}
}

// TestInvalidConfigVectors: every document the vectors say to refuse, Parse refuses.
func TestInvalidConfigVectors(t *testing.T) {
	for _, v := range invalidConfigs() {
		if _, err := Parse(v.Config); err == nil {
			t.Errorf("%s: Parse(%s) accepted it", v.Name, v.Config)
		}
	}
}

func TestThreshold(t *testing.T) {
	for _, tc := range []struct {
		p    float64
		want int
	}{{0, 0}, {0.01, 1}, {0.29, 29}, {0.57, 57}, {1.1, 110}, {12.5, 1250}, {33.33, 3333}, {99.99, 9999}, {100, 10000}, {101, 10000}, {-1, 0}} {
		if got := Threshold(tc.p); got != tc.want {
			t.Errorf("Threshold(%v) = %d, want %d", tc.p, got, tc.want)
		}
	}
	// Every two-decimal percent is valid and maps to its own basis points.
	for bp := 0; bp <= Buckets; bp++ {
		p := float64(bp) / 100
		if !validPercent(p) || Threshold(p) != bp {
			t.Fatalf("percent %v: valid %v, threshold %d, want %d", p, validPercent(p), Threshold(p), bp)
		}
	}
}

func TestMarshalCanonical(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	b1, tag1, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	// Map order and nil-versus-empty must not show in the bytes.
	for range 20 {
		b2, tag2, _ := Marshal(c)
		if string(b1) != string(b2) || tag1 != tag2 {
			t.Fatalf("Marshal is not stable:\n%s\n%s", b1, b2)
		}
	}
	want := `{"version":"3","algorithm":"xxh64-salt0-mod10000","ttl":30,"rollback":false,"cutoff":false,` +
		`"regions":{"cloud":{"public_url":"https://cloud.example.com"},"idc":{"public_url":"https://idc.example.com"}},` +
		`"routes":[{"name":"feed","match":{"host":"","path_prefix":"/api/feed"},"from":"idc","to":"cloud","salt":"cutover-2026",` +
		`"keys":["header:X-User-Id","ip"],"percent":25,"write_percent":5,"cutoff":false}]}`
	if string(b1) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", b1, want)
	}
	if len(tag1) != 18 || tag1[0] != '"' || tag1[17] != '"' {
		t.Fatalf("ETag %s: want a quoted 16-digit hex", tag1)
	}
	back, err := Parse(b1)
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("Parse(Marshal(c)) = %+v, %v; want %+v", back, err, c)
	}
	empty, _, _ := Marshal(&Config{Algorithm: Algorithm, Routes: []Route{{Name: "r"}}})
	if !strings.Contains(string(empty), `"regions":{}`) || !strings.Contains(string(empty), `"keys":[]`) {
		t.Fatalf("empty lists must encode as {} and []: %s", empty)
	}
}

// TestETagChanges: changing any field changes the ETag.
func TestETagChanges(t *testing.T) {
	base, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	_, tag0, _ := Marshal(base)
	for name, edit := range map[string]func(c *Config){
		"version":       func(c *Config) { c.Version = "4" },
		"ttl":           func(c *Config) { c.TTL = 31 },
		"rollback":      func(c *Config) { c.Rollback = true },
		"cutoff":        func(c *Config) { c.Cutoff = true },
		"public_url":    func(c *Config) { c.Regions["idc"] = Region{"https://idc2.example.com"} },
		"route cutoff":  func(c *Config) { c.Routes[0].Cutoff = true },
		"percent":       func(c *Config) { c.Routes[0].Percent = 25.01 },
		"write_percent": func(c *Config) { c.Routes[0].WritePercent = 5.01 },
		"salt":          func(c *Config) { c.Routes[0].Salt = "x" },
		"keys":          func(c *Config) { c.Routes[0].Keys = []string{"ip", "header:X-User-Id"} },
		"host":          func(c *Config) { c.Routes[0].Match.Host = "api.example.com" },
		"from":          func(c *Config) { c.Routes[0].From = "cloud" },
	} {
		c, _ := Parse([]byte(minimal))
		edit(c)
		if _, tag, _ := Marshal(c); tag == tag0 {
			t.Errorf("changing %s left the ETag at %s", name, tag)
		}
	}
}

func TestMatchETag(t *testing.T) {
	const tag = `"00ff00ff00ff00ff"`
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{tag, true}, {`W/` + tag, true}, {`"x", ` + tag, true}, {`*`, true},
		{``, false}, {`"x"`, false}, {`00ff00ff00ff00ff`, false},
	} {
		if got := MatchETag(tc.header, tag); got != tc.want {
			t.Errorf("MatchETag(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}
