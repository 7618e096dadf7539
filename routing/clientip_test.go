package routing_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/shiftgate/shiftgate/routing"
)

var testProxies = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("fd00::/8"),
}

func TestClientIP(t *testing.T) {
	long := strings.Repeat("1", 65)
	cases := []struct {
		name    string
		peer    string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"no trust list", "10.0.0.1", []string{"1.1.1.1"}, nil, "10.0.0.1"},
		{"no header", "10.0.0.1", nil, testProxies, "10.0.0.1"},
		{"untrusted peer's header ignored", "203.0.113.9", []string{"1.1.1.1"}, testProxies, "203.0.113.9"},
		{"one trusted hop", "10.0.0.1", []string{"1.1.1.1"}, testProxies, "1.1.1.1"},
		{"trusted hop in chain", "10.0.0.1", []string{"1.1.1.1, 10.0.0.5"}, testProxies, "1.1.1.1"},
		{"client's own entries left of the client ignored", "10.0.0.1", []string{"6.6.6.6, 1.1.1.1, 10.0.0.5"}, testProxies, "1.1.1.1"},
		{"all trusted: left-most", "10.0.0.1", []string{"10.0.0.7, 10.0.0.5"}, testProxies, "10.0.0.7"},
		{"garbage stops at last trusted hop", "10.0.0.1", []string{"1.1.1.1, garbage, 10.0.0.5"}, testProxies, "10.0.0.5"},
		{"garbage right next to peer", "10.0.0.1", []string{"1.1.1.1, garbage"}, testProxies, "10.0.0.1"},
		{"trailing comma is an empty element", "10.0.0.1", []string{"1.1.1.1,"}, testProxies, "10.0.0.1"},
		{"too long element is garbage", "10.0.0.1", []string{"1.1.1.1, " + long}, testProxies, "10.0.0.1"},
		{"spaces and tabs", "10.0.0.1", []string{" 1.1.1.1 ,\t10.0.0.5\t"}, testProxies, "1.1.1.1"},
		{"port", "10.0.0.1", []string{"1.1.1.1:5555"}, testProxies, "1.1.1.1"},
		{"multiple headers, last is a proxy", "10.0.0.1", []string{"1.1.1.1", "10.0.0.5"}, testProxies, "1.1.1.1"},
		{"multiple headers, client in last", "10.0.0.1", []string{"2.2.2.2", "1.1.1.1, 10.0.0.5"}, testProxies, "1.1.1.1"},
		{"multiple headers, all proxies in last", "10.0.0.1", []string{"2.2.2.2, 10.0.0.9", "10.0.0.5"}, testProxies, "2.2.2.2"},
		{"empty header value skipped", "10.0.0.1", []string{"1.1.1.1", ""}, testProxies, "1.1.1.1"},
		{"IPv6 peer and client", "fd00::1", []string{"2001:db8::1"}, testProxies, "2001:db8::1"},
		{"IPv6 with port", "fd00::1", []string{"[2001:db8::1]:443, fd00::2"}, testProxies, "2001:db8::1"},
		{"IPv6 untrusted", "2001:db8::9", []string{"2001:db8::1"}, testProxies, "2001:db8::9"},
		{"mapped peer is trusted", "::ffff:10.0.0.1", []string{"1.1.1.1"}, testProxies, "1.1.1.1"},
		{"mapped peer printed unmapped", "::ffff:203.0.113.7", []string{"1.1.1.1"}, testProxies, "203.0.113.7"},
		{"mapped element unmapped", "10.0.0.1", []string{"::ffff:1.1.1.1"}, testProxies, "1.1.1.1"},
		{"placeholder is garbage", "10.0.0.1", []string{"1.1.1.1, unknown"}, testProxies, "10.0.0.1"},
		{"IPv4 with zone is garbage", "10.0.0.1", []string{"1.1.1.1%eth0"}, testProxies, "10.0.0.1"},
		{"bracketed IPv4 is garbage", "10.0.0.1", []string{"[1.1.1.1]:80"}, testProxies, "10.0.0.1"},
		{"bad port is garbage", "10.0.0.1", []string{"1.1.1.1:99999"}, testProxies, "10.0.0.1"},
		{"IPv4 port without brackets, two colons", "10.0.0.1", []string{"1.1.1.1:80:80"}, testProxies, "10.0.0.1"},
		// Unbracketed, a trailing ":80" is part of the IPv6 address, as netip reads it.
		{"unbracketed IPv6 and port", "10.0.0.1", []string{"2001:db8::1:80"}, testProxies, "2001:db8::1:80"},
		{"IPv6 zone", "10.0.0.1", []string{"fe80::1%eth0"}, testProxies, "fe80::1%eth0"},
		{"IPv6 zone and port", "10.0.0.1", []string{"[fe80::1%eth0]:80"}, testProxies, "fe80::1%eth0"},
		{"mapped element is trusted", "10.0.0.1", []string{"1.1.1.1, ::ffff:10.0.0.5"}, testProxies, "1.1.1.1"},
	}
	for _, c := range cases {
		r := &req{peer: netip.MustParseAddr(c.peer), xff: xff(c.xff...)}
		if got := routing.ClientIP(r, c.trusted); got.String() != c.want {
			t.Errorf("%s: ClientIP(peer %s, XFF %q) = %s, want %s", c.name, c.peer, c.xff, got, c.want)
		}
		// StaticRequest collects every X-Forwarded-For header, in any spelling.
		sr := &routing.StaticRequest{PeerAddr: netip.MustParseAddr(c.peer)}
		for i, v := range c.xff {
			name := "X-Forwarded-For"
			if i%2 == 1 {
				name = "x-forwarded-for"
			}
			sr.Headers = append(sr.Headers, [2]string{name, v})
		}
		if got := routing.ClientIP(sr, c.trusted); got.String() != c.want {
			t.Errorf("%s: StaticRequest: ClientIP = %s, want %s", c.name, got, c.want)
		}
	}
}

