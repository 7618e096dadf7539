package routing_test

import (
	"net/netip"
	"testing"

	"github.com/shiftgate/shiftgate/routing"
)

// allocCases are requests Decide must route without allocating, on mixedConfig.
func allocCases() []struct {
	name       string
	host, path []byte
	r          *req
} {
	trustedXFF := get("10.0.0.1")
	trustedXFF.xff = xff("198.51.100.1, 10.0.0.5")
	port := get("10.0.0.1")
	port.xff = xff("198.51.100.1:5555", "[2001:db8::7]:443, 10.0.0.5")
	garbage := get("10.0.0.1")
	garbage.xff = xff("1.1.1.1, unknown, 10.0.0.5")
	v6 := get("fd00::1")
	v6.xff = xff("2001:db8::1")
	cookie := get("192.0.2.1")
	cookie.cookies = kv("uid", "u-1001")
	query := get("192.0.2.1")
	query.query = kv("u", "u-1001")
	write := get("192.0.2.1", "X-User-Id", "u-1001")
	write.method = []byte("POST")
	return []struct {
		name       string
		host, path []byte
		r          *req
	}{
		{"header key", nil, []byte("/api/feed/home"), get("192.0.2.1", "X-User-Id", "u-1001")},
		{"header key, write", nil, []byte("/api/feed/home"), write},
		{"ip key through trusted XFF", nil, []byte("/api/feed"), trustedXFF},
		{"ip key, XFF with ports", nil, []byte("/api/feed"), port},
		{"ip key, garbage in XFF", nil, []byte("/api/feed"), garbage},
		{"ip key, IPv6", nil, []byte("/api/feed"), v6},
		{"force hit", nil, []byte("/api/feed"), get("192.0.2.1", "X-User-Id", "u-qa-1")},
		{"cookie key", nil, []byte("/api/feed"), cookie},
		{"query key", nil, []byte("/api/search"), query},
		{"affinity", nil, []byte("/api/feed"), get("10.1.2.3", "X-Shift-Region", "CLOUD")},
		{"self region", nil, []byte("/api/search"), get("10.1.2.3")},
		{"host route", []byte("Edge.Example.com:443"), []byte("/x"), get("203.0.113.7")},
		{"long host", []byte("a-very-long-host-name-that-is-not-configured-anywhere.example.com:8443"), []byte("/x"), get("203.0.113.7")},
		{"no route", nil, []byte(""), get("203.0.113.7")},
	}
}

func TestDecideAllocs(t *testing.T) {
	c := mustParse(t, mixedConfig)
	for _, rollback := range []bool{false, true} {
		tbl := mustCompile(t, c, nil, rollback)
		for _, tc := range allocCases() {
			var r routing.Request = tc.r // converted once, outside the measured function
			var d routing.Decision
			allocs := testing.AllocsPerRun(100, func() {
				d = tbl.Decide(tc.host, tc.path, r)
			})
			if allocs != 0 {
				t.Errorf("rollback %v, %s: Decide allocates %v times per call", rollback, tc.name, allocs)
			}
			if tc.name != "no route" && d.Route < 0 {
				t.Errorf("rollback %v, %s: no route, so the case measures less than it says", rollback, tc.name)
			}
		}
	}
}

func benchmarkDecide(b *testing.B, host, path []byte, r *req) {
	tbl := mustCompile(b, mustParse(b, mixedConfig), nil, false)
	var rq routing.Request = r
	if d := tbl.Decide(host, path, rq); d.Bucket < 0 {
		b.Fatalf("no bucket: %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		tbl.Decide(host, path, rq)
	}
}

// BenchmarkDecide: a user-id header on a config of four routes.
func BenchmarkDecide(b *testing.B) {
	benchmarkDecide(b, []byte("www.example.com"), []byte("/api/feed/home"), get("192.0.2.1", "X-User-Id", "u-1001"))
}

// BenchmarkDecideIP: no id, so the client address behind a trusted proxy is the key.
func BenchmarkDecideIP(b *testing.B) {
	r := &req{method: []byte("GET"), peer: netip.MustParseAddr("10.0.0.1"), xff: xff("198.51.100.1, 10.0.0.5")}
	benchmarkDecide(b, []byte("www.example.com"), []byte("/api/feed/home"), r)
}
