package conf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const examplePath = "../../shared/examples/cutover.yaml"

func TestExampleConfigLoads(t *testing.T) {
	c, err := LoadFile(examplePath)
	if err != nil {
		t.Fatalf("example config: %v", err)
	}
	if len(c.RegionList) != 2 || c.RegionList[0].Name != "cloud" || c.RegionList[1].Name != "idc" {
		t.Fatalf("regions = %+v", c.RegionList)
	}
	feed, ok := c.Route("feed")
	if !ok {
		t.Fatal("no feed route")
	}
	idc, _ := c.Region("idc")
	cloud, _ := c.Region("cloud")
	if feed.FromID != idc.ID || feed.ToID != cloud.ID {
		t.Errorf("feed from/to = %d/%d", feed.FromID, feed.ToID)
	}
	if feed.PercentBP != 2500 || feed.WritePercentBP != 500 {
		t.Errorf("feed percents = %d/%d bp", feed.PercentBP, feed.WritePercentBP)
	}
	if feed.SaltValue != "cutover-2026" || len(feed.KeySources) != 4 || feed.KeySources[3].Kind != KeyIP {
		t.Errorf("feed salt/keys = %q %v", feed.SaltValue, feed.KeySources)
	}
	if feed.ForceIDs["u-qa-1"] != cloud.ID || feed.ForceIDs["u-qa-2"] != cloud.ID {
		t.Errorf("force = %v", feed.ForceIDs)
	}
	if !feed.FailoverIdempotent || feed.Breaker.MinRequests != 20 || feed.Breaker.FailureRatio != 0.5 ||
		feed.Breaker.Window.D.Seconds() != 10 || feed.Breaker.OpenFor.D.Seconds() != 5 {
		t.Errorf("feed breaker/failover = %+v %v", feed.Breaker, feed.FailoverIdempotent)
	}
	if fc := feed.Fallback.Cache; fc == nil || fc.MaxBytes.N != 64<<20 || fc.TTL.D.Minutes() != 10 {
		t.Errorf("feed cache = %+v", feed.Fallback.Cache)
	}
	if s := feed.Fallback.Static; s == nil || !strings.Contains(string(s.Bytes), "editors-pick-1") || s.ContentType != "application/json" {
		t.Errorf("feed static = %+v", feed.Fallback.Static)
	}
	def, _ := c.Route("default")
	if def.PercentBP != 0 || def.Match.PathPrefix != "/" || def.Failover != "none" {
		t.Errorf("default = %+v", def)
	}
	if c.StateDir != filepath.Join(filepath.Dir(examplePath), "state") {
		t.Errorf("state_dir = %q, want it next to the file", c.StateDir)
	}
	if len(c.TrustedProxies) != 1 || c.TrustedProxies[0].String() != "10.0.0.0/8" {
		t.Errorf("trusted proxies = %v", c.TrustedProxies)
	}
}

// base is a small valid config; cases below edit it.
const base = `regions:
  idc: {upstreams: ["127.0.0.1:9001"]}
  cloud: {upstreams: ["127.0.0.1:9002"]}
split: {from: idc, to: cloud, salt: s}
routes:
  - name: feed
    match: {path_prefix: /api/feed}
    percent: 25
`

