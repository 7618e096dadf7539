package routing

import "github.com/shiftgate/shiftgate/conf"

// Explanation is a Decision spelled out for people and scripts: `shiftgate route -json`
// and the admin API's /v1/decide print it as JSON.
type Explanation struct {
	Route     string `json:"route"`
	KeySource string `json:"key_source"`
	Key       string `json:"key"`
	Bucket    int    `json:"bucket"`
	Threshold int    `json:"threshold"`
	Percent   string `json:"percent"`
	Region    string `json:"region"`
	Reason    string `json:"reason"`
	Write     bool   `json:"write"`
	Internal  bool   `json:"internal"`
	Rollback  bool   `json:"rollback"`
}

// Explain decides like Decide and spells the decision out, with the key it used.
// It allocates and is meant for tools, not the request path.
func (t *Table) Explain(host, path []byte, req Request) (Decision, Explanation) {
	var buf [64]byte
	d, key := t.decide(host, path, req, &buf)
	e := Explanation{Bucket: int(d.Bucket), Threshold: int(d.Threshold), Reason: d.Reason.String(),
		Write: d.Write, Internal: d.Internal, Rollback: t.rollback, Key: string(key)}
	if d.Route >= 0 {
		r := &t.routes[d.Route]
		e.Route = r.name
		e.Region = t.RegionName(d.Region)
		e.Percent = conf.FormatBP(int(d.Threshold))
		if d.Source >= 0 {
			e.KeySource = r.keys[d.Source].String()
		}
	}
	return d, e
}
