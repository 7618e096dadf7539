package wire

import (
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// protoFields returns the value of every field of h whose name folds (any case, '_'
// for '-') to X-Forwarded-Proto, as a backend that folds names would read them.
func protoFields(h *fasthttp.RequestHeader) []string {
	var out []string
	for k, v := range h.All() {
		if FoldEqual(k, "x-forwarded-proto") {
			out = append(out, string(k)+": "+string(v))
		}
	}
	return out
}

// TestSetForwardedProto: after the strip and SetForwardedProto, exactly one
// X-Forwarded-Proto arrives, the connection's own scheme, unless keep is set and the
// client sent one in the '-' spelling; '_' spellings never arrive.
func TestSetForwardedProto(t *testing.T) {
	spellings := []struct {
		name   string
		fields string // the client's fields
		// sent is what a kept value looks like ("" when the client sent none that
		// may be kept: the '_' spellings are stripped whoever sends them).
		sent string
	}{
		{"none", "", ""},
		{"canonical", "X-Forwarded-Proto: https\r\n", "X-Forwarded-Proto: https"},
		{"lower case", "x-forwarded-proto: https\r\n", "X-Forwarded-Proto: https"},
		{"upper case", "X-FORWARDED-PROTO: https\r\n", "X-Forwarded-Proto: https"},
		{"duplicates", "X-Forwarded-Proto: https\r\nx-forwarded-proto: http\r\n", "X-Forwarded-Proto: https|X-Forwarded-Proto: http"},
		{"underscores", "X_Forwarded_Proto: https\r\n", ""},
		{"mixed underscore", "x-forwarded_proto: https\r\n", ""},
		{"underscore beside the real one", "X_FORWARDED_PROTO: ftp\r\nX-Forwarded-Proto: https\r\n", "X-Forwarded-Proto: https"},
		{"empty value", "X-Forwarded-Proto:\r\n", ""},
	}
	for _, sp := range spellings {
		for _, tls := range []bool{false, true} {
			for _, keep := range []bool{false, true} {
				h := parseHead(t, "GET / HTTP/1.1\r\nHost: a.test\r\n"+sp.fields+"X-Other: 1\r\n\r\n")
				StripRequestHeaders(h)
				SetForwardedProto(h, tls, keep)
				want := "X-Forwarded-Proto: http"
				if tls {
					want += "s"
				}
				if keep && sp.sent != "" {
					want = sp.sent
				}
				if got := strings.Join(protoFields(h), "|"); got != want {
					t.Errorf("%s, tls %v, keep %v: upstream gets %q, want %q", sp.name, tls, keep, got, want)
				}
				if !bytes.Equal(h.Peek("X-Other"), []byte("1")) {
					t.Errorf("%s: X-Other lost", sp.name)
				}
			}
		}
	}
}

// TestForwardedProtoAllocs: replacing a spoofed X-Forwarded-Proto (every spelling)
// allocates nothing.
func TestForwardedProtoAllocs(t *testing.T) {
	const raw = "GET / HTTP/1.1\r\nHost: a.test\r\nx_forwarded_proto: https\r\nX-FORWARDED-PROTO: https\r\n\r\n"
	var h fasthttp.RequestHeader
	src := parseHead(t, raw)
	run := func() {
		src.CopyTo(&h)
		StripRequestHeaders(&h)
		SetForwardedProto(&h, true, false)
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%v allocations per request, want 0", n)
	}
}