func TestParseErrors(t *testing.T) {
	f := func(name, input, want string) {
		t.Helper()
		_, err := Parse("c.yaml", []byte(input))
		if want == "" {
			if err != nil {
				t.Errorf("%s: unexpected error: %v", name, err)
			}
			return
		}
		if err == nil {
			t.Errorf("%s: no error, want %q", name, want)
			return
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not contain %q", name, err, want)
		}
		var es Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Errorf("%s: error is not conf.Errors: %T", name, err)
		}
	}
	f("valid", base, "")
	// An unclosed bracket: YAML names the line its block begins on, and the message
	// says the mistake may be below it.
	f("unclosed bracket", base+"    keys: [\"ip\"\n  - name: other\n", "the mistake is here or below")
	f("write above read", base+"    write_percent: 40\n", "c.yaml:9: routes[0].write_percent: 40 is above percent 25")
	f("percent over 100", strings.Replace(base, "percent: 25", "percent: 120", 1), "c.yaml:8: routes[0].percent: want 0..100")
	f("three decimals", strings.Replace(base, "percent: 25", "percent: 1.005", 1), "routes[0].percent: want 0..100 with at most two decimals")
	f("negative", strings.Replace(base, "percent: 25", "percent: -1", 1), "routes[0].percent")
	f("two decimals ok", strings.Replace(base, "percent: 25", "percent: 0.01", 1), "")
	f("unknown key", base+"    wieght: 3\n", "c.yaml:9: routes[0].wieght: unknown key")
	f("unknown top key", "lisen: x\n"+base, "c.yaml:1: lisen: unknown key")
	f("unknown region", base+"    to: mars\n", "c.yaml:9: routes[0].to: unknown region \"mars\"")
	f("bad cidr", base+"client_ip: {trusted_proxies: [10.0.0.0/33]}\n", "client_ip.trusted_proxies[0]: want a CIDR")
	f("dup name", base+"  - name: feed\n    match: {path_prefix: /x}\n", "c.yaml:9: routes[1].name: route \"feed\" is already defined")
	f("unreachable", base+"  - name: feed2\n    match: {path_prefix: /api/feed}\n", "routes[1].match: unreachable")
	f("bad key source", base+"    keys: [\"hdr:x\"]\n", "routes[0].keys[0]: unknown key source")
	f("bad duration", base+"    breaker: {window: 10x}\n", "routes[0].breaker.window: want a duration")
	f("bad failover", base+"    failover: always\n", "routes[0].failover: want none or idempotent")
	f("force to stranger", strings.Replace(base, "  cloud:", "  mars: {upstreams: [\"127.0.0.1:1\"]}\n  cloud:", 1)+"    force: {mars: [u1]}\n", "force.mars: region \"mars\" is neither")
	f("type error", base+"    breaker: {min_requests: lots}\n", "c.yaml:9: routes[0].breaker.min_requests")
	f("syntax", "routes: [\n", "c.yaml:")
	f("no regions", "routes: [{name: a}]\n", "regions: at least one region")
	f("admin off loopback", base+"admin: {listen: 0.0.0.0:9090}\n", "admin.listen: 0.0.0.0:9090 is not a loopback address")
	f("bad upstream", strings.Replace(base, "127.0.0.1:9002", "http://x", 1), "regions.cloud.upstreams[0]: want host:port")
	f("missing body file", base+"    fallback: {static: {body_file: nope.json}}\n", "routes[0].fallback.static.body_file")
	f("path prefix", base+"  - name: b\n    match: {path_prefix: api}\n", "routes[1].match.path_prefix: must start with /")
	f("mirror ok", base+"    mirror: {percent: 0.5, ignore: [meta.ts, \"header:Date\"]}\n", "")
	f("mirror without percent", base+"    mirror: {to: cloud}\n", "c.yaml:9: routes[0].mirror.percent: a mirror needs a percent")
	f("mirror zero", base+"    mirror: {percent: 0}\n", "routes[0].mirror.percent: want 0.01..100, got 0")
	f("mirror to from", base+"    mirror: {percent: 1, to: idc}\n", "routes[0].mirror.to: the mirror region \"idc\" is the route's from region")
	f("mirror bad method", base+"    mirror: {percent: 1, methods: [get]}\n", "routes[0].mirror.methods[0]: want an upper-case method")
	f("mirror unknown key", base+"    mirror: {percent: 1, sample: 3}\n", "routes[0].mirror.sample: unknown key")
	f("mirror settings", base+"mirror: {workers: 0, queue: -1}\n", "mirror.queue: want 1..1048576")
	f("slow call", base+"    breaker: {slow_call: {threshold: 500ms, ratio: 0.5}, consecutive_failures: 5}\n", "")
	f("slow call no threshold", base+"    breaker: {slow_call: {ratio: 0.5}}\n", "c.yaml:9: routes[0].breaker.slow_call.threshold: want a duration")
	f("slow call ratio", base+"    breaker: {slow_call: {threshold: 1s, ratio: 2}}\n", "routes[0].breaker.slow_call.ratio: want a ratio in (0, 1]")
	f("abandon reads", base+"    failover: idempotent\n    breaker: {slow_call: {threshold: 500ms, abandon_reads: true}}\n", "")
	f("abandon reads without failover", base+"    breaker:\n      slow_call:\n        threshold: 500ms\n        abandon_reads: true\n",
		"c.yaml:12: routes[0].breaker.slow_call.abandon_reads: an abandoned read is sent to the other region: needs failover: idempotent")
	f("abandon reads without threshold", base+"    failover: idempotent\n    breaker: {slow_call: {abandon_reads: true}}\n", "c.yaml:10: routes[0].breaker.slow_call.threshold: want a duration")
	f("strip headers", base+"internal:\n  strip_headers: [X-Internal-User, x_debug]\n", "")
	f("strip header not a token", base+"internal:\n  strip_headers: [X-Ok, \"X Bad\"]\n", "c.yaml:10: internal.strip_headers[1]: want a header name")
	f("strip header frames", base+"internal:\n  strip_headers: [Content_Length]\n", "c.yaml:10: internal.strip_headers[0]: Content_Length frames the request")
	f("strip header host", base+"internal:\n  strip_headers: [HOST]\n", "internal.strip_headers[0]: HOST frames")
	f("upstream port too big", strings.Replace(base, "127.0.0.1:9002", "127.0.0.1:99999", 1), "c.yaml:3: regions.cloud.upstreams[0]: port 99999 of \"127.0.0.1:99999\" is out of range (1..65535)")
	f("upstream port not a number", strings.Replace(base, "127.0.0.1:9002", "127.0.0.1:notaport", 1), "c.yaml:3: regions.cloud.upstreams[0]: port \"notaport\" of \"127.0.0.1:notaport\" is not a number")
	f("upstream port 0", strings.Replace(base, "127.0.0.1:9002", "127.0.0.1:0", 1), "regions.cloud.upstreams[0]: port 0 of \"127.0.0.1:0\" is out of range (1..65535)")
	f("upstream without host", strings.Replace(base, "127.0.0.1:9002", ":9002", 1), "the host is missing")
	f("listen port too big", "listen: 127.0.0.1:99999\n"+base, "c.yaml:1: listen: port 99999 of \"127.0.0.1:99999\" is out of range (0..65535)")
	f("listen port not a number", "listen: 127.0.0.1:notaport\n"+base, "c.yaml:1: listen: port \"notaport\"")
	f("admin port not a number", "admin: {listen: \"127.0.0.1:http\"}\n"+base, "c.yaml:1: admin.listen: port \"http\"")
	f("listen port 0", "listen: 127.0.0.1:0\n"+base, "")
	f("named upstream", strings.Replace(base, "127.0.0.1:9002", "cloud.internal:9002", 1), "")
	f("fallback methods", base+"    fallback: {static: {body: x}, methods: [GET, HEAD, POST]}\n", "")
	f("fallback method lower case", base+"    fallback: {static: {body: x}, methods: [post]}\n", "c.yaml:9: routes[0].fallback.methods[0]: want an HTTP method in capitals")
	f("park idle bad", "timeouts:\n  park_idle: never\n"+base, "c.yaml:2: timeouts.park_idle: want a duration such as 250ms or 10s, or off, got \"never\"")
	f("park idle negative", "timeouts:\n  park_idle: -1s\n"+base, "c.yaml:2: timeouts.park_idle: want a duration >= 0")
}

