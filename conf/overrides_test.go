package conf

import (
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse("c.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCheckReshuffle(t *testing.T) {
	old := mustParse(t, base) // feed at 25 %: mid-cutover
	now := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	f := func(name, edited string, ov Overrides, want string) {
		t.Helper()
		err := CheckReshuffle(old, mustParse(t, edited), ov, now)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: refused: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
	}
	f("raise percent", withPercent("50"), Overrides{}, "")
	f("lower percent (partial rollback)", withPercent("5"), Overrides{}, "")
	f("new salt", strings.Replace(base, "salt: s", "salt: t", 1), Overrides{}, "c.yaml:6: routes[0]: route feed is mid-cutover at 25%: changing its salt would reshuffle")
	f("swapped from/to", strings.Replace(base, "from: idc, to: cloud", "from: cloud, to: idc", 1), Overrides{}, "from/to")
	f("changed key order", base+"    keys: [\"ip\", \"header:X-User-Id\"]\n", Overrides{}, "keys")
	f("forced in file", "force_reshuffle: true\n"+strings.Replace(base, "salt: s", "salt: t", 1), Overrides{}, "")
	f("forced on route", base+"    force_reshuffle: true\n    salt: t\n", Overrides{}, "")
	// At 0 % or 100 % nobody is mid-move: a reshuffle moves nobody between regions.
	atZero := Overrides{Routes: map[string]RouteOverride{"feed": {PercentBP: 0}}}
	f("new salt at 0 % (override)", strings.Replace(base, "salt: s", "salt: t", 1), atZero, "")
	atHalf := Overrides{Routes: map[string]RouteOverride{"feed": {PercentBP: 5000, WritePercentBP: 5000}}}
	f("new salt at an overridden 50 %", strings.Replace(base, "salt: s", "salt: t", 1), atHalf, "at 50%")
	// Writes mid-move are a cutover too: every read moved, half the writes.
	writesHalf := Overrides{Routes: map[string]RouteOverride{"feed": {PercentBP: 10000, WritePercentBP: 5000}}}
	f("new salt with reads at 100 %, writes at 50 %", strings.Replace(base, "salt: s", "salt: t", 1), writesHalf, "mid-cutover at 100%, writes at 50%: changing its salt")
	// A ramp on its way: the override's target is 0 %, but users are still split.
	rampingDown := Overrides{Routes: map[string]RouteOverride{"feed": {PercentBP: 0, WritePercentBP: 0,
		Ramp: SplitRamp{FromBP: 5000, FromWriteBP: 5000, Start: now.Add(-time.Minute), For: 2 * time.Minute}}}}
	f("new salt while a ramp to 0 % is on its way", strings.Replace(base, "salt: s", "salt: t", 1), rampingDown, "mid-cutover at 25% in force now (on its way to 0%)")
	f("new salt once that ramp is over", strings.Replace(base, "salt: s", "salt: t", 1),
		Overrides{Routes: map[string]RouteOverride{"feed": {PercentBP: 0, WritePercentBP: 0,
			Ramp: SplitRamp{FromBP: 5000, FromWriteBP: 5000, Start: now.Add(-3 * time.Minute), For: 2 * time.Minute}}}}, "")
	// The rollback's own ramp back to 100 %: on its way, users are split.
	full := Overrides{Routes: map[string]RouteOverride{"feed": {PercentBP: 10000, WritePercentBP: 10000}},
		Rollback: Rollback{RampFrom: now.Add(-time.Minute), RampFor: 10 * time.Minute}}
	f("new salt while the rollback ramps a route back to 100 %", strings.Replace(base, "salt: s", "salt: t", 1), full, "in force now (on its way to 100%)")
}

func TestEffectiveRamp(t *testing.T) {
	c := mustParse(t, base+"    write_percent: 10\n") // 2500 / 1000 bp
	t0 := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	ov := Overrides{Rollback: Rollback{On: false, RampFrom: t0, RampFor: 10 * time.Minute}}
	prev := -1
	for _, tc := range []struct {
		at         time.Duration
		read, writ int
	}{
		{0, 0, 0}, {time.Minute, 250, 100}, {5 * time.Minute, 1250, 500}, {9*time.Minute + 59*time.Second, 2495, 998}, {10 * time.Minute, 2500, 1000}, {time.Hour, 2500, 1000},
	} {
		s, rb, err := ov.Effective(c, t0.Add(tc.at))
		if err != nil || rb {
			t.Fatalf("at %v: %v %v", tc.at, err, rb)
		}
		if s[0].Read != tc.read || s[0].Write != tc.writ {
			t.Errorf("at %v: %+v, want %d/%d", tc.at, s[0], tc.read, tc.writ)
		}
		if s[0].Read < prev {
			t.Errorf("ramp went down at %v", tc.at)
		}
		prev = s[0].Read
	}
	if s, rb, _ := (Overrides{Rollback: Rollback{On: true}}).Effective(c, t0); !rb || s[0].Read != 2500 {
		t.Errorf("rollback on: %v %v", s, rb)
	}
	bad := Overrides{Routes: map[string]RouteOverride{"feed": {PercentBP: 10, WritePercentBP: 20}}}
	if _, _, err := bad.Effective(c, t0); err == nil {
		t.Error("write above read accepted")
	}
	stale := Overrides{Routes: map[string]RouteOverride{"gone": {PercentBP: 10}}}
	if got := stale.Stale(c); len(got) != 1 || got[0] != "gone" {
		t.Errorf("stale = %v", got)
	}
}
