package conf

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseLevers(t *testing.T) {
	c := mustParse(t, "self_region: idc\nlimits: {site_rps: 20000, ramp: 2m}\nbudgets:\n  - {from: idc, to: cloud, rate: 800Mbit}\n"+
		base+"    limit_rps: 5000\n    priority: low\n    budget_mode: pace\n  - name: login\n    match: {path_prefix: /login}\n")
	if c.Limits.SiteRPS != 20000 || c.Limits.Ramp.D != 2*time.Minute {
		t.Fatalf("limits %+v", c.Limits)
	}
	feed, _ := c.Route("feed")
	login, _ := c.Route("login")
	if feed.LimitRPS != 5000 || feed.Priority != PriorityLow || feed.BudgetMode != BudgetPace {
		t.Fatalf("feed %v %q %q", feed.LimitRPS, feed.Priority, feed.BudgetMode)
	}
	// Defaults, applied once in defaults.go.
	if login.LimitRPS != 0 || login.Priority != PriorityNormal || login.BudgetMode != BudgetRefuse {
		t.Fatalf("login defaults %v %q %q", login.LimitRPS, login.Priority, login.BudgetMode)
	}
	if len(c.Budgets) != 1 || c.Budgets[0].Rate.BytesPerSec != 100e6 || c.Budgets[0].Rate.String() != "800Mbit" {
		t.Fatalf("budgets %+v", c.Budgets)
	}
}

