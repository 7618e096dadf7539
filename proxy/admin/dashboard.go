package admin

import (
	"bytes"
	"context"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/shiftgate/shiftgate/proxy"
	"github.com/shiftgate/shiftgate/proxy/stats"
)

// The migration dashboard is one static page and its scripts, embedded in the binary:
// no build step, no CDN. The page holds no data of the gateway; it fetches everything
// from the JSON endpoints of this listener with the bearer token the operator gives it
// (the URL's #token= fragment, which browsers never send, kept in sessionStorage), so
// the page itself is served without the token and the data never is.

//go:embed dashboard
var dashboardFiles embed.FS

// dashboardPage is index.html, parsed once. Its only input is whether the API wants a
// token, so that the page asks for one before its first request instead of after a 401.
var dashboardPage = template.Must(template.ParseFS(dashboardFiles, "dashboard/index.html"))

// dashboardPollInterval is how often the page asks for new data.
const dashboardPollInterval = 1500 * time.Millisecond

// dashboardCSP confines the page to this listener: its own scripts and styles, fetches
// to its own origin, no frames, no forms, no inline script.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// dashboardPublic reports whether a request reads the page's static files, which the
// guard serves without the token (they hold nothing of the gateway; Host is still
// checked).
func dashboardPublic(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == "/dashboard" || r.URL.Path == "/dashboard/" || strings.HasPrefix(r.URL.Path, "/dashboard/assets/")
}

// DashboardInfo is the body of GET /v1/dashboard: what the page should show panels for
// and how often it polls.
type DashboardInfo struct {
	Features DashboardFeatures `json:"features"`
	PollMs   int               `json:"poll_ms"`
}

// DashboardFeatures says which optional endpoints this gateway answers, so the page
// neither asks for what is not there nor shows an empty panel for it.
type DashboardFeatures struct {
	// Plans: GET /v1/plans exists (ramp plans).
	Plans bool `json:"plans"`
	// Fleet: the override store has a fleet, so /v1/stats?fleet=1 merges its instances.
	Fleet bool `json:"fleet"`
	// Stats: per-cohort statistics are on (stats.off is not set).
	Stats bool `json:"stats"`
}

// registerDashboard adds the page, its assets and its two JSON endpoints to mux.
func (a *api) registerDashboard(mux *http.ServeMux) {
	assets, err := fs.Sub(dashboardFiles, "dashboard/assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix("/dashboard/assets/", noListing(http.FileServerFS(assets)))
	mux.HandleFunc("GET /dashboard", a.dashboard)
	mux.HandleFunc("GET /dashboard/{$}", a.dashboard)
	mux.Handle("GET /dashboard/assets/", dashboardHeaders(files))
	mux.HandleFunc("GET /v1/events", a.eventsHandler)
	mux.HandleFunc("GET /v1/dashboard", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.dashboardInfo(r.Context(), mux))
	})
}

// noListing answers 404 for a directory instead of listing it.
func noListing(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// dashboardHeaders sets the page's security headers on every answer.
func dashboardHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

func (a *api) dashboard(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	err := dashboardPage.Execute(&b, struct{ TokenRequired bool }{a.srv.AdminToken() != ""})
	if err != nil {
		writeErr(w, err)
		return
	}
	dashboardHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b.Bytes()) //nolint:errcheck // the client may be gone
	})).ServeHTTP(w, r)
}

// dashboardInfo finds which optional endpoints mux answers and whether the store has
// a fleet (asking it for at most a second).
func (a *api) dashboardInfo(ctx context.Context, mux *http.ServeMux) DashboardInfo {
	info := DashboardInfo{PollMs: int(dashboardPollInterval / time.Millisecond)}
	if _, pattern := mux.Handler(httptest.NewRequest(http.MethodGet, "/v1/plans", nil)); pattern != "" {
		info.Features.Plans = true
	}
	_, err := a.srv.Stats("", statsInfoView)
	info.Features.Stats = err == nil
	ctx, cancel := context.WithTimeout(ctx, fleetStatsTimeout)
	defer cancel()
	if _, err := a.srv.FleetInstances(ctx); err == nil || proxy.StatusOf(err) != http.StatusNotFound {
		info.Features.Fleet = true
	}
	return info
}

// statsInfoView is the cheapest view that tells whether stats are on.
var statsInfoView = stats.View{History: -1, Top: 1}

// eventsHandler answers GET /v1/events?since=SEQ: the server's recent events after SEQ.
func (a *api) eventsHandler(w http.ResponseWriter, r *http.Request) {
	var since uint64
	if s := r.URL.Query().Get("since"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeErr(w, proxy.Errorf(http.StatusBadRequest, "since: want an event sequence number such as 12, got %q", s))
			return
		}
		since = n
	}
	writeJSON(w, http.StatusOK, EventsBody{Events: a.srv.Events(since)})
}

// EventsBody is the body of GET /v1/events.
type EventsBody struct {
	Events []proxy.Event `json:"events"`
}
