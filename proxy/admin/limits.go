package admin

import (
	"net/http"

	"github.com/shiftgate/shiftgate/proxy"
)

// limits answers GET /v1/limits: the caps and budgets in force, where each comes
// from, this instance's share and the refusals so far.
func (a *api) limits(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.srv.Limits())
}

// changeLimits answers PUT /v1/limits: `shiftgate limit` and `shiftgate budget`.
func (a *api) changeLimits(w http.ResponseWriter, r *http.Request) {
	var req proxy.LimitsRequest
	if err := decodeJSON(w, r, 64<<10, &req); err != nil {
		writeErr(w, err)
		return
	}
	req.Local = wantLocal(r, req.Local)
	out, err := a.srv.ChangeLimits(r.Context(), who(r), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
