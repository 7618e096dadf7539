package loadtest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
)

// fakeLookup resolves names from a fixed table and fails for any other name.
func fakeLookup(table map[string][]string) lookupFunc {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		addrs, ok := table[host]
		if !ok {
			return nil, errors.New("no such host")
		}
		out := make([]netip.Addr, len(addrs))
		for i, a := range addrs {
			out[i] = netip.MustParseAddr(a)
		}
		return out, nil
	}
}

func TestParseTarget(t *testing.T) {
	lookup := fakeLookup(map[string][]string{
		"localhost":  {"127.0.0.1", "::1"},
		"loop.test":  {"127.0.0.53"},
		"mixed.test": {"127.0.0.1", "203.0.113.9"},
		"far.test":   {"198.51.100.4"},
		"empty.test": {},
	})
	for _, tc := range []struct {
		raw         string
		allowRemote bool
		want        target // zero: an error is wanted
		remote      bool   // the error must be ErrRemoteTarget
	}{
		{"http://127.0.0.1:8080/api/feed?x=1", false, target{dial: "127.0.0.1:8080", host: "127.0.0.1:8080", uri: "/api/feed?x=1"}, false},
		{"http://127.1.2.3/", false, target{dial: "127.1.2.3:80", host: "127.1.2.3", uri: "/"}, false},
		{"http://[::1]:9000", false, target{dial: "[::1]:9000", host: "[::1]:9000", uri: "/"}, false},
		{"http://[::ffff:127.0.0.1]:9000/", false, target{dial: "[::ffff:127.0.0.1]:9000", host: "[::ffff:127.0.0.1]:9000", uri: "/"}, false},
		{"http://localhost:8080/x", false, target{dial: "127.0.0.1:8080", host: "localhost:8080", uri: "/x", sni: "localhost"}, false},
		{"http://loop.test/", false, target{dial: "127.0.0.53:80", host: "loop.test", uri: "/", sni: "loop.test"}, false},
		{"http://10.0.0.1:8080/", false, target{}, true},
		{"http://192.168.1.1/", false, target{}, true},
		{"http://[2001:db8::1]/", false, target{}, true},
		{"http://0.0.0.0:8080/", false, target{}, true},
		{"http://mixed.test/", false, target{}, true},
		{"http://far.test/", false, target{}, true},
		{"http://empty.test/", false, target{}, false},
		{"http://unknown.test/", false, target{}, false},
		{"http://10.0.0.1:8080/p", true, target{dial: "10.0.0.1:8080", host: "10.0.0.1:8080", uri: "/p"}, false},
		{"http://far.test/", true, target{dial: "far.test:80", host: "far.test", uri: "/", sni: "far.test"}, false},
		{"https://127.0.0.1/", false, target{dial: "127.0.0.1:443", host: "127.0.0.1", uri: "/", tls: true}, false},
		{"https://localhost:8443/x", false, target{dial: "127.0.0.1:8443", host: "localhost:8443", uri: "/x", tls: true, sni: "localhost"}, false},
		{"ftp://127.0.0.1/", false, target{}, false},
		{"127.0.0.1:8080", false, target{}, false},
		{"http:///path", false, target{}, false},
		{"http://127.0.0.1:8080/%zz", false, target{}, false},
	} {
		got, err := parseTarget(t.Context(), tc.raw, tc.allowRemote, lookup)
		if tc.want == (target{}) {
			if err == nil {
				t.Errorf("parseTarget(%q, %v) = %+v, want an error", tc.raw, tc.allowRemote, got)
			} else if errors.Is(err, ErrRemoteTarget) != tc.remote {
				t.Errorf("parseTarget(%q, %v) err = %v, want ErrRemoteTarget: %v", tc.raw, tc.allowRemote, err, tc.remote)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseTarget(%q, %v) = %+v, %v; want %+v", tc.raw, tc.allowRemote, got, err, tc.want)
		}
	}
}

// FuzzParseTarget: any string either fails or, with remote targets refused, yields a
// dial address on loopback.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:8080/", "http://[::1]/x?y", "http://localhost/", "http://10.0.0.1/",
		"http://[::ffff:10.0.0.1]/", "http://user@127.0.0.1/", "http://127.0.0.1:99999/", "ftp://x",
	} {
		f.Add(s)
	}
	lookup := fakeLookup(map[string][]string{"localhost": {"127.0.0.1"}})
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseTarget(context.Background(), raw, false, lookup)
		if err != nil {
			return
		}
		host, _, err := net.SplitHostPort(got.dial)
		if err != nil {
			t.Fatalf("parseTarget(%q) dial %q: %v", raw, got.dial, err)
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Unmap().IsLoopback() {
			t.Fatalf("parseTarget(%q) accepted dial address %q, not loopback", raw, got.dial)
		}
	})
}
