package drill

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDrill runs a short drill and holds it to its bar: zero failed requests outside
// the region kill, zero users moved back outside rollback, no request routed the old
// way after a change returned, and the shares the ramp asks for.
func TestDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 4-second drill")
	}
	res, err := Run(context.Background(), Options{Users: 500, Conns: 8, Phase: 400 * time.Millisecond, Reloads: 10})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	Print(&out, res)
	t.Log("\n" + out.String())
	if !Passed(res) {
		t.Fatal("drill failed its bar")
	}
	byName := map[string]PhaseResult{}
	for _, p := range res {
		byName[p.Name] = p
		if p.Requests == 0 {
			t.Errorf("phase %s sent no requests", p.Name)
		}
		if p.StaleAfter != 0 {
			t.Errorf("phase %s: %d requests routed the old way after the change returned", p.Name, p.StaleAfter)
		}
	}
	if p := byName["rollback on"]; p.Back == 0 || !p.BackAllowed {
		t.Errorf("rollback moved nobody back: %+v", p)
	}
	if p := byName["ramp 100%"]; p.CloudPct < 90 {
		t.Errorf("at 100%% only %.1f%% went to the cloud", p.CloudPct)
	}
	if p := byName["ramp 1%"]; p.CloudPct > 5 {
		t.Errorf("at 1%% already %.1f%% went to the cloud", p.CloudPct)
	}
	if !strings.Contains(out.String(), "reload storm (10)") {
		t.Errorf("no reload storm in %s", out.String())
	}
}
