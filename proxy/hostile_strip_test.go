package proxy

import (
	"path/filepath"
	"strings"
	"testing"
)

// stripConf is hostileConf with internal.strip_headers; {{CALLERS}} sets
// trusted_callers.
const stripConf = `listen: 127.0.0.1:0
state_dir: {{STATE}}
regions:
  idc:   { upstreams: ["{{IDC}}"] }
  cloud: { upstreams: ["{{CLOUD}}"] }
internal:
  trusted_callers: [{{CALLERS}}]
  strip_headers: [X-Internal-User, x_debug, X-Region-Hint]
split: { from: idc, to: cloud, salt: hostile }
timeouts: { connect: 500ms, response_header: 1s, body: 2s, request_head: 1s, idle: 2s }
routes:
  - name: default
    match: { path_prefix: / }
    percent: 0
    breaker: { disabled: true }
`

// TestHostileStripHeaders: the operator's own internal headers, named in
// internal.strip_headers, never reach a backend from an untrusted peer, whatever
// their spelling; a trusted caller's pass untouched.
func TestHostileStripHeaders(t *testing.T) {
	t.Parallel()
	b := startBackend(t, replyOK)
	untrusted := startGateway(t, stripConf, map[string]string{"IDC": b.addr, "CLOUD": b.addr, "CALLERS": `"10.1.0.0/16"`})
	cases := []struct {
		name  string
		extra []string
		want  map[string][]string // nil value: no field folding to the name may arrive
	}{
		{"plain", []string{"X-Internal-User: admin", "X-Kept: 1"},
			map[string][]string{"X-Internal-User": nil, "X-Kept": {"1"}}},
		{"lower and upper case", []string{"x-internal-user: admin", "X-DEBUG: 1", "x-region-hint: cloud"},
			map[string][]string{"X-Internal-User": nil, "X-Debug": nil, "X-Region-Hint": nil}},
		{"underscores", []string{"X_Internal_User: admin", "x_debug: 1", "X_Region-Hint: cloud"},
			map[string][]string{"X-Internal-User": nil, "X-Debug": nil, "X-Region-Hint": nil}},
		{"duplicates in every spelling", []string{"X-Internal-User: a", "x_internal_user: b", "X-INTERNAL-USER: c", "X-Internal_User: d"},
			map[string][]string{"X-Internal-User": nil}},
		{"near names stay", []string{"X-Internal-Users: 1", "X-Debugger: 2", "X-Internal-Use: 3"},
			map[string][]string{"X-Internal-Users": {"1"}, "X-Debugger": {"2"}, "X-Internal-Use": {"3"}}},
		{"X-Shift-Region still replaced", []string{"X_Shift_Region: cloud", "X-Debug: 1"},
			map[string][]string{"X-Shift-Region": {"idc"}, "X-Debug": nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := lastRequest(t, untrusted, b, get("/s", tc.extra...))
			fields := headFields(r.Head)
			for name, want := range tc.want {
				got := fieldsNamed(fields, name)
				if strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("%s: backend got %q, want %q\n%s", name, got, want, r.Head)
				}
			}
		})
	}

	// 127.0.0.1 is a trusted caller here: its internal headers are its to send.
	trusted := startGateway(t, stripConf, map[string]string{"IDC": b.addr, "CLOUD": b.addr, "CALLERS": `"127.0.0.1/32"`})
	r := lastRequest(t, trusted, b, get("/s", "X-Internal-User: svc-orders", "x_debug: 1"))
	fields := headFields(r.Head)
	if got := fieldsNamed(fields, "X-Internal-User"); strings.Join(got, "|") != "svc-orders" {
		t.Errorf("trusted caller's X-Internal-User: backend got %q\n%s", got, r.Head)
	}
	if got := fieldsNamed(fields, "X-Debug"); strings.Join(got, "|") != "1" {
		t.Errorf("trusted caller's x_debug: backend got %q\n%s", got, r.Head)
	}
	b.mustBeClean(t)
}

// TestBackendCannotSpeakForTheGateway: a backend's answer carrying the gateway's own
// answer fields (X-Shift-Fallback, X-Shift-Shed, X-Shift-Config-Version, X-Shift-Region,
// in any spelling) reaches neither the client nor the access log: they say what this
// gateway did. Before, a backend's "X-Shift-Fallback: cache" and "X-Shift-Shed: site"
// went to the client on a 200 and into the access log as a fallback and a refusal.
func TestBackendCannotSpeakForTheGateway(t *testing.T) {
	t.Parallel()
	b := startBackend(t, replyRaw("HTTP/1.1 200 OK\r\nX-Shift-Fallback: cache\r\nx_shift_shed: site\r\n"+
		"X-SHIFT-CONFIG-VERSION: bogus\r\nX-Shift-Region: elsewhere\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok", true))
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := strings.Replace(stripConf, "routes:", "access_log: { path: "+logPath+" }\nroutes:", 1)
	gw := startGateway(t, cfg, map[string]string{"IDC": b.addr, "CLOUD": b.addr, "CALLERS": `"10.1.0.0/16"`})
	for _, client := range []string{"", "X-Shift-Client: idc;v=1"} {
		var extra []string
		if client != "" {
			extra = append(extra, client)
		}
		c := dialRaw(t, gw.addr)
		resp, body := c.roundTrip("GET", get("/s", extra...))
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("%q: %d %q", client, resp.StatusCode, body)
		}
		for name, v := range resp.Header {
			if n := strings.ToLower(strings.ReplaceAll(name, "_", "-")); n == "x-shift-fallback" || n == "x-shift-shed" {
				t.Errorf("%q: the client got the backend's %s: %q", client, name, v)
			}
		}
		if got := resp.Header.Values("X-Shift-Region"); strings.Join(got, "|") != "idc" {
			t.Errorf("%q: X-Shift-Region %q, want the gateway's idc", client, got)
		}
		if got := resp.Header.Values("X-Kept"); strings.Join(got, "|") != "1" {
			t.Errorf("%q: X-Kept %q, want the backend's 1", client, got)
		}
		// The gateway's config version only when the client said X-Shift-Client.
		got := resp.Header.Values("X-Shift-Config-Version")
		if client == "" && len(got) != 0 || client != "" && (len(got) != 1 || got[0] == "bogus") {
			t.Errorf("%q: X-Shift-Config-Version %q, want the gateway's alone, and only to a client that said X-Shift-Client", client, got)
		}
	}
	waitFor(t, "two access log lines", func() bool { return len(readLogLines(t, logPath)) == 2 })
	for _, line := range readLogLines(t, logPath) {
		if line["fallback"] != nil || line["shed"] != nil || line["answered_by"] != "idc" && line["answered_by"] != nil {
			t.Errorf("access log line speaks of what the gateway did not do: %v", line)
		}
	}
	b.mustBeClean(t)
}
