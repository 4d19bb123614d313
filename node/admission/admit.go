package admission

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/musubi-fabric/musubi/coord"
)

// Admit decides the request against the timetable. It returns the
// placement, or an error: a *Refusal (wrapping ErrRefused) when the request
// does not fit, ErrVCExists when the timetable already books the VC, or an
// invalid-input error. Admit does not modify tt; add the placement with
// Timetable.Add. It validates the resources and every entry that bears on
// its decision (those overlapping the windows it considers); Validate
// checks a whole timetable.
func Admit(tt Timetable, req Request, opts Options) (Placement, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Placement{}, err
	}
	if err := req.Validate(); err != nil {
		return Placement{}, err
	}
	if err := tt.validateResources(); err != nil {
		return Placement{}, err
	}
	if req.Policy == "" {
		req.Policy = RoundRobin
	}
	win := spanOf(req.Window)
	ix, err := newIndex(tt, req, win)
	if err != nil {
		return Placement{}, err
	}
	p, ref := ix.place(req, win, opts)
	if ref == nil {
		return p, nil
	}
	if ref.Earliest, err = earliest(tt, req, opts); err != nil {
		return Placement{}, err
	}
	return Placement{}, ref
}

// Validate reports whether the request is well formed.
func (req Request) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidRequest}, args...)...)
	}
	if err := coord.ValidName(req.VC); err != nil {
		return bad("VC name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", req.VC)
	}
	if req.Nodes < 1 || req.Nodes > MaxNodes {
		return bad("%d nodes: want 1-%d", req.Nodes, MaxNodes)
	}
	if req.MemoryMiB < 1 || req.MemoryMiB > MaxMemoryMiB {
		return bad("memory %d MiB per node: want 1-%d", req.MemoryMiB, int64(MaxMemoryMiB))
	}
	if req.VCPUs < 1 || req.VCPUs > MaxVCPUs {
		return bad("%d vCPUs per node: want 1-%d", req.VCPUs, MaxVCPUs)
	}
	if req.DiskBytes < 0 || req.DiskBytes > MaxDiskBytes {
		return bad("disk %d bytes per node: want 0-%d", req.DiskBytes, int64(MaxDiskBytes))
	}
	if err := validWindow(req.Window); err != nil {
		return bad("%v", err)
	}
	switch req.Policy {
	case "", RoundRobin, Spread, Pack:
	default:
		return bad("unknown policy %q (want %v)", req.Policy, Policies)
	}
	sites := map[string]bool{}
	for _, s := range req.Sites {
		if coord.ValidName(s) != nil {
			return bad("site %q: bad name", s)
		}
		if sites[s] {
			return bad("site %q listed twice in sites", s)
		}
		sites[s] = true
	}
	each := map[string]bool{}
	for _, s := range req.EachSite {
		if coord.ValidName(s) != nil {
			return bad("site %q: bad name", s)
		}
		if each[s] {
			return bad("site %q listed twice in each_site", s)
		}
		each[s] = true
		if len(sites) > 0 && !sites[s] {
			return bad("each_site lists %q, which sites excludes", s)
		}
	}
	if len(req.EachSite) > req.Nodes {
		return bad("%d nodes cannot cover the %d sites of each_site", req.Nodes, len(req.EachSite))
	}
	return nil
}

// index is the timetable organised for one request: its hosts in order
// (natural name order) and storage hosts, both restricted to the request's
// sites, and their entries that overlap some span of interest, ready to be
// summed over a window inside that span.
type index struct {
	hosts    []Host
	hostIv   [][]hostBooking // entries per host, by host index
	storage  []StorageHost
	storeIv  [][]interval
	siteSt   map[string][]int // site -> storage indices, in order
	vlans    map[int][]span   // tag -> windows held
	allSites bool
}

type hostBooking struct {
	interval
	frontends int
}

