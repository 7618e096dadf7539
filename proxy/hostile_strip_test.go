package proxy

import (
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
