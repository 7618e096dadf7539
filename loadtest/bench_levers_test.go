package loadtest

import (
	"testing"

	"github.com/shiftgate/shiftgate/conf"
)

// TestLeversOnConfig: the shiftgate-levers target's config loads and has a site cap,
// a cap on the split route and a byte budget from its own region, none reachable.
func TestLeversOnConfig(t *testing.T) {
	path, err := writeShiftgateConfig(testFields(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := leversOn(path); err != nil {
		t.Fatal(err)
	}
	c, err := conf.LoadFile(path)
	if err != nil {
		t.Fatalf("the levers config does not load: %v", err)
	}
	feed, ok := c.Route("feed")
	if !ok || c.SelfRegion != "idc" || c.Limits.SiteRPS < 1e9 || feed.LimitRPS < 1e9 || len(c.Budgets) != 1 || c.Budgets[0].From != "idc" {
		t.Fatalf("levers: self %q site %v feed %v budgets %+v", c.SelfRegion, c.Limits.SiteRPS, feed.LimitRPS, c.Budgets)
	}
}