// newIndex indexes tt for req, keeping the entries that overlap within. It
// validates those entries, and fails with ErrVCExists if any entry of tt
// belongs to req.VC.
func newIndex(tt Timetable, req Request, within span) (*index, error) {
	allowed := func(site string) bool { return len(req.Sites) == 0 || slices.Contains(req.Sites, site) }
	ix := &index{siteSt: map[string][]int{}, vlans: map[int][]span{}, allSites: len(req.Sites) == 0}
	ix.hosts = make([]Host, 0, len(tt.Hosts))
	for _, h := range tt.Hosts {
		if allowed(h.Site) {
			ix.hosts = append(ix.hosts, h)
		}
	}
	slices.SortFunc(ix.hosts, func(a, b Host) int { return naturalCompare(a.Name, b.Name) })
	for _, s := range tt.Storage {
		if allowed(s.Site) {
			ix.storage = append(ix.storage, s)
		}
	}
	slices.SortFunc(ix.storage, func(a, b StorageHost) int { return naturalCompare(a.Name, b.Name) })
	hostAt := make(map[string]int, len(ix.hosts))
	for i, h := range ix.hosts {
		hostAt[h.Name] = i
	}
	storeAt := make(map[string]int, len(ix.storage))
	for i, s := range ix.storage {
		storeAt[s.Name] = i
		ix.siteSt[s.Site] = append(ix.siteSt[s.Site], i)
	}
	// Two passes: find the entries that matter and count them per
	// resource, then fill one backing array per kind (an admission scans
	// every entry, so this is hot).
	type hit struct{ entry, resource int32 }
	var hits []hit
	hostN := make([]int32, len(ix.hosts))
	storeN := make([]int32, len(ix.storage))
	nh, ns := 0, 0
	for k := range tt.Entries {
		e := &tt.Entries[k]
		if e.VC == req.VC {
			return nil, fmt.Errorf("%w: %s", ErrVCExists, req.VC)
		}
		if sp, ok := spanChecked(e.Window); ok && !sp.overlaps(within) {
			continue // cannot bear on the decision
		}
		if err := validEntryAt(tt.Entries, k); err != nil {
			return nil, err
		}
		switch e.Kind {
		case KindHost:
			if i, ok := hostAt[e.Resource]; ok {
				hits = append(hits, hit{int32(k), int32(i)})
				hostN[i]++
				nh++
			}
		case KindStorage:
			if i, ok := storeAt[e.Resource]; ok {
				hits = append(hits, hit{int32(k), int32(i)})
				storeN[i]++
				ns++
			}
		case KindVLAN:
			ix.vlans[e.VLAN] = append(ix.vlans[e.VLAN], spanOf(e.Window))
		}
	}
	hostBuf := make([]hostBooking, 0, nh)
	ix.hostIv = make([][]hostBooking, len(ix.hosts))
	for i, n := range hostN {
		ix.hostIv[i] = hostBuf[len(hostBuf) : len(hostBuf) : len(hostBuf)+int(n)]
		hostBuf = hostBuf[:len(hostBuf)+int(n)]
	}
	storeBuf := make([]interval, 0, ns)
	ix.storeIv = make([][]interval, len(ix.storage))
	for i, n := range storeN {
		ix.storeIv[i] = storeBuf[len(storeBuf) : len(storeBuf) : len(storeBuf)+int(n)]
		storeBuf = storeBuf[:len(storeBuf)+int(n)]
	}
	for _, h := range hits {
		i, e := h.resource, &tt.Entries[h.entry]
		sp := spanOf(e.Window)
		switch e.Kind {
		case KindHost:
			ix.hostIv[i] = append(ix.hostIv[i], hostBooking{interval{sp.s, sp.e, e.MemoryMiB, e.VCPUs}, e.Frontends})
		case KindStorage:
			ix.storeIv[i] = append(ix.storeIv[i], interval{sp.s, sp.e, e.Bytes, 0})
		}
	}
	return ix, nil
}

