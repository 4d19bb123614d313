package lifecycle

import (
	"context"
	"strings"
)

// held is what the host has of one node (or, for node "", of its VC as a
// whole: a port without a known node, a secrets directory).
type held struct {
	backends []string // compute hosts whose backend lists the node
	volumes  []string // storage hosts whose driver lists its volume
	attached bool
	secret   bool
	ports    []string // VC ports (node "" only)
}

// inventory is what the host has, by VC and node.
type inventory map[string]map[string]*held

func (inv inventory) at(vc, node string) *held {
	m := inv[vc]
	if m == nil {
		m = map[string]*held{}
		inv[vc] = m
	}
	h := m[node]
	if h == nil {
		h = &held{}
		m[node] = h
	}
	return h
}

// inventory lists what really exists on this site's hosts: nodes,
// volumes, attachments, ports and secret files. A driver that cannot be
// listed is skipped (and logged): its leftovers are found on a later pass.
func (r *Reconciler) inventory(ctx context.Context) inventory {
	inv := inventory{}
	for _, host := range sortedKeys(r.cfg.Backends) {
		nodes, err := r.cfg.Backends[host].List(ctx)
		if err != nil {
			r.logListErr(ctx, "nodes of "+host, err)
			continue
		}
		for _, n := range nodes {
			h := inv.at(n.VC, n.Node)
			h.backends = append(h.backends, host)
		}
	}
	for _, sh := range sortedKeys(r.cfg.Volumes) {
		vols, err := r.cfg.Volumes[sh].List(ctx)
		if err != nil {
			r.logListErr(ctx, "volumes of "+sh, err)
			continue
		}
		for _, v := range vols {
			h := inv.at(v.VC, v.Node)
			h.volumes = append(h.volumes, sh)
		}
	}
	if r.cfg.Attacher != nil {
		ats, err := r.cfg.Attacher.List(ctx)
		if err != nil {
			r.logListErr(ctx, "attachments", err)
		}
		for _, a := range ats {
			inv.at(a.VC, a.Node).attached = true
		}
	}
	if r.cfg.Ports != nil {
		ports, err := r.cfg.Ports.List(ctx)
		if err != nil {
			r.logListErr(ctx, "ports", err)
		}
		for _, p := range ports {
			if p.VC != "" {
				h := inv.at(p.VC, "")
				h.ports = append(h.ports, p.Name)
			}
		}
	}
	names, err := r.secrets.List()
	if err != nil {
		r.logListErr(ctx, "secrets", err)
	}
	for _, n := range names {
		vc, node, _ := strings.Cut(n, "/")
		inv.at(vc, node).secret = true
	}
	return inv
}

func (r *Reconciler) logListErr(ctx context.Context, what string, err error) {
	if ctx.Err() == nil {
		r.log.Warn("cannot list "+what+"; its leftovers wait for a later pass", "err", err)
	}
}
