package proxy

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/shiftgate/shiftgate/conf"
	"github.com/shiftgate/shiftgate/conf/store"
)

// TestApplyStoredKeepsNewer: a write's result that returns after the store's watch
// applied a newer revision must not replace it.
func TestApplyStoredKeepsNewer(t *testing.T) {
	idc, cloud := startRegion(t, "idc"), startRegion(t, "cloud")
	gw := startGateway(t, twoRegions, map[string]string{"IDC": idc.Addr, "CLOUD": cloud.Addr})
	newer := conf.Overrides{Revision: 11, Routes: map[string]conf.RouteOverride{"feed": {PercentBP: 9000, WritePercentBP: 0}}}
	older := conf.Overrides{Revision: 10, Routes: map[string]conf.RouteOverride{"feed": {PercentBP: 1000, WritePercentBP: 0}}}
	if err := gw.srv.ApplyOverrides(newer); err != nil {
		t.Fatal(err)
	}
	if err := gw.srv.applyStored(older); err != nil {
		t.Fatal(err)
	}
	if got := gw.srv.Overrides(); got.Revision != 11 || got.Routes["feed"].PercentBP != 9000 {
		t.Fatalf("an older write result replaced a newer revision: %+v", got)
	}
	same := conf.Overrides{Revision: 11, Routes: map[string]conf.RouteOverride{"feed": {PercentBP: 7000}}}
	if err := gw.srv.applyStored(same); err != nil || gw.srv.Overrides().Routes["feed"].PercentBP != 7000 {
		t.Fatalf("a local write (same revision) must apply: %v %+v", err, gw.srv.Overrides())
	}
}

// TestStatusOfStoreErrors: a write the fleet store refused unsent is a 503; one sent
// whose answer did not come (it may have taken effect) a 504; both are failures.
func TestStatusOfStoreErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("override store x: %w (etcd: refused): nothing was changed", store.ErrDown), http.StatusServiceUnavailable},
		{fmt.Errorf("override store x: %w (etcd: context deadline exceeded): may or may not have taken effect", store.ErrOutcomeUnknown), http.StatusGatewayTimeout},
		{fmt.Errorf("x: %w", store.ErrLocalWhileUp), http.StatusConflict},
	} {
		if got := StatusOf(c.err); got != c.want {
			t.Errorf("StatusOf(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