func TestClientIPInvalidPeer(t *testing.T) {
	r := &req{xff: xff("1.1.1.1")}
	if got := routing.ClientIP(r, testProxies); got.IsValid() {
		t.Errorf("ClientIP with no peer = %s, want the zero Addr", got)
	}
}

// refClientIP is the X-Forwarded-For rule written plainly: join every header's
// elements, walk from the right while the address is trusted; an element that is not
// an address (with an optional port, trimmed of spaces and tabs, at most 64 bytes)
// stops the walk at the last trusted hop.
func refClientIP(peer netip.Addr, headers []string, trusted []netip.Prefix) netip.Addr {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	peer = peer.Unmap()
	if !isTrusted(peer) {
		return peer
	}
	var elems []string
	for _, h := range headers {
		if h != "" {
			elems = append(elems, strings.Split(h, ",")...)
		}
	}
	client := peer
	for i := len(elems) - 1; i >= 0; i-- {
		s := strings.Trim(elems[i], " \t")
		if len(s) > 64 {
			return client
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			ap, err2 := netip.ParseAddrPort(s)
			if err2 != nil {
				return client
			}
			a = ap.Addr()
		}
		client = a.Unmap()
		if !isTrusted(client) {
			return client
		}
	}
	return client
}

// peerFrom turns fuzz bytes into a peer: 16 bytes an IPv6 (or mapped) address, 4 an
// IPv4 one, anything else no address.
func peerFrom(b []byte) netip.Addr {
	switch {
	case len(b) >= 16:
		return netip.AddrFrom16([16]byte(b[:16]))
	case len(b) >= 4:
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.Addr{}
}

func FuzzClientIP(f *testing.F) {
	f.Add([]byte("1.1.1.1, 10.0.0.5"), []byte(""), []byte{10, 0, 0, 1})
	f.Add([]byte("garbage, 10.0.0.5"), []byte("2.2.2.2"), []byte{10, 0, 0, 1})
	f.Add([]byte("[2001:db8::1]:443, fd00::2"), []byte("fe80::1%eth0"), []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte("::ffff:1.2.3.4:80,,"), []byte("10.9.9.9"), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3})
	f.Add([]byte("1.1.1.1"), []byte(nil), []byte{203, 0, 113, 7})
	f.Fuzz(func(t *testing.T, h1, h2, peerBytes []byte) {
		peer := peerFrom(peerBytes)
		headers := []string{string(h1), string(h2)}
		r := &req{peer: peer, xff: [][]byte{h1, h2}}
		got := routing.ClientIP(r, testProxies)
		if want := refClientIP(peer, headers, testProxies); got != want {
			t.Fatalf("ClientIP(peer %s, XFF %q) = %s, reference %s", peer, headers, got, want)
		}
		if got == peer.Unmap() {
			return
		}
		// Otherwise the address must be one the input spelled out.
		for _, h := range headers {
			for _, e := range strings.Split(h, ",") {
				s := strings.Trim(e, " \t")
				if a, err := netip.ParseAddr(s); err == nil && a.Unmap() == got {
					return
				}
				if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Unmap() == got {
					return
				}
			}
		}
		t.Fatalf("ClientIP(peer %s, XFF %q) = %s, which is neither the peer nor in the header", peer, headers, got)
	})
}
