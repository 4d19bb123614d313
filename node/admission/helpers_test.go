package admission

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is the tests' epoch; windows are given in hours from it.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func hr(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

func win(a, b int) Window { return Window{hr(a), hr(b)} }

const gb = int64(1) << 30

func host(name, site string, memMiB, cpus int64) Host {
	return Host{Name: name, Site: site, MemoryMiB: memMiB, VCPUs: cpus}
}

func store(name, site string, bytes int64) StorageHost {
	return StorageHost{Name: name, Site: site, Bytes: bytes}
}

// hostEntry books mem MiB and cpus on a host for a VC.
func hostEntry(vc, h string, w Window, mem, cpus int64, nodes, frontends int) Entry {
	return Entry{Kind: KindHost, Resource: h, VC: vc, Window: w, MemoryMiB: mem, VCPUs: cpus, Nodes: nodes, Frontends: frontends}
}

func vlanEntry(vc string, tag int, w Window) Entry {
	return Entry{Kind: KindVLAN, VLAN: tag, VC: vc, Window: w}
}

func req(vc string, n int, mem, cpus, disk int64, w Window, p Policy) Request {
	return Request{ID: "id-" + vc, VC: vc, Nodes: n, MemoryMiB: mem, VCPUs: cpus, DiskBytes: disk, Window: w, Policy: p}
}

// hostsOf lists the hosts of a placement's nodes, in node order.
func hostsOf(p Placement) string {
	var hs []string
	for _, n := range p.Nodes {
		hs = append(hs, n.Host)
	}
	return strings.Join(hs, ",")
}

func storesOf(p Placement) string {
	var hs []string
	for _, n := range p.Nodes {
		hs = append(hs, n.Storage)
	}
	return strings.Join(hs, ",")
}

// checkPlacement asserts the structural promises of a placement.
func checkPlacement(t testing.TB, tt Timetable, r Request, p Placement) {
	t.Helper()
	if err := placementProblems(tt, r, p); err != nil {
		t.Fatal(err)
	}
}

func placementProblems(tt Timetable, r Request, p Placement) error {
	if p.VC != r.VC || p.RequestID != r.ID || !p.Window.Start.Equal(r.Window.Start) || !p.Window.End.Equal(r.Window.End) {
		return fmt.Errorf("placement header %+v does not match request %+v", p, r)
	}
	if len(p.Nodes) != r.Nodes {
		return fmt.Errorf("%d nodes placed, %d requested", len(p.Nodes), r.Nodes)
	}
	site := map[string]string{}
	for _, h := range tt.Hosts {
		site[h.Name] = h.Site
	}
	ssite := map[string]string{}
	for _, s := range tt.Storage {
		ssite[s.Name] = s.Site
	}
	covered := map[string]bool{}
	names := map[string]bool{}
	for i, n := range p.Nodes {
		if names[n.Name] {
			return fmt.Errorf("node name %s twice", n.Name)
		}
		names[n.Name] = true
		if site[n.Host] != n.Site || n.Site == "" {
			return fmt.Errorf("node %s on host %s with site %q (host's site %q)", n.Name, n.Host, n.Site, site[n.Host])
		}
		if len(r.Sites) > 0 && !slices.Contains(r.Sites, n.Site) {
			return fmt.Errorf("node %s at site %s outside %v", n.Name, n.Site, r.Sites)
		}
		if r.DiskBytes > 0 && ssite[n.Storage] != n.Site {
			return fmt.Errorf("node %s at site %s has its volume on %q at site %q", n.Name, n.Site, n.Storage, ssite[n.Storage])
		}
		if r.DiskBytes == 0 && n.Storage != "" {
			return fmt.Errorf("node %s has storage %s without disk", n.Name, n.Storage)
		}
		if n.Frontend != (r.Frontend && i == 0) {
			return fmt.Errorf("node %d frontend=%v", i, n.Frontend)
		}
		covered[n.Site] = true
	}
	for _, s := range r.EachSite {
		if !covered[s] {
			return fmt.Errorf("site %s of each_site has no node", s)
		}
	}
	if p.VLAN < MinVLAN || p.VLAN > MaxVLAN {
		return fmt.Errorf("VLAN %d", p.VLAN)
	}
	return nil
}
