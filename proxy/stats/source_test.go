package stats

import (
	"net/netip"
	"testing"
)

func TestUAFamily(t *testing.T) {
	for _, c := range []struct{ ua, want string }{
		{"curl/8.5.0", UACurl},
		{"okhttp/4.12.0", UAOkHTTP},
		{"Go-http-client/1.1", UAGo},
		{"Go-http-client/2.0", UAGo},
		{"python-requests/2.31.0", UAPythonRequests},
		{"Java/17.0.2", UAJava},
		{"Apache-HttpClient/4.5.14 (Java/17.0.2)", UAJava},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", UAChrome},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0", UAChrome},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0 Mobile/15E148 Safari/604.1", UAChrome},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", UAFirefox},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15", UAFirefox},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", UASafari},
		{"", UAOther},
		{"MyApp/1.0", UAOther},
		{"xcurl/1", UAOther}, // a token must match whole
		{"MyApp/1.0 (Android 14; Pixel 8) okhttp/4.12.0", UAOkHTTP},
		{"Mozilla/5.0 Safari", UAOther},
		{"/curl/", UAOther},
		{"curl", UAOther},
	} {
		if got := UAFamily([]byte(c.ua)); got != c.want {
			t.Errorf("UAFamily(%q) = %q, want %q", c.ua, got, c.want)
		}
	}
}

func TestAppendClientPrefix(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"198.51.100.77", "198.51.100.0/24"},
		{"::ffff:198.51.100.77", "198.51.100.0/24"},
		{"2001:db8:1234:5678::1", "2001:db8:1234::/48"},
		{"fe80::1%eth0", "fe80::/48"},
	} {
		if got := string(AppendClientPrefix(nil, netip.MustParseAddr(c.addr))); got != c.want {
			t.Errorf("AppendClientPrefix(%s) = %q, want %q", c.addr, got, c.want)
		}
	}
	if got := string(AppendClientPrefix([]byte("ip:"), netip.Addr{})); got != "ip:invalid" {
		t.Errorf("invalid address: %q", got)
	}
}

func TestSourceKeysDoNotAllocate(t *testing.T) {
	ua := []byte("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15")
	v6 := netip.MustParseAddr("2001:db8:1234:5678::1")
	buf := make([]byte, 0, KeyLen)
	var sink string
	allocs := testing.AllocsPerRun(1000, func() {
		sink = UAFamily(ua)
		buf = AppendClientPrefix(buf[:0], v6)
	})
	if allocs != 0 || sink != UASafari {
		t.Fatalf("%v allocations", allocs)
	}
}

func BenchmarkUAFamily(b *testing.B) {
	ua := []byte("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15")
	b.ReportAllocs()
	for b.Loop() {
		UAFamily(ua)
	}
}

func FuzzUAFamily(f *testing.F) {
	f.Add([]byte("curl/8"))
	f.Add([]byte("Mozilla/5.0 Chrome/1 Safari/2"))
	known := map[string]bool{UACurl: true, UAOkHTTP: true, UAGo: true, UAChrome: true, UAFirefox: true,
		UASafari: true, UAJava: true, UAPythonRequests: true, UAOther: true}
	f.Fuzz(func(t *testing.T, ua []byte) {
		if got := UAFamily(ua); !known[got] {
			t.Fatalf("UAFamily(%q) = %q, not a family", ua, got)
		}
	})
}
