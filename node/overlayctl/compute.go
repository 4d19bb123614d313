package overlayctl

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/overlay/topology"
)

// records is the overlay's view of the federation, decoded from the cache.
type records struct {
	sites     []topology.Site
	live      []string
	links     []topology.Link
	endpoints []topology.Endpoint
	problems  []string
}

// decode turns the cached records into topology's inputs. This site is
// always live with a record (its own gateway when sites/ has none yet):
// the peer is running, whatever its registration's progress.
func (s *stateLoop) decode() records {
	c := s.c
	var r records
	haveSelf := false
	for _, n := range s.kids[coord.SitesDir] {
		data, ok := s.data[coord.SitePath(n)]
		if !ok {
			continue
		}
		var site topology.Site
		if err := json.Unmarshal(data, &site); err != nil {
			r.problems = append(r.problems, fmt.Sprintf("sites/%s: %v", n, err))
			continue
		}
		if site.Name == "" {
			site.Name = n
		}
		if site.Name != n {
			r.problems = append(r.problems, fmt.Sprintf("sites/%s names site %q", n, site.Name))
			continue
		}
		if n == c.cfg.Site {
			if !site.Gateway.IsValid() && c.cfg.Gateway.IsValid() {
				site.Gateway = c.cfg.Gateway
			}
			haveSelf = true
		}
		r.sites = append(r.sites, site)
	}
	if !haveSelf && c.cfg.Gateway.IsValid() {
		r.sites = append(r.sites, topology.Site{Name: c.cfg.Site, Gateway: c.cfg.Gateway})
	}
	r.live = slices.Clone(s.kids[coord.LiveDir])
	if !slices.Contains(r.live, c.cfg.Site) {
		r.live = append(r.live, c.cfg.Site)
	}
	for _, n := range s.kids[coord.LinksDir] {
		data, ok := s.data[coord.LinksDir+"/"+n]
		if !ok {
			continue
		}
		a, b, err := coord.ParseLinkName(n)
		if err != nil {
			r.problems = append(r.problems, err.Error())
			continue
		}
		var l topology.Link
		if err := json.Unmarshal(data, &l); err != nil {
			r.problems = append(r.problems, fmt.Sprintf("links/%s: %v", n, err))
			continue
		}
		if coord.LinkName(l.A, l.B) != coord.LinkName(a, b) {
			r.problems = append(r.problems, fmt.Sprintf("links/%s describes %s~%s", n, l.A, l.B))
			continue
		}
		r.links = append(r.links, l)
	}
	for _, vc := range s.kids[coord.VCDir] {
		dir := coord.VCNodesDir(vc)
		for _, n := range s.kids[dir] {
			data, ok := s.data[dir+"/"+n]
			if !ok {
				continue
			}
			rec, err := DecodeNodeRecord(vc, n, data)
			if err != nil {
				r.problems = append(r.problems, err.Error())
				continue
			}
			r.endpoints = append(r.endpoints, rec.Endpoint())
		}
	}
	return r
}

// graph builds this site's graph: the shared one from the records, or,
// with local repair, the shared one less the links this site's BFD sees
// down, when that cannot loop. It reports whether local repair was used
// and whether it was vetoed.
func (c *Controller) graph(r records) (g *topology.Graph, repaired, vetoed bool) {
	shared := topology.NewGraph(r.sites, r.live, r.links)
	if !c.repair.Load() {
		return shared, false, false
	}
	down := c.localDown()
	if len(down) == 0 {
		return shared, false, false
	}
	links := slices.DeleteFunc(slices.Clone(r.links), func(l topology.Link) bool {
		return (l.A == c.cfg.Site && slices.Contains(down, l.B)) || (l.B == c.cfg.Site && slices.Contains(down, l.A))
	})
	for _, rs := range down {
		links = append(links, topology.Link{A: c.cfg.Site, B: rs, Up: false})
	}
	local := topology.NewGraph(r.sites, r.live, links)
	if local.String() == shared.String() {
		return shared, false, false
	}
	if !LoopFree(shared, local, c.cfg.Site) {
		return shared, false, true
	}
	return local, true, false
}

// LoopFree reports whether site may forward by local (its own graph,
// with links its BFD sees down removed) while every other site still
// forwards by shared: for each destination whose next hop changes, the new
// next hop's shortest path in shared must not lead back through site.
// (A destination left without a route is dropped, not looped.)
func LoopFree(shared, local *topology.Graph, site string) bool {
	for _, dest := range local.Sites() {
		if dest == site {
			continue
		}
		hop, ok := local.NextHop(site, dest)
		if !ok || hop == dest {
			continue
		}
		if old, _ := shared.NextHop(site, dest); old == hop {
			continue
		}
		if slices.Contains(shared.Path(hop, dest), site) {
			return false
		}
	}
	return true
}

// recompute builds the desired state from the cache and offers it to the
// applier when it differs from the last one offered.
func (s *stateLoop) recompute() {
	c := s.c
	r := s.decode()
	g, repaired, vetoed := c.graph(r)
	gw := map[string]netip.Addr{}
	for _, n := range g.Sites() {
		if site, ok := g.Site(n); ok && n != c.cfg.Site {
			gw[n] = site.Gateway
		}
	}
	c.setGateways(gw)
	d, problems := topology.BuildDesired(g, c.cfg.Site, s.gen, r.endpoints)
	all := slices.Clone(r.problems)
	for _, p := range append(g.Problems(), problems...) {
		all = append(all, p.Error())
	}
	if txt := strings.Join(all, "\n"); txt != s.lastProbs {
		s.lastProbs = txt
		for _, p := range all {
			c.log.Warn("record left out", "problem", p)
		}
	}
	c.count(func(st *Stats) {
		st.Recomputes++
		st.Graph = g.String()
		st.Problems = all
		if repaired {
			st.LocalRepairs++
		}
		if vetoed {
			st.RepairsVetoed++
		}
	})
	if s.lastDesired != nil && reflect.DeepEqual(*s.lastDesired, d) {
		return
	}
	s.lastDesired = &d
	c.log.Info("desired state changed", "generation", d.Generation, "tunnels", len(d.Tunnels), "ports", len(d.Ports), "flows", len(d.Flows),
		"local_repair", repaired, "repair_vetoed", vetoed, "graph", strings.ReplaceAll(strings.TrimSpace(g.String()), "\n", "; "))
	c.offer(d, g.String())
}
