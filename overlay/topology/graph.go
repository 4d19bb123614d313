package topology

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/overlay"
)

// Graph is the site graph: the live sites with a valid sites/ record, and
// the usable links between them. Every pair of live sites is joined (the
// GRE mesh is full) unless a links/ record says the link is down; a pair
// without a record costs DefaultCost. A Graph is immutable after NewGraph,
// and safe for concurrent use. All shortest paths are computed in NewGraph.
type Graph struct {
	names    []string       // live sites, sorted; a site's index is its rank
	index    map[string]int // name -> index
	sites    []Site
	cost     [][]uint32 // cost[i][j]; 0 = no usable link
	dist     [][]uint64 // dist[dest][from]; Unreachable when no path
	next     [][]int32  // next[dest][from]: the neighbour of from toward dest; -1 none
	problems []error
}

// Unreachable is the distance reported between sites without a path.
const Unreachable = math.MaxUint64

// NewGraph builds the graph from the records of sites/, the names under
// live/ and the records of links/. Records that are malformed are skipped
// and listed by Problems; sites that are not live, and links touching them,
// are left out silently (that is the normal state of a dead site). When two
// records describe the same site or link, the choice is deterministic (the
// smallest gateway address; the most recent link record, and down before up
// on a tie), so the order of the inputs never matters.
func NewGraph(sites []Site, live []string, links []Link) *Graph {
	g := &Graph{index: map[string]int{}}
	isLive := map[string]bool{}
	for _, l := range live {
		isLive[l] = true
	}
	byName := map[string]Site{}
	for _, s := range sites {
		if err := coord.ValidName(s.Name); err != nil {
			g.problems = append(g.problems, fmt.Errorf("%w: site %q: %v", ErrBadRecord, s.Name, err))
			continue
		}
		if !s.Gateway.IsValid() || s.Gateway.IsUnspecified() || s.Gateway.Zone() != "" {
			g.problems = append(g.problems, fmt.Errorf("%w: site %q: gateway %v is not a usable address", ErrBadRecord, s.Name, s.Gateway))
			continue
		}
		if old, ok := byName[s.Name]; ok && old.Gateway.Compare(s.Gateway) <= 0 {
			if old.Gateway != s.Gateway {
				g.problems = append(g.problems, fmt.Errorf("%w: site %q has two records (gateways %v and %v); using %v", ErrBadRecord, s.Name, old.Gateway, s.Gateway, old.Gateway))
			}
			continue
		}
		byName[s.Name] = s
	}
	for name := range byName {
		if isLive[name] {
			g.names = append(g.names, name)
		}
	}
	slices.Sort(g.names)
	// Two long site names may hash to the same tunnel port name; the
	// smaller name keeps it and the other site is left out everywhere.
	tunnelOwner := map[string]string{}
	kept := g.names[:0]
	for _, name := range g.names {
		pn := overlay.TunnelPortName(name)
		if other, ok := tunnelOwner[pn]; ok {
			g.problems = append(g.problems, fmt.Errorf("%w: site %q: tunnel port name %q is taken by site %q", ErrBadRecord, name, pn, other))
			continue
		}
		tunnelOwner[pn] = name
		kept = append(kept, name)
	}
	g.names = kept
	n := len(g.names)
	g.sites = make([]Site, n)
	for i, name := range g.names {
		g.index[name] = i
		g.sites[i] = byName[name]
	}

	// Links: full mesh at DefaultCost, overridden by the newest record.
	type rec struct {
		l    Link
		seen bool
	}
	best := map[[2]int]rec{}
	for _, l := range links {
		if l.A == l.B || coord.ValidName(l.A) != nil || coord.ValidName(l.B) != nil {
			g.problems = append(g.problems, fmt.Errorf("%w: link %q~%q", ErrBadRecord, l.A, l.B))
			continue
		}
		i, iok := g.index[l.A]
		j, jok := g.index[l.B]
		if !iok || !jok {
			continue // an end is not live
		}
		if i > j {
			i, j = j, i
		}
		k := [2]int{i, j}
		if old, ok := best[k]; ok && !newerLink(l, old.l) {
			continue
		}
		best[k] = rec{l: l, seen: true}
	}
	g.cost = make([][]uint32, n)
	for i := range g.cost {
		g.cost[i] = make([]uint32, n)
		for j := range g.cost[i] {
			if i != j {
				g.cost[i][j] = DefaultCost
			}
		}
	}
	for k, r := range best {
		c := uint32(0)
		if r.l.Up {
			c = max(r.l.Cost, MinCost)
		}
		g.cost[k[0]][k[1]], g.cost[k[1]][k[0]] = c, c
	}

	g.dist = make([][]uint64, n)
	g.next = make([][]int32, n)
	for d := range n {
		g.dist[d], g.next[d] = g.sinkTree(d)
	}
	return g
}