// hostState is a host's free capacity over one window, and what this
// request has tentatively placed on it.
type hostState struct {
	Host
	order            int
	freeMem, freeCPU int64 // before this request
	frontends        int   // frontends booked in the window
	nodes            int   // nodes of this request placed here
}

func (h *hostState) memLeft(req Request) int64 { return h.freeMem - int64(h.nodes)*req.MemoryMiB }
func (h *hostState) cpuLeft(req Request) int64 { return h.freeCPU - int64(h.nodes)*req.VCPUs }
func (h *hostState) fits(req Request) bool {
	return h.memLeft(req) >= req.MemoryMiB && h.cpuLeft(req) >= req.VCPUs
}

type storeState struct {
	StorageHost
	free    int64 // before this request
	volumes int   // volumes of this request placed here
}

func (s *storeState) left(req Request) int64 { return s.free - int64(s.volumes)*req.DiskBytes }

// engine places one request over one window.
type engine struct {
	req     Request
	win     span
	hosts   []hostState
	storage []storeState
	siteSt  map[string][]int
	cursor  int // round-robin: the next host to try
}

func (ix *index) engine(req Request, win span) *engine {
	en := &engine{req: req, win: win, siteSt: ix.siteSt}
	en.hosts = make([]hostState, len(ix.hosts))
	var buf []interval
	var scratch []event
	for i, h := range ix.hosts {
		buf = buf[:0]
		fe := 0
		for _, b := range ix.hostIv[i] {
			if b.s < win.e && win.s < b.e {
				buf = append(buf, interval{max(b.s, win.s), min(b.e, win.e), b.a, b.b})
				fe += b.frontends
			}
		}
		mem, cpu, _, _ := peaksBuf(buf, &scratch)
		en.hosts[i] = hostState{Host: h, order: i, freeMem: h.MemoryMiB - mem, freeCPU: h.VCPUs - cpu, frontends: fe}
	}
	en.storage = make([]storeState, len(ix.storage))
	for i, s := range ix.storage {
		buf = buf[:0]
		for _, b := range ix.storeIv[i] {
			if b.s < win.e && win.s < b.e {
				buf = append(buf, interval{max(b.s, win.s), min(b.e, win.e), b.a, 0})
			}
		}
		used, _, _, _ := peaksBuf(buf, &scratch)
		en.storage[i] = storeState{StorageHost: s, free: s.Bytes - used}
	}
	return en
}

// storageFor picks the storage host for a node at site, or -1 if none has
// room. Pack takes the first in order; the other policies the one with the
// most free space.
func (en *engine) storageFor(site string) int {
	if en.req.DiskBytes == 0 {
		return math.MaxInt // no volume needed
	}
	best := -1
	for _, i := range en.siteSt[site] {
		s := &en.storage[i]
		if s.left(en.req) < en.req.DiskBytes {
			continue
		}
		if en.req.Policy == Pack {
			return i
		}
		if best < 0 || s.left(en.req) > en.storage[best].left(en.req) {
			best = i
		}
	}
	return best
}

// usable reports whether a node fits on host i, storage included.
func (en *engine) usable(i int, filter func(*hostState) bool) bool {
	h := &en.hosts[i]
	return filter(h) && h.fits(en.req) && en.storageFor(h.Site) >= 0
}

// pick chooses a host for one node among those passing filter, by policy;
// -1 if none fits.
func (en *engine) pick(frontend bool, filter func(*hostState) bool) int {
	best := -1
	n := len(en.hosts)
	switch {
	case en.req.Policy == RoundRobin && frontend:
		// The fewest frontends in the window, lowest host number first.
		for i := range en.hosts {
			if en.usable(i, filter) && (best < 0 || en.hosts[i].frontends < en.hosts[best].frontends) {
				best = i
			}
		}
	case en.req.Policy == RoundRobin:
		for k := 0; k < n; k++ {
			i := (en.cursor + k) % n
			if en.usable(i, filter) {
				best = i
				break
			}
		}
	case en.req.Policy == Pack:
		for i := range en.hosts {
			if en.usable(i, filter) {
				best = i
				break
			}
		}
	default: // Spread
		for i := range en.hosts {
			if !en.usable(i, filter) {
				continue
			}
			if best < 0 {
				best = i
				continue
			}
			h, b := &en.hosts[i], &en.hosts[best]
			if h.nodes < b.nodes || (h.nodes == b.nodes && h.memLeft(en.req) > b.memLeft(en.req)) {
				best = i
			}
		}
	}
	if best >= 0 && en.req.Policy == RoundRobin {
		en.cursor = (best + 1) % n
	}
	return best
}