// TestParseLeverErrors: every bad lever key is reported with file:line and its path.
func TestParseLeverErrors(t *testing.T) {
	f := func(name, input, want string) {
		t.Helper()
		_, err := Parse("c.yaml", []byte(input))
		var es Errors
		if err == nil || !errors.As(err, &es) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", name, err, want)
		}
	}
	f("negative site", "limits: {site_rps: -5}\n"+base, "c.yaml:1: limits.site_rps: want a request rate in 0..1e+09")
	f("site not a number", "limits: {site_rps: lots}\n"+base, "c.yaml:1: limits.site_rps")
	f("bad ramp", "limits: {ramp: soon}\n"+base, "c.yaml:1: limits.ramp: want a duration")
	f("negative route", base+"    limit_rps: -1\n", "c.yaml:9: routes[0].limit_rps: want a request rate")
	f("priority", base+"    priority: urgent\n", "c.yaml:9: routes[0].priority: want critical, normal or low, got \"urgent\"")
	f("budget mode", base+"    budget_mode: drop\n", "c.yaml:9: routes[0].budget_mode: want refuse or pace")
	f("budget without self_region", "budgets: [{from: idc, to: cloud, rate: 1Gbit}]\n"+base, "c.yaml:1: budgets[0]: a byte budget needs self_region")
	f("budget unknown region", "self_region: idc\nbudgets:\n  - {from: idc, to: mars, rate: 1Gbit}\n"+base, "c.yaml:3: budgets[0].to: unknown region \"mars\"")
	f("budget no from", "self_region: idc\nbudgets:\n  - {to: cloud, rate: 1Gbit}\n"+base, "c.yaml:3: budgets[0].from: a region is needed")
	f("budget same", "self_region: idc\nbudgets:\n  - {from: idc, to: idc, rate: 1Gbit}\n"+base, "budgets[0].to: from and to are both \"idc\"")
	f("budget bare number", "self_region: idc\nbudgets:\n  - {from: idc, to: cloud, rate: 800}\n"+base, "c.yaml:3: budgets[0].rate: rate \"800\": no unit")
	f("budget no rate", "self_region: idc\nbudgets:\n  - {from: idc, to: cloud}\n"+base, "budgets[0].rate: a rate is needed")
	f("budget twice", "self_region: idc\nbudgets:\n  - {from: idc, to: cloud, rate: 1Gbit}\n  - {from: idc, to: cloud, rate: 2Gbit}\n"+base,
		"c.yaml:4: budgets[1]: the budget idc -> cloud is already set at budgets[0]")
	f("budget unknown key", "self_region: idc\nbudgets:\n  - {from: idc, to: cloud, rate: 1Gbit, burst: 3}\n"+base, "budgets[0].burst: unknown key")
	f("rate_limit is not a key", base+"    rate_limit: 5\n", "routes[0].rate_limit: unknown key")
}

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
	}{
		{"800Mbit", 100e6}, {"1Gbps", 125e6}, {"100MB", 100e6}, {"100MB/s", 100e6}, {"64KiB/s", 65536},
		{"1.5 Gbit", 187.5e6}, {"8bit", 1}, {"3gbit", 375e6}, {"1Tbit", 125e9},
		{"800", -1}, {"0Mbit", -1}, {"Mbit", -1}, {"1e9bit", -1}, {"5 furlongs", -1}, {"1.Mbit", -1}, {"", -1},
	} {
		got, err := ParseRate(c.in)
		if c.want < 0 {
			if err == nil {
				t.Errorf("ParseRate(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || math.Abs(got-c.want) > 1e-6*c.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for bps, want := range map[float64]string{100e6: "800Mbit", 375e6: "3Gbit", 0: "off", 125: "1kbit", 10: "80bit"} {
		if got := FormatRate(bps); got != want {
			t.Errorf("FormatRate(%v) = %q, want %q", bps, got, want)
		}
	}
}

// TestLeverOverrides: an override wins over the file, off is an override of 0, and
// overrides for routes or regions the config lacks are stale, not applied.
func TestLeverOverrides(t *testing.T) {
	c := mustParse(t, "self_region: idc\nlimits: {site_rps: 100, ramp: 1m}\nbudgets: [{from: idc, to: cloud, rate: 1Mbit}]\n"+base+"    limit_rps: 50\n")
	feed, _ := c.Route("feed")
	var o Overrides
	if l := o.SiteLimitOf(c); l.RPS != 100 || l.Ramp != time.Minute || l.Override != nil {
		t.Fatalf("file site %+v", l)
	}
	o.SiteLimit = &LimitOverride{RPS: 0, Ramp: time.Second, Who: "ops"}
	o.RouteLimits = map[string]LimitOverride{"feed": {RPS: 7}, "gone": {RPS: 3}}
	o.Budgets = map[string]BudgetOverride{"idc/cloud": {BytesPerSec: 0}, "cloud/idc": {BytesPerSec: 9}, "idc/mars": {BytesPerSec: 1}, "bad": {}}
	if l := o.SiteLimitOf(c); l.RPS != 0 || l.Ramp != time.Second || l.Override == nil {
		t.Fatalf("override site %+v", l)
	}
	if l := o.RouteLimitOf(c, feed); l.RPS != 7 || l.Override == nil {
		t.Fatalf("override feed %+v", l)
	}
	bs := o.BudgetsOf(c)
	if len(bs) != 2 || bs[0].From != "cloud" || bs[0].BytesPerSec != 9 || bs[0].FileBytesPerSec != 0 ||
		bs[1].From != "idc" || bs[1].BytesPerSec != 0 || bs[1].FileBytesPerSec != 125000 || bs[1].Override == nil {
		t.Fatalf("budgets %+v", bs)
	}
	if got := strings.Join(o.StaleLevers(c), ","); got != "budgets/bad,budgets/idc/mars,limits/routes/gone" {
		t.Fatalf("stale %s", got)
	}
	// Clone is deep: changing the copy leaves the original alone.
	cp := o.Clone()
	cp.SiteLimit.RPS = 99
	cp.RouteLimits["feed"] = LimitOverride{RPS: 1}
	cp.Budgets["idc/cloud"] = BudgetOverride{BytesPerSec: 1}
	if o.SiteLimit.RPS != 0 || o.RouteLimits["feed"].RPS != 7 || o.Budgets["idc/cloud"].BytesPerSec != 0 {
		t.Fatal("Clone shares the lever overrides")
	}
}

func TestSplitBudgetKey(t *testing.T) {
	for k, ok := range map[string]bool{"idc/cloud": true, "a/b": true, "idc": false, "/cloud": false, "idc/": false, "a/b/c": false, "": false} {
		from, to, got := SplitBudgetKey(k)
		if got != ok || (ok && BudgetKey(from, to) != k) {
			t.Errorf("SplitBudgetKey(%q) = %q %q %v, want ok=%v", k, from, to, got, ok)
		}
	}
}
