package tlsconf

import (
	"crypto/tls"
	"testing"

	"github.com/shiftgate/shiftgate/proxy/tlsconf/tlstest"
)

func TestSetSelect(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "test CA")
	load := func(names ...string) *Cert {
		certPEM, keyPEM := ca.Issue(t, tlstest.Leaf{Names: names})
		c, err := parse(Pair{CertFile: names[0]}, certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	def := load("default.example")
	api := load("api.example", "API2.example")
	wild := load("*.shop.example")
	exact := load("www.shop.example")
	s := NewSet([]*Cert{def, api, wild, exact})
	for _, tc := range []struct {
		sni  string
		want *Cert
	}{
		{"", def},                   // no SNI: the default
		{"unknown.example", def},    // no certificate covers it
		{"api.example", api},        // exact
		{"API.Example.", api},       // case and trailing dot
		{"api2.example", api},       // a later SAN of the same certificate
		{"cart.shop.example", wild}, // wildcard, one label
		{"www.shop.example", exact}, // exact beats wildcard
		{"a.b.shop.example", def},   // a wildcard covers one label only
		{"shop.example", def},       // nor the bare parent
		{"default.example", def},
	} {
		if got := s.Select(&tls.ClientHelloInfo{ServerName: tc.sni}); got != tc.want {
			t.Errorf("SNI %q: got %s, want %s", tc.sni, got.Name(), tc.want.Name())
		}
	}
	if NewSet(nil).Select(&tls.ClientHelloInfo{ServerName: "x"}) != nil {
		t.Error("empty set selected something")
	}
}

func TestSelectAllocs(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	certPEM, keyPEM := ca.Issue(t, tlstest.Leaf{Names: []string{"api.example", "*.shop.example"}})
	c, err := parse(Pair{}, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSet([]*Cert{c})
	for _, sni := range []string{"api.example", "cart.shop.example", "other.example", ""} {
		hello := &tls.ClientHelloInfo{ServerName: sni}
		if n := testing.AllocsPerRun(100, func() { s.Select(hello) }); n != 0 {
			t.Errorf("Select(%q): %v allocs, want 0", sni, n)
		}
	}
}

func BenchmarkSelect(b *testing.B) {
	ca := tlstest.NewCA(b, "test CA")
	var certs []*Cert
	for _, n := range []string{"a.example", "b.example", "*.c.example", "d.example"} {
		certPEM, keyPEM := ca.Issue(b, tlstest.Leaf{Names: []string{n}})
		c, err := parse(Pair{}, certPEM, keyPEM)
		if err != nil {
			b.Fatal(err)
		}
		certs = append(certs, c)
	}
	s := NewSet(certs)
	hello := &tls.ClientHelloInfo{ServerName: "x.c.example"}
	b.ReportAllocs()
	for b.Loop() {
		s.Select(hello)
	}
}