// place runs the policy over the window: the frontend first, then one node
// for each uncovered site of EachSite, then the rest. It returns the
// placement or the refusal (without Earliest).
func (ix *index) place(req Request, win span, opts Options) (Placement, *Refusal) {
	en := ix.engine(req, win)
	uncovered := slices.Clone(req.EachSite)
	sortStrings(uncovered)
	width := len(fmt.Sprint(req.Nodes - 1))
	nodes := make([]Node, 0, req.Nodes)
	for i := 0; i < req.Nodes; i++ {
		frontend := req.Frontend && i == 0
		// filter selects the candidate hosts; scope says which they are.
		var filter func(*hostState) bool
		var target, scope string
		switch {
		case frontend && len(uncovered) > 0 && req.Nodes == len(uncovered):
			// Every node must cover a site: so must the frontend.
			sites := slices.Clone(uncovered)
			filter = func(h *hostState) bool { return slices.Contains(sites, h.Site) }
			scope = fmt.Sprintf("sites %v", sites)
		case !frontend && len(uncovered) > 0:
			target = uncovered[0]
			filter = func(h *hostState) bool { return h.Site == target }
			scope = "site " + target
		default:
			filter = func(*hostState) bool { return true }
			if len(req.Sites) > 0 {
				scope = fmt.Sprintf("sites %v", req.Sites)
			}
		}
		hi := en.pick(frontend, filter)
		if hi < 0 {
			return Placement{}, en.refuse(filter, target, scope, i, win)
		}
		h := &en.hosts[hi]
		h.nodes++
		node := Node{Name: fmt.Sprintf("node%0*d", width, i), Host: h.Name, Site: h.Site, Frontend: frontend}
		if si := en.storageFor(h.Site); req.DiskBytes > 0 {
			en.storage[si].volumes++
			node.Storage = en.storage[si].Name
		}
		nodes = append(nodes, node)
		if k := slices.Index(uncovered, h.Site); k >= 0 {
			uncovered = slices.Delete(uncovered, k, k+1)
		}
	}
	tag := ix.freeVLAN(win, opts)
	if tag == 0 {
		return Placement{}, &Refusal{
			Constraint: ConstraintVLAN, Window: windowOf(win), Nodes: req.Nodes, Placed: req.Nodes,
			Free: 0, Needed: 1,
			Reason: fmt.Sprintf("vlan: all %d tags of %d-%d are held in %v", opts.VLANMax-opts.VLANMin+1, opts.VLANMin, opts.VLANMax, windowOf(win)),
		}
	}
	return Placement{
		VC: req.VC, RequestID: req.ID, Window: windowOf(win), Policy: req.Policy, VLAN: tag,
		MemoryMiB: req.MemoryMiB, VCPUs: req.VCPUs, DiskBytes: req.DiskBytes, Nodes: nodes,
	}, nil
}

// freeVLAN returns the lowest tag of the pool that no entry holds during
// win, or 0.
func (ix *index) freeVLAN(win span, opts Options) int {
	for tag := opts.VLANMin; tag <= opts.VLANMax; tag++ {
		if !slices.ContainsFunc(ix.vlans[tag], win.overlaps) {
			return tag
		}
	}
	return 0
}

// IsRefusal returns the refusal in err's chain, if any.
func IsRefusal(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}
