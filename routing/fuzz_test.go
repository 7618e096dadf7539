package routing_test

import (
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/routing"
)

// FuzzDecide feeds arbitrary request bytes to Decide on mixedConfig and checks the
// decision against the contract, worked out independently where it can be.
func FuzzDecide(f *testing.F) {
	f.Add([]byte("GET"), []byte(""), []byte("/api/feed"), []byte("u-1001"), []byte(""), []byte(""), []byte(""), []byte(""), []byte{192, 0, 2, 1}, uint8(0))
	f.Add([]byte("POST"), []byte("edge.example.com:443"), []byte("/x"), []byte(""), []byte("42"), []byte(""), []byte(""), []byte("203.0.113.7, 10.0.0.5"), []byte{10, 0, 0, 1}, uint8(0))
	f.Add([]byte("HEAD"), []byte("www"), []byte("/api/search"), []byte(""), []byte(""), []byte("u-qa-1"), []byte("cloud"), []byte(""), []byte{10, 1, 2, 3}, uint8(0))
	f.Add([]byte("GET"), []byte(""), []byte("/api/feed"), []byte("u-qa-1"), []byte(""), []byte(""), []byte("IDC"), []byte(""), []byte{10, 1, 2, 3}, uint8(1))
	f.Add([]byte("get"), []byte("[::1]:80"), []byte(""), []byte("\x00\xff"), []byte(""), []byte(""), []byte("edge"), []byte(",,"), []byte{}, uint8(0))
	c := mustParse(f, mixedConfig)
	tables := []*routing.Table{mustCompile(f, c, nil, false), mustCompile(f, c, nil, true)}
	f.Fuzz(func(t *testing.T, method, host, path, user, cookie, query, shift, fwd, peer []byte, flags uint8) {
		r := &req{method: method, peer: peerFrom(peer)}
		r.headers = [][2][]byte{{[]byte("X-User-Id"), user}, {[]byte("X-Shift-Region"), shift}}
		r.cookies = [][2][]byte{{[]byte("uid"), cookie}}
		r.query = [][2][]byte{{[]byte("u"), query}}
		if len(fwd) > 0 {
			r.xff = [][]byte{fwd}
		}
		tbl := tables[flags&1]
		d := tbl.Decide(host, path, r)
		d2, e := tbl.Explain(host, path, r)
		if d != d2 {
			t.Fatalf("Decide %+v, Explain %+v", d, d2)
		}
		if want := tbl.Match(host, path); int(d.Route) != want {
			t.Fatalf("route %d, Match %d", d.Route, want)
		}
		if d.Route < 0 {
			want := routing.Decision{Route: -1, Bucket: -1, Source: routing.NoSource, Region: conf.NoRegion,
				Other: conf.NoRegion, Reason: routing.ReasonNoRoute}
			if d != want {
				t.Fatalf("no route: %+v", d)
			}
			return
		}
		route := &c.Routes[d.Route]
		if d.Region != route.FromID && d.Region != route.ToID {
			t.Fatalf("region %d is neither from %d nor to %d", d.Region, route.FromID, route.ToID)
		}
		if other := route.FromID + route.ToID - d.Region; d.Other != other {
			t.Fatalf("other %d, want %d", d.Other, other)
		}
		if d.Bucket < -1 || d.Bucket >= routing.Buckets {
			t.Fatalf("bucket %d", d.Bucket)
		}
		m := string(method)
		write := m != "GET" && m != "HEAD" && m != "OPTIONS"
		s := tbl.RouteSplit(int(d.Route))
		if want := map[bool]int{false: s.Read, true: s.Write}[write]; d.Write != write || int(d.Threshold) != want {
			t.Fatalf("method %q: write %v threshold %d, want %v %d", method, d.Write, d.Threshold, write, want)
		}
		switch d.Reason {
		case routing.ReasonSplit, routing.ReasonForce:
			key, src := expectKey(c, route.KeySources, r)
			if d.Source != src || e.Key != key {
				t.Fatalf("key %q from %d, want %q from %d", e.Key, d.Source, key, src)
			}
			if d.Reason == routing.ReasonForce {
				if id, ok := route.ForceIDs[key]; !ok || id != d.Region || d.Bucket != -1 {
					t.Fatalf("forced %+v for %q", d, key)
				}
				break
			}
			if want := reference(route.SaltValue, key); int(d.Bucket) != want {
				t.Fatalf("bucket %d, want %d", d.Bucket, want)
			}
			if (d.Region == route.ToID) != (d.Bucket < d.Threshold) {
				t.Fatalf("bucket %d threshold %d went to %d", d.Bucket, d.Threshold, d.Region)
			}
		case routing.ReasonRollback:
			if !tbl.Rollback() || d.Region != route.FromID {
				t.Fatalf("rollback %+v", d)
			}
		case routing.ReasonAffinity:
			if !d.Internal || !tbl.TrustedCaller(r.peer) {
				t.Fatalf("affinity from %s", r.peer)
			}
			if id, ok := tbl.RegionID(shift); !ok || id != d.Region {
				t.Fatalf("affinity to %d, header %q", d.Region, shift)
			}
		case routing.ReasonSelfRegion:
			if !d.Internal || d.Region != c.SelfRegionID {
				t.Fatalf("self region %+v", d)
			}
		case routing.ReasonNoKey:
			if d.Region != route.FromID {
				t.Fatalf("no key %+v", d)
			}
		default:
			t.Fatalf("reason %v", d.Reason)
		}
		if d.Reason != routing.ReasonSplit && d.Reason != routing.ReasonForce && (d.Bucket != -1 || d.Source != routing.NoSource || e.Key != "") {
			t.Fatalf("reason %v hashed %q: %+v", d.Reason, e.Key, d)
		}
	})
}
