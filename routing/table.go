package routing

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/shiftgate/shiftgate/conf"
)

// Split is a route's effective split in basis points (0..10000): Read for GET, HEAD and
// OPTIONS, Write for every other method. Write must not exceed Read.
type Split = conf.SplitBP

// Table is a compiled, immutable routing table: routes, their splits and the trust
// lists. It is safe for concurrent use; Decide on it neither locks nor allocates.
type Table struct {
	routes      []route
	byHost      map[string]*prefixTable
	anyHost     prefixTable
	regions     []string
	trustedIP   prefixSet
	trustedCall prefixSet
	selfRegion  conf.RegionID
	rollback    bool
}

// route is the per-request view of one conf.Route, laid out for Decide.
type route struct {
	name     string
	from, to conf.RegionID
	seed     seed
	keys     []conf.KeySource
	readBP   int
	writeBP  int
	force    map[string]conf.RegionID
	// forceLens has bit n set when a forced key is n bytes long (n < 63), bit 63 for
	// longer ones: most keys are ruled out without hashing them.
	forceLens uint64
}

// prefixTable finds the longest matching path prefix with one map lookup per distinct
// prefix length, longest first. Configs have few distinct lengths, so this beats a
// scan of thousands of routes and needs no trie.
type prefixTable struct {
	lengths []int
	routes  map[string]int
	// small holds the prefixes longest first when there are few of them: comparing
	// a handful of prefixes beats hashing the path once per length.
	small []prefixRoute
}

type prefixRoute struct {
	prefix string
	idx    int
}

// smallTable is the most prefixes matched by comparison rather than by map.
const smallTable = 8

func (p *prefixTable) add(prefix string, idx int) {
	if p.routes == nil {
		p.routes = map[string]int{}
	}
	if _, ok := p.routes[prefix]; !ok {
		p.routes[prefix] = idx
		p.small = nil
		if len(p.routes) <= smallTable {
			for pre, i := range p.routes {
				p.small = append(p.small, prefixRoute{pre, i})
			}
			sort.Slice(p.small, func(a, b int) bool {
				if len(p.small[a].prefix) != len(p.small[b].prefix) {
					return len(p.small[a].prefix) > len(p.small[b].prefix)
				}
				return p.small[a].prefix < p.small[b].prefix
			})
		}
		i := sort.Search(len(p.lengths), func(i int) bool { return p.lengths[i] <= len(prefix) })
		if i == len(p.lengths) || p.lengths[i] != len(prefix) {
			p.lengths = append(p.lengths, 0)
			copy(p.lengths[i+1:], p.lengths[i:])
			p.lengths[i] = len(prefix)
		}
	}
}

func (p *prefixTable) match(path []byte) int {
	if p.small != nil {
		for i := range p.small {
			pre := p.small[i].prefix
			if len(pre) <= len(path) && string(path[:len(pre)]) == pre {
				return p.small[i].idx
			}
		}
		return -1
	}
	for _, l := range p.lengths {
		if l > len(path) {
			continue
		}
		// The string conversion in a map index does not allocate.
		if idx, ok := p.routes[string(path[:l])]; ok {
			return idx
		}
	}
	return -1
}

// Compile builds a Table from a parsed config and the effective splits of its routes
// (one per route, in route order; nil means the config's own percents). With rollback
// on, every route sends everything to its from region.
func Compile(c *conf.Config, splits []Split, rollback bool) (*Table, error) {
	if splits != nil && len(splits) != len(c.Routes) {
		return nil, fmt.Errorf("routing: %d splits for %d routes", len(splits), len(c.Routes))
	}
	t := &Table{
		byHost:      map[string]*prefixTable{},
		trustedIP:   prefixSet(c.TrustedProxies),
		trustedCall: prefixSet(c.TrustedCallers),
		selfRegion:  c.SelfRegionID,
		rollback:    rollback,
	}
	for _, r := range c.RegionList {
		t.regions = append(t.regions, r.Name)
	}
	for i := range c.Routes {
		cr := &c.Routes[i]
		s := Split{Read: cr.PercentBP, Write: cr.WritePercentBP}
		if splits != nil {
			s = splits[i]
		}
		if s.Read < 0 || s.Read > Buckets || s.Write < 0 || s.Write > s.Read {
			return nil, fmt.Errorf("routing: route %s: bad split %+v", cr.Name, s)
		}
		t.routes = append(t.routes, route{
			name: cr.Name, from: cr.FromID, to: cr.ToID,
			seed: newSeed(cr.SaltValue),
			keys: cr.KeySources, readBP: s.Read, writeBP: s.Write,
			force: cr.ForceIDs, forceLens: keyLengths(cr.ForceIDs),
		})
		if cr.Match.Host == "" {
			t.anyHost.add(cr.Match.PathPrefix, i)
		} else {
			pt := t.byHost[cr.Match.Host]
			if pt == nil {
				pt = &prefixTable{}
				t.byHost[cr.Match.Host] = pt
			}
			pt.add(cr.Match.PathPrefix, i)
		}
	}
	return t, nil
}

func keyLengths(m map[string]conf.RegionID) uint64 {
	var bits uint64
	for k := range m {
		bits |= 1 << min(len(k), 63)
	}
	return bits
}

// Match returns the index of the route for host and path, or -1. host may carry a port
// and any case; routes with a matching host win over routes without one.
func (t *Table) Match(host, path []byte) int {
	if len(t.byHost) > 0 {
		var buf [256]byte
		h := normalizeHost(host, buf[:0])
		if pt := t.byHost[string(h)]; pt != nil {
			if idx := pt.match(path); idx >= 0 {
				return idx
			}
		}
	}
	return t.anyHost.match(path)
}

// normalizeHost lower-cases host and drops a port, into buf (no allocation for hosts up
// to len(buf)).
func normalizeHost(host, buf []byte) []byte {
	end := len(host)
	if i := lastByte(host, ':'); i >= 0 && lastByte(host, ']') < i {
		end = i
	}
	for _, c := range host[:end] {
		buf = append(buf, lower(c))
	}
	return buf
}

func lastByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// Routes returns the number of routes.
func (t *Table) Routes() int { return len(t.routes) }

// RouteName returns the name of route i.
func (t *Table) RouteName(i int) string { return t.routes[i].name }

// RouteSplit returns the effective split of route i.
func (t *Table) RouteSplit(i int) Split {
	return Split{Read: t.routes[i].readBP, Write: t.routes[i].writeBP}
}

// RegionName returns the name of a region of this table's config.
func (t *Table) RegionName(id conf.RegionID) string {
	if int(id) < len(t.regions) {
		return t.regions[id]
	}
	return ""
}

// RegionID returns the id of a region by name.
func (t *Table) RegionID(name []byte) (conf.RegionID, bool) {
	for i, n := range t.regions {
		if equalFoldBytes(n, name) {
			return conf.RegionID(i), true
		}
	}
	return conf.NoRegion, false
}

// Rollback reports whether the table sends everything to each route's from region.
func (t *Table) Rollback() bool { return t.rollback }

// TrustedCaller reports whether a peer may send X-Shift-Region.
func (t *Table) TrustedCaller(peer netip.Addr) bool { return t.trustedCall.contains(peer.Unmap()) }

// TrustedProxy reports whether a peer is one of client_ip.trusted_proxies, whose
// X-Forwarded-For (and X-Forwarded-Proto) is believed.
func (t *Table) TrustedProxy(peer netip.Addr) bool {
	return len(t.trustedIP) > 0 && t.trustedIP.contains(peer.Unmap())
}
