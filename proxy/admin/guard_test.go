package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/proxy"
)

// newTestServer builds a Server on a minimal config (nothing listens: the admin
// handler is driven with httptest). token, when not "", is the admin bearer token.
func newGuardServer(t *testing.T, token string) *proxy.Server {
	t.Helper()
	dir := t.TempDir()
	text := "state_dir: " + filepath.Join(dir, "state") + `
regions:
  idc:   { upstreams: ["127.0.0.1:1"] }
  cloud: { upstreams: ["127.0.0.1:2"] }
split: { from: idc, to: cloud }
routes:
  - { name: api, match: { path_prefix: / }, percent: 10 }
`
	if token != "" {
		tf := filepath.Join(dir, "token")
		if err := os.WriteFile(tf, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		text += "admin: { listen: 127.0.0.1:9090, token_file: " + tf + " }\n"
	}
	cfg, err := conf.Parse(filepath.Join(dir, "shiftgate.yaml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := proxy.New(cfg, proxy.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoFallbackStore: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(0) }) //nolint:errcheck
	return srv
}

// TestGuardCrossSite replays what a web page (or a DNS-rebound name) can make a
// browser send to the default admin listener, and what the CLI and dashboard send.
// Each case says whether the rollback switch may have moved.
func TestGuardCrossSite(t *testing.T) {
	const admin = "127.0.0.1:9090"
	cases := []struct {
		name        string
		method      string
		host        string
		header      map[string]string
		body        string
		wantStatus  int
		wantRolling bool // the request turned rollback on
	}{
		{name: "cross-site form post as text/plain", method: "POST", host: admin,
			header: map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"},
			body:   `{"on":true}`, wantStatus: http.StatusForbidden},
		{name: "text/plain without Origin (no-cors fetch from an old browser)", method: "POST", host: admin,
			header: map[string]string{"Content-Type": "text/plain"},
			body:   `{"on":true}`, wantStatus: http.StatusUnsupportedMediaType},
		{name: "form-urlencoded", method: "POST", host: admin,
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			body:   `{"on":true}`, wantStatus: http.StatusUnsupportedMediaType},
		{name: "JSON from a foreign Origin", method: "POST", host: admin,
			header: map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example"},
			body:   `{"on":true}`, wantStatus: http.StatusForbidden},
		{name: "JSON from an Origin on another port of this host", method: "POST", host: admin,
			header: map[string]string{"Content-Type": "application/json", "Origin": "http://127.0.0.1:8000"},
			body:   `{"on":true}`, wantStatus: http.StatusForbidden},
		{name: "DNS-rebound host on a state-changing request", method: "POST", host: "evil.example:9090",
			header: map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example:9090"},
			body:   `{"on":true}`, wantStatus: http.StatusMisdirectedRequest},
		{name: "same-origin JSON (the dashboard)", method: "POST", host: admin,
			header: map[string]string{"Content-Type": "application/json; charset=utf-8", "Origin": "http://" + admin},
			body:   `{"on":true}`, wantStatus: http.StatusOK, wantRolling: true},
		{name: "JSON without Origin (the CLI)", method: "POST", host: "localhost:9090",
			header: map[string]string{"Content-Type": "application/json"},
			body:   `{"on":true}`, wantStatus: http.StatusOK, wantRolling: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newGuardServer(t, "")
			h := Handler(srv)
			req := httptest.NewRequest(tc.method, "/v1/rollback", strings.NewReader(tc.body))
			req.Host = tc.host
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body.String())
			}
			if got := srv.Overrides().Rollback.On; got != tc.wantRolling {
				t.Errorf("rollback on = %v after the request, want %v", got, tc.wantRolling)
			}
		})
	}
}

// TestGuardRebindingRead: a page on a DNS-rebound name reaches the listener with its
// own Host; even reads are refused, so it cannot learn the config or the token's
// absence. The listener's own address and localhost pass.
func TestGuardRebindingRead(t *testing.T) {
	srv := newGuardServer(t, "")
	h := Handler(srv)
	for _, tc := range []struct {
		host string
		want int
	}{
		{"evil.example:9090", http.StatusMisdirectedRequest},
		{"evil.example", http.StatusMisdirectedRequest},
		{"127.0.0.1.nip.io:9090", http.StatusMisdirectedRequest},
		{"localhost.evil.example:9090", http.StatusMisdirectedRequest},
		{"127.0.0.1:9090", http.StatusOK},
		{"[::1]:9090", http.StatusOK},
		{"LOCALHOST:9090", http.StatusOK},
	} {
		for _, path := range []string{"/v1/status", "/metrics", "/v1/decide?path=/"} {
			req := httptest.NewRequest("GET", path, nil)
			req.Host = tc.host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("GET %s with Host %q: status %d, want %d", path, tc.host, rec.Code, tc.want)
			}
		}
	}
}

// TestGuardBearerScheme: RFC 9110 makes the auth scheme case-insensitive; a wrong or
// missing token is refused with a challenge.
func TestGuardBearerScheme(t *testing.T) {
	const token = "0123456789abcdef-token"
	srv := newGuardServer(t, token)
	h := Handler(srv)
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"Bearer " + token, http.StatusOK},
		{"bearer " + token, http.StatusOK},
		{"BEARER " + token, http.StatusOK},
		{"Bearer  " + token + " ", http.StatusOK},
		{"Basic " + token, http.StatusUnauthorized},
		{"Bearer wrong-token-0123456789", http.StatusUnauthorized},
		{"", http.StatusUnauthorized},
	} {
		req := httptest.NewRequest("GET", "/v1/status", nil)
		req.Host = "127.0.0.1:9090"
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("Authorization %q: status %d, want %d", tc.auth, rec.Code, tc.want)
		}
		if tc.want == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: 401 without a WWW-Authenticate challenge", tc.auth)
		}
	}
}