func TestParkIdle(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		off  bool
		d    time.Duration
	}{
		{"", false, DefaultParkIdle},
		{"timeouts: {park_idle: 250ms}\n", false, 250 * time.Millisecond},
		{"timeouts: {park_idle: off}\n", true, 0},
	} {
		c, err := Parse("c.yaml", []byte(tc.yaml+base))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if p := c.Timeouts.ParkIdle; p.Off != tc.off || !tc.off && p.D != tc.d {
			t.Errorf("%q: park_idle %+v, want off=%v %v", tc.yaml, p, tc.off, tc.d)
		}
	}
}

// TestParseErrorsOnce: one mistake is reported once, however many routes inherit the
// value, and a bad percent is not reported a second time as a write_percent above it.
func TestParseErrorsOnce(t *testing.T) {
	two := base + "  - name: other\n    match: {path_prefix: /other}\n"
	for _, tc := range []struct {
		name, input string
		want        []string
	}{
		{"inherited from", strings.Replace(two, "from: idc", "from: idcx", 1), []string{`c.yaml:4: split.from: unknown region "idcx" (have cloud, idc)`}},
		{"inherited keys", strings.Replace(two, "salt: s}", "salt: s, keys: [bogus]}", 1), []string{`c.yaml:4: split.keys[0]: want header:NAME, cookie:NAME, query:NAME or ip, got "bogus"`}},
		{"bad percent with writes", strings.Replace(base, "percent: 25", "percent: 250\n    write_percent: 5", 1), []string{`c.yaml:8: routes[0].percent: want 0..100 with at most two decimals, got "250"`}},
	} {
		_, err := Parse("c.yaml", []byte(tc.input))
		var es Errors
		if !errors.As(err, &es) {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, e := range es {
			got = append(got, e.Error())
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: errors\n%s\nwant\n%s", tc.name, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

func TestFallbackMethodsDefault(t *testing.T) {
	c, err := Parse("c.yaml", []byte(base+"    fallback: {static: {body: x}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Routes[0].Fallback.Methods; strings.Join(m, ",") != "GET,HEAD" {
		t.Errorf("fallback methods by default: %v, want GET and HEAD", m)
	}
}

func TestParsePercent(t *testing.T) {
	for _, c := range []struct {
		in   string
		bp   int
		fail bool
	}{
		{"0", 0, false}, {"100", 10000, false}, {"25", 2500, false}, {"0.01", 1, false},
		{"0.29", 29, false}, {"12.5", 1250, false}, {"99.99", 9999, false},
		{"100.01", 0, true}, {"1.001", 0, true}, {"-1", 0, true}, {"1e2", 0, true},
		{"", 0, true}, {".5", 0, true}, {"5.", 0, true}, {"abc", 0, true}, {"1000", 0, true},
	} {
		bp, err := ParsePercent(c.in)
		if (err != nil) != c.fail || bp != c.bp {
			t.Errorf("ParsePercent(%q) = %d, %v; want %d, fail=%v", c.in, bp, err, c.bp, c.fail)
		}
	}
}

func TestFormatBP(t *testing.T) {
	for bp, want := range map[int]string{0: "0", 2500: "25", 1: "0.01", 1250: "12.5", 9999: "99.99"} {
		if got := FormatBP(bp); got != want {
			t.Errorf("FormatBP(%d) = %q, want %q", bp, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	ex, err := os.ReadFile(examplePath)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ex)
	f.Add([]byte(base))
	f.Add([]byte("routes: [{name: a, percent: 1.5}]"))
	// Anchors and aliases: shared settings, and an alias inside its own anchor.
	f.Add([]byte("x: &b {min_requests: 5}\nroutes: [{name: a, breaker: *b}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		if err != nil && c != nil {
			t.Fatal("config with error")
		}
		if c != nil {
			for _, r := range c.Routes {
				if r.PercentBP < 0 || r.PercentBP > 10000 || r.WritePercentBP > r.PercentBP {
					t.Fatalf("route %s percents %d/%d", r.Name, r.PercentBP, r.WritePercentBP)
				}
			}
		}
	})
}
