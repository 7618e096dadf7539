package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/shiftgate/shiftgate/conf"
)

// The emergency levers' keys under overrides/: limits/site, limits/routes/NAME and
// budgets/FROM/TO, one key each, so that a cap changed on one route conflicts with
// nothing else. Their values are the conf override types as JSON.
const (
	keySiteLimit  = "limits/site"    // overrides/limits/site: a LimitOverride
	keyRouteLimit = "limits/routes/" // overrides/limits/routes/NAME: a LimitOverride
	keyBudgets    = "budgets/"       // overrides/budgets/FROM/TO: a BudgetOverride
)

// encodeLevers adds the keys of o's caps and budgets to out.
func encodeLevers(o conf.Overrides, out map[string][]byte) {
	if o.SiteLimit != nil {
		b, _ := json.Marshal(o.SiteLimit) // plain data: cannot fail
		out[keySiteLimit] = b
	}
	for name, l := range o.RouteLimits {
		b, _ := json.Marshal(l)
		out[keyRouteLimit+name] = b
	}
	for k, bo := range o.Budgets {
		b, _ := json.Marshal(bo)
		out[keyBudgets+k] = b
	}
}

// decodeLever decodes one lever key into o. Keys that are not levers are ignored
// (nil): a newer instance may add kinds of override. A value that does not decode, or
// that no command could have written (a negative rate or ramp, a budget key that does
// not name two regions), is an error and is left out.
func decodeLever(o *conf.Overrides, k string, val []byte) error {
	isLever := k == keySiteLimit || (strings.HasPrefix(k, keyRouteLimit) && len(k) > len(keyRouteLimit)) || strings.HasPrefix(k, keyBudgets)
	if isLever && !isObject(val) {
		// null or a bare number would decode as "off": a lever is never lifted by a
		// value nobody could have meant.
		return errors.New("want a JSON object")
	}
	switch {
	case k == keySiteLimit:
		l, err := decodeLimit(val)
		if err != nil {
			return err
		}
		o.SiteLimit = &l
	case strings.HasPrefix(k, keyRouteLimit):
		name := k[len(keyRouteLimit):]
		if name == "" {
			return nil
		}
		l, err := decodeLimit(val)
		if err != nil {
			return err
		}
		if o.RouteLimits == nil {
			o.RouteLimits = map[string]conf.LimitOverride{}
		}
		o.RouteLimits[name] = l
	case strings.HasPrefix(k, keyBudgets):
		pair := k[len(keyBudgets):]
		if _, _, ok := conf.SplitBudgetKey(pair); !ok {
			return fmt.Errorf("want budgets/FROM/TO, got budgets/%s", pair)
		}
		var b conf.BudgetOverride
		if err := json.Unmarshal(val, &b); err != nil {
			return err
		}
		if math.IsNaN(b.BytesPerSec) || b.BytesPerSec < 0 || math.IsInf(b.BytesPerSec, 0) {
			return fmt.Errorf("bytes_per_sec %v: want a rate >= 0", b.BytesPerSec)
		}
		if b.Ramp < 0 {
			return fmt.Errorf("ramp %v: want >= 0", b.Ramp)
		}
		if math.IsNaN(b.From) || b.From < 0 || math.IsInf(b.From, 0) {
			return fmt.Errorf("from %v: want a rate >= 0", b.From)
		}
		if o.Budgets == nil {
			o.Budgets = map[string]conf.BudgetOverride{}
		}
		o.Budgets[pair] = b
	}
	return nil
}

func isObject(val []byte) bool {
	v := strings.TrimSpace(string(val))
	return strings.HasPrefix(v, "{")
}

func decodeLimit(val []byte) (conf.LimitOverride, error) {
	var l conf.LimitOverride
	if err := json.Unmarshal(val, &l); err != nil {
		return l, err
	}
	if err := conf.CheckRPS(l.RPS); err != nil {
		return l, err
	}
	if l.Ramp < 0 {
		return l, errors.New("ramp: want >= 0")
	}
	if math.IsNaN(l.From) || l.From < 0 || math.IsInf(l.From, 0) {
		return l, fmt.Errorf("from %v: want a rate >= 0", l.From)
	}
	return l, nil
}

// leverWho returns the author recorded in b for the lever key k, or "".
func leverWho(b conf.Overrides, k string) string {
	switch {
	case k == keySiteLimit && b.SiteLimit != nil:
		return b.SiteLimit.Who
	case strings.HasPrefix(k, keyRouteLimit):
		return b.RouteLimits[k[len(keyRouteLimit):]].Who
	case strings.HasPrefix(k, keyBudgets):
		return b.Budgets[k[len(keyBudgets):]].Who
	}
	return ""
}
