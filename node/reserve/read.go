package reserve

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/admission"
)

// group is one resource node (timetable/<resource> or vlans/<tag>) as read.
type group struct {
	path string
	stat coord.Stat
	rec  ResourceRecord
}

// snapshot is the timetable as read, with each group's version.
type snapshot struct {
	tt     admission.Timetable
	groups map[string]*group // by path
}

// cacheKey identifies one state of a group node: versions never repeat on
// a node, and Czxid tells a re-created node from the old one.
type cacheKey struct {
	czxid   int64
	version int32
}

// groupCache keeps each group's decoded record by the node's version, so
// an unchanged group is not decoded and validated again.
type groupCache struct {
	mu sync.Mutex
	m  map[string]cachedGroup
}

type cachedGroup struct {
	key cacheKey
	rec ResourceRecord
}

func (c *groupCache) get(path string, st coord.Stat) (ResourceRecord, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.m[path]
	if !ok || g.key != (cacheKey{st.Czxid, st.Version}) {
		return ResourceRecord{}, false
	}
	return g.rec, true
}

func (c *groupCache) put(path string, st coord.Stat, rec ResourceRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedGroup{}
	}
	c.m[path] = cachedGroup{cacheKey{st.Czxid, st.Version}, rec}
}

// children lists dir, treating a missing dir as empty.
func (r *Reserver) children(ctx context.Context, dir string) ([]string, error) {
	kids, _, err := r.store.Children(ctx, dir)
	if errors.Is(err, coord.ErrNotFound) {
		return nil, nil
	}
	return kids, err
}

// groupPaths lists every resource and VLAN tag node.
func (r *Reserver) groupPaths(ctx context.Context) ([]string, error) {
	resources, err := r.children(ctx, coord.TimetableDir)
	if err != nil {
		return nil, fmt.Errorf("reserve: list timetable: %w", err)
	}
	tags, err := r.children(ctx, coord.VLANsDir)
	if err != nil {
		return nil, fmt.Errorf("reserve: list vlans: %w", err)
	}
	paths := make([]string, 0, len(resources)+len(tags))
	for _, n := range resources {
		if _, _, err := coord.ParseTimetableResource(n); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		paths = append(paths, coord.TimetableResourcePath(n))
	}
	for _, n := range tags {
		if _, err := coord.ParseVLAN(n); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		paths = append(paths, coord.VLANsDir+"/"+n)
	}
	return paths, nil
}

// read loads the whole timetable: every resource and VLAN tag node, with
// its version and bookings; one Get per node, ReadConcurrency at a time.
func (r *Reserver) read(ctx context.Context) (*snapshot, error) {
	paths, err := r.groupPaths(ctx)
	if err != nil {
		return nil, err
	}
	groups := make([]*group, len(paths))
	errs := make([]error, len(paths))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(r.cfg.ReadConcurrency, len(paths)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				groups[i], errs[i] = r.readGroup(ctx, paths[i])
			}
		}()
	}
	for i := range paths {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	snap := &snapshot{groups: make(map[string]*group, len(paths))}
	for _, g := range groups {
		if g == nil {
			continue // deleted while we read
		}
		snap.groups[g.path] = g
		snap.tt.Entries = append(snap.tt.Entries, g.rec.Bookings...)
		switch rr := g.rec; rr.Kind {
		case admission.KindHost:
			snap.tt.Hosts = append(snap.tt.Hosts, admission.Host{Name: rr.Name, Site: rr.Site, MemoryMiB: rr.MemoryMiB, VCPUs: rr.VCPUs})
		case admission.KindStorage:
			snap.tt.Storage = append(snap.tt.Storage, admission.StorageHost{Name: rr.Name, Site: rr.Site, Bytes: rr.Bytes})
		}
	}
	return snap, nil
}

// readGroup reads one group node; nil if it does not exist.
func (r *Reserver) readGroup(ctx context.Context, path string) (*group, error) {
	data, st, err := r.store.Get(ctx, path)
	if errors.Is(err, coord.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reserve: read %s: %w", path, err)
	}
	if rec, ok := r.cache.get(path, st); ok {
		return &group{path: path, stat: st, rec: rec}, nil
	}
	rec, err := decodeResource(path, data)
	if err != nil {
		return nil, err
	}
	r.cache.put(path, st, rec)
	return &group{path: path, stat: st, rec: rec}, nil
}

// Timetable reads the current timetable from the store.
func (r *Reserver) Timetable(ctx context.Context) (admission.Timetable, error) {
	snap, err := r.read(ctx)
	if err != nil {
		return admission.Timetable{}, err
	}
	return snap.tt, nil
}

// Audit checks the stored state: every resource node's bookings equal its
// booking children, each booking belongs to a live (not cancelled)
// reservation with the same request id, and every live reservation's
// bookings are all there. It reads every booking, so it is for tests and
// operators, not for the admission path.
func (r *Reserver) Audit(ctx context.Context) error {
	snap, err := r.read(ctx)
	if err != nil {
		return err
	}
	recs, err := r.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	want := map[string]admission.Entry{}
	for _, rec := range recs {
		for _, e := range rec.Entries() {
			want[entryPath(e)] = e
		}
	}
	for _, g := range snap.groups {
		kids, _, err := r.store.Children(ctx, g.path)
		if err != nil {
			return fmt.Errorf("reserve: audit %s: %w", g.path, err)
		}
		booked := map[string]admission.Entry{}
		for _, e := range g.rec.Bookings {
			booked[e.VC] = e
		}
		for _, vc := range kids {
			data, _, err := r.store.Get(ctx, g.path+"/"+vc)
			if err != nil {
				return fmt.Errorf("reserve: audit %s/%s: %w", g.path, vc, err)
			}
			e, err := decodeEntry(g.path, vc, data)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if b, ok := booked[vc]; !ok || !sameEntry(b, e) {
				errs = append(errs, fmt.Errorf("%w: %s/%s is %+v, the resource node says %+v", ErrCorrupt, g.path, vc, e, b))
			}
			delete(booked, vc)
			if w, ok := want[entryPath(e)]; !ok || !sameEntry(w, e) {
				errs = append(errs, fmt.Errorf("%w: %s/%s is %+v, its reservation says %+v", ErrCorrupt, g.path, vc, e, w))
			}
			delete(want, entryPath(e))
		}
		for vc := range booked {
			errs = append(errs, fmt.Errorf("%w: %s lists a booking of %s without its child node", ErrCorrupt, g.path, vc))
		}
	}
	for p := range want {
		errs = append(errs, fmt.Errorf("%w: booking %s of a live reservation is missing", ErrCorrupt, p))
	}
	return errors.Join(errs...)
}

// sameEntry compares entries, windows by instant.
func sameEntry(a, b admission.Entry) bool {
	wa, wb := a.Window, b.Window
	a.Window, b.Window = admission.Window{}, admission.Window{}
	return a == b && wa.Start.Equal(wb.Start) && wa.End.Equal(wb.End)
}
