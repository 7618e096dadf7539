// Package admin is shiftgate's admin surface: the HTTP handlers of the admin listener,
// their authentication and cross-site defences, and the client the CLI uses to call
// them. It reads and changes the gateway only through the Server's control API.
package admin

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/shiftgate/shiftgate/proxy"
)

// Handler returns the admin API of srv. Requests need the config's bearer token when
// it has one; state-changing requests must also come from the admin's own origin.
func Handler(srv *proxy.Server) http.Handler {
	return handler(srv, "")
}

// handler is Handler for an API served at self (its listener's address), which a
// fleet view skips when it asks the other instances.
func handler(srv *proxy.Server, self string) http.Handler {
	a := &api{srv: srv, self: self}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", a.status)
	mux.HandleFunc("PUT /v1/routes/{name}/split", a.split)
	mux.HandleFunc("DELETE /v1/routes/{name}/split", a.clearSplit)
	mux.HandleFunc("PUT /v1/splits", a.bulkSplit)
	mux.HandleFunc("POST /v1/rollback", a.rollback)
	mux.HandleFunc("POST /v1/cutoff", a.cutoff)
	mux.HandleFunc("GET /v1/decide", a.decide)
	mux.HandleFunc("GET /v1/fleet", a.fleet)
	mux.HandleFunc("GET /v1/diff", a.diff)
	mux.HandleFunc("GET /v1/stats", a.stats)
	a.registerDashboard(mux)
	mux.HandleFunc("GET /v1/limits", a.limits)
	mux.HandleFunc("PUT /v1/limits", a.changeLimits)
	mux.HandleFunc("GET /v1/plans", a.plans)
	mux.HandleFunc("POST /v1/plans/{route}/{verb}", a.planVerb)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		srv.WriteMetrics(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if ok, why := srv.Ready(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	// Profiles for operators chasing CPU or memory; behind the same token as the rest.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/mutex", contentionProfile("mutex", mutexRecorder))
	mux.HandleFunc("GET /debug/pprof/block", contentionProfile("block", blockRecorder))
	return a.guard(mux)
}

// Serve serves srv's admin API on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, srv *proxy.Server) error {
	hs := &http.Server{Handler: handler(srv, ln.Addr().String()), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(c) //nolint:errcheck // best effort on exit
	}()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

type api struct {
	srv  *proxy.Server
	self string // this admin listener's address ("" when unknown)
}

// guard applies the checks every admin request passes: a Host that is the admin
// listener's own (an IP literal or localhost, so a DNS-rebound name cannot read the
// API), the bearer token when one is configured, and for requests that change state a
// JSON body and no foreign Origin (a web page cannot send either without CORS, which
// the admin API never grants).
func (a *api) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host) {
			writeErr(w, proxy.Errorf(http.StatusMisdirectedRequest, "host %q is not this admin listener: use its address or localhost", r.Host))
			return
		}
		if token := a.srv.AdminToken(); token != "" && !dashboardPublic(r) {
			scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="shiftgate"`)
				writeErr(w, proxy.Errorf(http.StatusUnauthorized, "missing or wrong bearer token"))
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := sameOrigin(r); err != nil {
				writeErr(w, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hostAllowed accepts IP literals and localhost, with or without a port.
func hostAllowed(host string) bool {
	if host == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	return net.ParseIP(h) != nil
}

// sameOrigin refuses a state-changing request that a browser could have sent from
// another site: one whose body is not JSON, or whose Origin is not the admin's own.
func sameOrigin(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return proxy.Errorf(http.StatusForbidden, "cross-origin request from %q refused", o)
		}
	}
	if r.Method == http.MethodDelete && r.ContentLength <= 0 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return proxy.Errorf(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
	}
	return nil
}

// writeJSON answers v as indented JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client may be gone
}

// ErrorBody is the JSON answer of every failed admin request.
type ErrorBody struct {
	Error string `json:"error"`
	// Refused describes a split change refused because it moves users back.
	Refused *proxy.SplitResult `json:"refused,omitempty"`
}

// writeErr answers err with the status it carries.
func writeErr(w http.ResponseWriter, err error) {
	body := ErrorBody{Error: err.Error()}
	var e *proxy.Error
	if errors.As(err, &e) {
		body.Refused = e.Refused
	}
	writeJSON(w, proxy.StatusOf(err), body)
}

// decodeJSON reads a bounded JSON body into v, refusing unknown fields and a body
// without one of the required fields (a switch whose "on" is missing must not read
// as off); numbers stay json.Number so percents keep their decimals.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any, required ...string) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return proxy.Errorf(http.StatusBadRequest, "body: %v", err)
	}
	if len(required) > 0 {
		// A body with required fields is an object: null or [] would decode to the
		// zero value, "off", as {} did.
		var fields map[string]json.RawMessage
		if json.Unmarshal(body, &fields) != nil || fields == nil {
			return proxy.Errorf(http.StatusBadRequest, "body: want a JSON object with %s", strings.Join(required, ", "))
		}
		for _, f := range required {
			if _, ok := fields[f]; !ok {
				return proxy.Errorf(http.StatusBadRequest, "body: %s is required", f)
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if strings.Contains(err.Error(), "invalid number literal") {
			// encoding/json does not name the field here; the endpoint says which
			// numbers its body has.
			if strings.HasSuffix(r.URL.Path, "/limits") {
				return proxy.Errorf(http.StatusBadRequest, "body: rps: want requests per second above 0 as a JSON number such as 20000")
			}
			return proxy.Errorf(http.StatusBadRequest, "body: percent: want 0..100 as a JSON number such as 25 or 0.5")
		}
		var num *json.UnmarshalTypeError
		if errors.As(err, &num) && num.Field != "" {
			want := num.Type.String()
			switch num.Type {
			case reflect.TypeFor[json.Number]():
				want = "number from 0 to 100 such as 25 or 0.5"
			case reflect.TypeFor[bool]():
				want = "true or false"
			}
			return proxy.Errorf(http.StatusBadRequest, "body: %s: want %s, got a JSON %s", num.Field, want, num.Value)
		}
		return proxy.Errorf(http.StatusBadRequest, "body: %v", err)
	}
	return nil
}

// who names the caller of a change in the audit log.
func who(r *http.Request) string { return r.RemoteAddr }

// wantLocal reports whether a write asks to change this instance only (the body's
// "local": true or ?local=1).
func wantLocal(r *http.Request, body bool) bool {
	switch r.URL.Query().Get("local") {
	case "1", "true", "yes":
		return true
	}
	return body
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.srv.Status())
}

func (a *api) split(w http.ResponseWriter, r *http.Request) {
	var req proxy.SplitRequest
	if err := decodeJSON(w, r, 4096, &req); err != nil {
		writeErr(w, err)
		return
	}
	name := r.PathValue("name")
	out, err := a.srv.ChangeSplits(r.Context(), who(r), proxy.BulkSplitRequest{
		Routes: map[string]proxy.SplitRequest{name: req}, DryRun: req.DryRun,
		Local: wantLocal(r, req.Local), Force: req.Force,
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out.Results[0])
}

func (a *api) clearSplit(w http.ResponseWriter, r *http.Request) {
	out, err := a.srv.ClearSplits(r.Context(), who(r), []string{r.PathValue("name")}, wantLocal(r, false))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) bulkSplit(w http.ResponseWriter, r *http.Request) {
	var req proxy.BulkSplitRequest
	if err := decodeJSON(w, r, 1<<20, &req); err != nil {
		writeErr(w, err)
		return
	}
	req.Local = wantLocal(r, req.Local)
	out, err := a.srv.ChangeSplits(r.Context(), who(r), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) rollback(w http.ResponseWriter, r *http.Request) {
	var req proxy.RollbackRequest
	if err := decodeJSON(w, r, 4096, &req, "on"); err != nil {
		writeErr(w, err)
		return
	}
	req.Local = wantLocal(r, req.Local)
	out, err := a.srv.SetRollback(r.Context(), who(r), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) cutoff(w http.ResponseWriter, r *http.Request) {
	var req proxy.CutoffRequest
	if err := decodeJSON(w, r, 64<<10, &req, "on"); err != nil {
		writeErr(w, err)
		return
	}
	req.Local = wantLocal(r, req.Local)
	out, err := a.srv.SetCutoff(r.Context(), who(r), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) decide(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ex, err := a.srv.Explain(q.Get("method"), q.Get("path"), q["header"], q.Get("ip"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ex)
}

func (a *api) fleet(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	st, err := a.srv.FleetInstances(ctx)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *api) diff(w http.ResponseWriter, r *http.Request) {
	out, err := a.srv.Diff(r.URL.Query().Get("route"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
