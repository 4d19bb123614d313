package admission

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Constraint names the resource that bound a refused request.
type Constraint string

// The constraints a refusal may name.
const (
	ConstraintMemory  Constraint = "memory"  // no host had the memory
	ConstraintVCPU    Constraint = "vcpu"    // no host had the vCPU slots
	ConstraintStorage Constraint = "storage" // no storage host at a usable site had the space
	ConstraintVLAN    Constraint = "vlan"    // every VLAN tag of the pool was held
	ConstraintSite    Constraint = "site"    // no compute host at the sites the request allows
)

// Refusal explains why a request does not fit. It is the error Admit
// returns (errors.Is(err, ErrRefused) holds). Free and Needed are in the
// constraint's unit: MiB, vCPUs, bytes, or tags.
type Refusal struct {
	Constraint Constraint `json:"constraint"`
	Resource   string     `json:"resource,omitempty"` // the host or storage host closest to fitting
	Site       string     `json:"site,omitempty"`     // its site (or the site that lacks a resource)
	Free       int64      `json:"free"`               // what Resource has free in Window after the nodes placed first
	Needed     int64      `json:"needed"`             // what one more node needs
	Window     Window     `json:"window"`             // the window that was refused
	Nodes      int        `json:"nodes"`              // nodes requested
	Placed     int        `json:"placed"`             // nodes that fitted before the constraint bound
	Reason     string     `json:"reason"`             // the human-readable explanation
	// Earliest is the earliest window of the same length, starting after
	// Window.Start, that fits; nil if none does within the horizon.
	Earliest *Window `json:"earliest,omitempty"`
}

// Error implements error.
func (r *Refusal) Error() string {
	s := "admission: refused: " + r.Reason
	if r.Earliest != nil {
		s += "; earliest window that fits: " + r.Earliest.String()
	} else {
		s += "; no window of the same length fits within the search horizon"
	}
	return s
}

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (r *Refusal) Unwrap() error { return ErrRefused }

const (
	mib = 1 << 20
	gib = 1 << 30
)

func fmtBytes(b int64) string {
	switch {
	case b != 0 && b%gib == 0:
		return fmt.Sprintf("%d GiB", b/gib)
	case b != 0 && b%mib == 0:
		return fmt.Sprintf("%d MiB", b/mib)
	}
	return fmt.Sprintf("%d bytes", b)
}

