package proxy

import (
	"testing"

	"github.com/shiftgate/shiftgate/conf"
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
