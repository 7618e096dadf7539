package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/shiftgate/shiftgate/proxy"
)

// PlanRequest is the body of POST /v1/plans/{route}/{verb}: an empty JSON object (a
// JSON body is what keeps a web page from sending the verb across sites).
type PlanRequest struct{}

// plans answers GET /v1/plans. The live gate readings are the driver's: an instance
// that does not drive the plans asks the one that does (unless ?local=1), and answers
// with its own view of the stored progress when the driver does not answer.
func (a *api) plans(w http.ResponseWriter, r *http.Request) {
	d, err := a.srv.PlanDriver()
	if err != nil {
		writeErr(w, err)
		return
	}
	ans, err := d.Plans(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	if !ans.Driving && ans.DriverAdmin != "" && ans.DriverAdmin != a.self && r.URL.Query().Get("local") != "1" {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		c := &Client{Base: "http://" + ans.DriverAdmin, Token: a.srv.AdminToken(), HTTP: &http.Client{Timeout: 2 * time.Second}}
		var remote proxy.PlansAnswer
		if err := c.DoContext(ctx, "GET", "/v1/plans?local=1", nil, &remote); err == nil {
			// The driver's answer, told by this instance: it is not the driver.
			remote.Instance, remote.Driving = ans.Instance, false
			remote.Driver, remote.DriverAdmin = ans.Driver, ans.DriverAdmin
			writeJSON(w, http.StatusOK, remote)
			return
		}
	}
	writeJSON(w, http.StatusOK, ans)
}

// planVerb answers POST /v1/plans/{route}/{verb}: start, pause, resume or abort.
func (a *api) planVerb(w http.ResponseWriter, r *http.Request) {
	var req PlanRequest
	if err := decodeJSON(w, r, 1024, &req); err != nil {
		writeErr(w, err)
		return
	}
	d, err := a.srv.PlanDriver()
	if err != nil {
		writeErr(w, err)
		return
	}
	out, err := d.Act(r.Context(), who(r), r.PathValue("route"), r.PathValue("verb"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