// refuse explains why no host passing filter can take one more node, after
// placed nodes were placed. target is the EachSite site being covered, if
// any; scope names the candidate hosts ("site s2", "sites [s1 s2]", or ""
// for the whole federation).
func (en *engine) refuse(filter func(*hostState) bool, target, scope string, placed int, win span) *Refusal {
	req := en.req
	w := windowOf(win)
	r := &Refusal{Window: w, Nodes: req.Nodes, Placed: placed}
	suffix := fmt.Sprintf("; no placement of %d nodes fits", req.Nodes)
	switch {
	case len(req.EachSite) > 0 && len(req.Sites) > 0:
		suffix += fmt.Sprintf(" at sites %v with one at each of %v", req.Sites, req.EachSite)
	case len(req.EachSite) > 0:
		suffix += fmt.Sprintf(" with one at each of sites %v", req.EachSite)
	case len(req.Sites) > 0:
		suffix += fmt.Sprintf(" at sites %v", req.Sites)
	}
	if placed > 0 {
		suffix += fmt.Sprintf(" (the first %d fit)", placed)
	}
	var cands []*hostState
	for i := range en.hosts {
		if filter(&en.hosts[i]) {
			cands = append(cands, &en.hosts[i])
		}
	}
	if len(cands) == 0 {
		r.Constraint = ConstraintSite
		r.Needed = 1
		r.Site = target
		if scope != "" {
			r.Reason = "site: no compute host at " + scope
		} else {
			r.Reason = "site: the federation has no compute host"
		}
		r.Reason += suffix
		return r
	}
	var fitting []*hostState
	for _, h := range cands {
		if h.fits(req) {
			fitting = append(fitting, h)
		}
	}
	if len(fitting) == 0 {
		// The host closest to fitting: the largest fraction of a node it
		// can still take, in its scarcer dimension.
		var best *hostState
		bestScore := math.Inf(-1)
		for _, h := range cands {
			score := min(float64(h.memLeft(req))/float64(req.MemoryMiB), float64(h.cpuLeft(req))/float64(req.VCPUs))
			if score > bestScore {
				best, bestScore = h, score
			}
		}
		r.Resource, r.Site = best.Name, best.Site
		memScore := float64(best.memLeft(req)) / float64(req.MemoryMiB)
		cpuScore := float64(best.cpuLeft(req)) / float64(req.VCPUs)
		if memScore <= cpuScore {
			r.Constraint, r.Free, r.Needed = ConstraintMemory, max(best.memLeft(req), 0), req.MemoryMiB
			r.Reason = fmt.Sprintf("memory: host %s at site %s has %d MiB free in %v, %d needed", best.Name, best.Site, r.Free, w, r.Needed)
		} else {
			r.Constraint, r.Free, r.Needed = ConstraintVCPU, max(best.cpuLeft(req), 0), req.VCPUs
			r.Reason = fmt.Sprintf("vcpu: host %s at site %s has %d vCPUs free in %v, %d needed", best.Name, best.Site, r.Free, w, r.Needed)
		}
		r.Reason += suffix
		return r
	}
	// Hosts have room but their sites lack storage.
	var sites []string
	for _, h := range fitting {
		if !slices.Contains(sites, h.Site) {
			sites = append(sites, h.Site)
		}
	}
	r.Constraint, r.Needed = ConstraintStorage, req.DiskBytes
	var best *storeState
	for _, site := range sites {
		for _, i := range en.siteSt[site] {
			s := &en.storage[i]
			if best == nil || s.left(req) > best.left(req) {
				best = s
			}
		}
	}
	if best == nil {
		r.Site = sites[0]
		if len(sites) == 1 {
			r.Reason = fmt.Sprintf("storage: no storage host at site %s, whose hosts have room", sites[0])
		} else {
			r.Reason = fmt.Sprintf("storage: no storage host at sites %s, whose hosts have room", strings.Join(sites, ", "))
		}
	} else {
		r.Resource, r.Site, r.Free = best.Name, best.Site, max(best.left(req), 0)
		r.Reason = fmt.Sprintf("storage: storage host %s at site %s has %s free in %v, %s needed", best.Name, best.Site, fmtBytes(r.Free), w, fmtBytes(req.DiskBytes))
	}
	r.Reason += suffix
	return r
}

// emptied is the index with its resources but no entries: what every
// window would look like if nothing were booked.
func (ix *index) emptied() *index {
	return &index{
		hosts: ix.hosts, hostIv: make([][]hostBooking, len(ix.hosts)),
		storage: ix.storage, storeIv: make([][]interval, len(ix.storage)),
		siteSt: ix.siteSt, vlans: map[int][]span{}, allSites: ix.allSites,
	}
}

// bounds returns the distinct end instants of the index's entries in
// (after, before), sorted.
func (ix *index) bounds(after, before int64) []int64 {
	var out []int64
	add := func(e int64) {
		if e > after && e < before {
			out = append(out, e)
		}
	}
	for _, bs := range ix.hostIv {
		for _, b := range bs {
			add(b.e)
		}
	}
	for _, bs := range ix.storeIv {
		for _, b := range bs {
			add(b.e)
		}
	}
	for _, ws := range ix.vlans {
		for _, w := range ws {
			add(w.e)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// earliest finds the earliest window of the request's length, starting
// after the request's start and before start+Horizon, that fits. Feasibility
// only improves when an entry ends, so the candidates are the entries' end
// instants; at most MaxProbes of them are tried.
func earliest(tt Timetable, req Request, opts Options) (*Window, error) {
	win := spanOf(req.Window)
	length := win.e - win.s
	limit := maxInstant.UnixNano() - length
	if h := opts.Horizon.Nanoseconds(); win.s < limit-h {
		limit = win.s + h
	}
	ix, err := newIndex(tt, req, span{win.s, limit + length})
	if err != nil {
		return nil, err
	}
	if _, r := ix.emptied().place(req, win, opts); r != nil {
		return nil, nil // does not fit even an empty timetable
	}
	bounds := ix.bounds(win.s, limit)
	for i := 0; i < len(bounds) && i < opts.MaxProbes; i++ {
		cand := span{bounds[i], bounds[i] + length}
		if _, r := ix.place(req, cand, opts); r == nil {
			w := windowOf(cand)
			return &w, nil
		}
	}
	return nil, nil
}
