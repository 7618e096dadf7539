package conf

import (
	"strings"
	"testing"
)

func TestReadAtStart(t *testing.T) {
	running, err := Parse("c.yaml", []byte(base+"listen: 127.0.0.1:8080\ntimeouts: {idle: 60s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		extra string // appended to base
		want  string // KeyChange strings, "; "-joined
	}{
		{"the same file", "listen: 127.0.0.1:8080\ntimeouts: {idle: 60s}\n", ""},
		{"keys a reload applies", "listen: 127.0.0.1:8080\ntimeouts: {idle: 60s, body: 5s, connect: 1s, shutdown: 3s}\nlimits: {max_body_bytes: 1MiB}\n", ""},
		{"client idle timeout", "listen: 127.0.0.1:8080\ntimeouts: {idle: 5s}\n", "timeouts.idle (running 1m0s, file 5s)"},
		{"listener and head timeout", "listen: 127.0.0.1:9095\ntimeouts: {idle: 60s, request_head: 2s}\n",
			"listen (running 127.0.0.1:8080, file 127.0.0.1:9095); timeouts.request_head (running 10s, file 2s)"},
		{"parking off, connection cap", "listen: 127.0.0.1:8080\ntimeouts: {idle: 60s, park_idle: off}\nlimits: {max_conns: 10, max_header_bytes: 8KiB}\n",
			"timeouts.park_idle (running 1s, file off); limits.max_header_bytes (running 65536, file 8192); limits.max_conns (running 10000, file 10)"},
		{"state dir and admin listener", "listen: 127.0.0.1:8080\ntimeouts: {idle: 60s}\nstate_dir: /var/lib/sg2\nadmin: {listen: 127.0.0.1:9999}\n",
			"admin.listen (running 127.0.0.1:9090, file 127.0.0.1:9999); state_dir (running state, file /var/lib/sg2)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, err := Parse("c.yaml", []byte(base+tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range ReadAtStart(running, next) {
				got = append(got, k.String())
			}
			if g := strings.Join(got, "; "); g != tc.want {
				t.Errorf("ReadAtStart:\n got %s\nwant %s", g, tc.want)
			}
		})
	}
}