// newerLink reports whether record a should replace record b for the same
// pair: newer first, then down before up, then the higher cost.
func newerLink(a, b Link) bool {
	if c := a.Updated.Compare(b.Updated); c != 0 {
		return c > 0
	}
	if a.Up != b.Up {
		return !a.Up
	}
	return a.Cost > b.Cost
}

// sinkTree runs Dijkstra from dest over the (undirected) graph. It returns
// every site's distance to dest and its next hop toward dest, which is its
// predecessor in the tree. Ties are broken by site name: among equally
// near unsettled sites the smaller name settles first, and among equally
// short paths a site prefers the smaller-named next hop. Every peer thus
// computes the same tree toward each destination.
func (g *Graph) sinkTree(dest int) ([]uint64, []int32) {
	n := len(g.names)
	dist := make([]uint64, n)
	next := make([]int32, n)
	done := make([]bool, n)
	for i := range dist {
		dist[i], next[i] = Unreachable, -1
	}
	dist[dest] = 0
	for {
		u := -1
		for i := range n {
			if !done[i] && dist[i] != Unreachable && (u < 0 || dist[i] < dist[u]) {
				u = i // strict <, so the smaller index (name) wins ties
			}
		}
		if u < 0 {
			return dist, next
		}
		done[u] = true
		for v := range n {
			c := g.cost[u][v]
			if c == 0 || done[v] {
				continue
			}
			nd := dist[u] + uint64(c)
			if nd < dist[v] || (nd == dist[v] && int32(u) < next[v]) {
				dist[v], next[v] = nd, int32(u)
			}
		}
	}
}

// Sites returns the names of the graph's sites (live, with a valid record),
// sorted.
func (g *Graph) Sites() []string { return slices.Clone(g.names) }

// Site returns a site's record, if the site is in the graph.
func (g *Graph) Site(name string) (Site, bool) {
	i, ok := g.index[name]
	if !ok {
		return Site{}, false
	}
	return g.sites[i], true
}

// Has reports whether a site is in the graph.
func (g *Graph) Has(name string) bool { _, ok := g.index[name]; return ok }

// Cost returns the cost of the direct link between two sites, and whether
// the link is usable.
func (g *Graph) Cost(a, b string) (uint32, bool) {
	i, iok := g.index[a]
	j, jok := g.index[b]
	if !iok || !jok || g.cost[i][j] == 0 {
		return 0, false
	}
	return g.cost[i][j], true
}

// Problems lists the records NewGraph skipped, each wrapping ErrBadRecord.
func (g *Graph) Problems() []error { return slices.Clone(g.problems) }

// Route is the way from one site to a destination.
type Route struct {
	Dest string
	// NextHop is the neighbour to send to (Dest itself for a direct link).
	NextHop string
	// Cost is the total cost of the path; Hops its number of links.
	Cost uint64
	Hops int
}

// NextHop returns the neighbour of from on the shortest path toward dest,
// and false when dest is unreachable from from (or either is not in the
// graph, or they are the same site).
func (g *Graph) NextHop(from, dest string) (string, bool) {
	i, iok := g.index[from]
	d, dok := g.index[dest]
	if !iok || !dok || i == d || g.next[d][i] < 0 {
		return "", false
	}
	return g.names[g.next[d][i]], true
}

// Distance returns the cost of the shortest path, or Unreachable.
func (g *Graph) Distance(from, dest string) uint64 {
	i, iok := g.index[from]
	d, dok := g.index[dest]
	if !iok || !dok {
		return Unreachable
	}
	return g.dist[d][i]
}

// Path returns the sites of the shortest path from from to dest, both
// included, or nil when there is none.
func (g *Graph) Path(from, dest string) []string {
	i, iok := g.index[from]
	d, dok := g.index[dest]
	if !iok || !dok || g.dist[d][i] == Unreachable {
		return nil
	}
	p := []string{from}
	for i != d {
		i = int(g.next[d][i])
		p = append(p, g.names[i])
	}
	return p
}

// Routes returns from's route to every other reachable site, sorted by
// destination.
func (g *Graph) Routes(from string) []Route {
	i, ok := g.index[from]
	if !ok {
		return nil
	}
	var rs []Route
	for d, name := range g.names {
		if d == i || g.dist[d][i] == Unreachable {
			continue
		}
		rs = append(rs, Route{Dest: name, NextHop: g.names[g.next[d][i]], Cost: g.dist[d][i], Hops: len(g.Path(from, name)) - 1})
	}
	return rs
}

// String renders the graph for logs and test failures: sites with gateways,
// then usable links with costs.
func (g *Graph) String() string {
	var b strings.Builder
	for i, s := range g.sites {
		fmt.Fprintf(&b, "site %s gateway=%s\n", s.Name, s.Gateway)
		for j := i + 1; j < len(g.sites); j++ {
			if c := g.cost[i][j]; c != 0 {
				fmt.Fprintf(&b, "link %s~%s cost=%d\n", g.names[i], g.names[j], c)
			}
		}
	}
	return b.String()
}
