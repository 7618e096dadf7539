package conf

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// CheckReshuffle refuses a new config that would reshuffle users of a route that is
// mid-cutover: a changed salt, key chain, or from/to moves users back and forth, which
// a cutover must never do by accident. A route is mid-cutover when its read or its
// write split, as set (the override, else the file) or as in force at now (a rollback
// ramp or a plan's ramp still on its way), is strictly between 0 and 100 %. Lowering a
// percent is a deliberate partial rollback and passes. The new file can allow it with
// force_reshuffle (globally or on the route).
func CheckReshuffle(old, cur *Config, ov Overrides, now time.Time) error {
	if old == nil || cur.ForceReshuffle {
		return nil
	}
	inForce, _, err := ov.Effective(old, now)
	if err != nil {
		inForce = nil // an invalid override is not this check's to judge; the targets still are
	}
	var problems Errors
	for i := range cur.Routes {
		r := &cur.Routes[i]
		prev, ok := old.Route(r.Name)
		if !ok || r.ForceReshuffle {
			continue
		}
		set := SplitBP{Read: prev.PercentBP, Write: prev.WritePercentBP}
		if o, ok := ov.Routes[r.Name]; ok {
			set = SplitBP{Read: o.PercentBP, Write: o.WritePercentBP}
		}
		where := midCutover(set)
		if where == "" && inForce != nil {
			if where = midCutover(inForce[prev.Index]); where != "" {
				where += " in force now (on its way to " + FormatBP(set.Read) + "%)"
			}
		}
		if where == "" {
			continue
		}
		var what []string
		if prev.SaltValue != r.SaltValue {
			what = append(what, "salt")
		}
		if !slices.Equal(prev.KeySources, r.KeySources) {
			what = append(what, "keys")
		}
		if prev.From != r.From || prev.To != r.To {
			what = append(what, "from/to")
		}
		if len(what) > 0 {
			problems = append(problems, &Error{File: cur.File, Line: r.Line, Path: fmt.Sprintf("routes[%d]", r.Index),
				Msg: fmt.Sprintf("route %s is mid-cutover %s: changing its %s would reshuffle users (set force_reshuffle: true to do it anyway)",
					r.Name, where, strings.Join(what, ", "))})
		}
	}
	if len(problems) > 0 {
		return problems
	}
	return nil
}

// midCutover describes s when its reads or its writes are split between the two
// regions ("at 25%", "at 100%, writes at 50%"), and is "" when neither is.
func midCutover(s SplitBP) string {
	mid := func(bp int) bool { return bp > 0 && bp < 10000 }
	switch {
	case !mid(s.Read) && !mid(s.Write):
		return ""
	case s.Write == s.Read:
		return "at " + FormatBP(s.Read) + "%"
	}
	return "at " + FormatBP(s.Read) + "%, writes at " + FormatBP(s.Write) + "%"
}
