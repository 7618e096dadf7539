package conf

import (
	"fmt"
	"slices"
	"strings"
)

// CheckReshuffle refuses a new config that would reshuffle users of a route that is
// mid-cutover (0 < effective percent < 100): a changed salt, key chain, or from/to
// moves users back and forth, which a cutover must never do by accident. Lowering a
// percent is a deliberate partial rollback and passes. The new file can allow it with
// force_reshuffle (globally or on the route). ov supplies the effective percents.
func CheckReshuffle(old, cur *Config, ov Overrides) error {
	if old == nil || cur.ForceReshuffle {
		return nil
	}
	var problems Errors
	for i := range cur.Routes {
		r := &cur.Routes[i]
		prev, ok := old.Route(r.Name)
		if !ok || r.ForceReshuffle {
			continue
		}
		bp := prev.PercentBP
		if o, ok := ov.Routes[r.Name]; ok {
			bp = o.PercentBP
		}
		if bp <= 0 || bp >= 10000 {
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
				Msg: fmt.Sprintf("route %s is mid-cutover at %s%%: changing its %s would reshuffle users (set force_reshuffle: true to do it anyway)",
					r.Name, FormatBP(bp), strings.Join(what, ", "))})
		}
	}
	if len(problems) > 0 {
		return problems
	}
	return nil
}
