package conf

import (
	"errors"
	"slices"
	"time"
)

// Cutoff is the client cut-off, an emergency lever: published in the client config,
// it asks apps to stop calling the servers and serve their local or CDN cache, for the
// whole site (On) or for the named routes. The gateway itself keeps serving whatever
// still reaches it; only clients act on a cut-off.
//
// A Cutoff is a value: Set returns a new one and never modifies the Routes of the
// receiver. The zero value cuts nothing off.
type Cutoff struct {
	// On cuts off every route.
	On bool `json:"on"`
	// Routes are the routes cut off by name, sorted and without duplicates. Names the
	// config does not have are kept (a reload may bring the route back) and ignored.
	Routes []string  `json:"routes,omitempty"`
	Who    string    `json:"who,omitempty"`
	At     time.Time `json:"at,omitzero"`
}

// IsZero reports whether c cuts nothing off and records no change.
func (c Cutoff) IsZero() bool {
	return !c.On && len(c.Routes) == 0 && c.Who == "" && c.At.IsZero()
}

// Route reports whether route is cut off, by name or site-wide.
func (c Cutoff) Route(route string) bool {
	if c.On {
		return true
	}
	_, found := slices.BinarySearch(c.Routes, route)
	return found
}

// ErrSiteCutoffCoversRoutes refuses ending the cut-off of some routes while the
// site-wide one is on: it covers every route, so nothing would change, and an
// operator told "done" would believe the routes are back.
var ErrSiteCutoffCoversRoutes = errors.New("the site-wide cut-off is on and covers every route: `shiftgate cutoff off` ends it, then `shiftgate cutoff on ROUTE...` cuts off the routes that must stay off")

// CheckSet refuses a Set that would change nothing an operator meant to change
// (ErrSiteCutoffCoversRoutes).
func (c Cutoff) CheckSet(on bool, routes []string) error {
	if !on && len(routes) > 0 && c.On {
		return ErrSiteCutoffCoversRoutes
	}
	return nil
}

// Set returns c changed as `shiftgate cutoff on|off [ROUTE...]` asks: on with no routes
// cuts off the whole site; on with routes adds them; off with routes removes them (a
// site-wide cut-off stays); off with no routes ends every cut-off, site-wide and per
// route, which is what an operator ending an emergency means.
func (c Cutoff) Set(on bool, routes []string) Cutoff {
	next := Cutoff{On: c.On, Routes: slices.Clone(c.Routes)}
	switch {
	case len(routes) == 0:
		next.On = on
		if !on {
			next.Routes = nil
		}
	case on:
		next.Routes = append(next.Routes, routes...)
	default:
		next.Routes = slices.DeleteFunc(next.Routes, func(r string) bool { return slices.Contains(routes, r) })
	}
	slices.Sort(next.Routes)
	next.Routes = slices.Compact(next.Routes)
	if len(next.Routes) == 0 {
		next.Routes = nil
	}
	return next
}
