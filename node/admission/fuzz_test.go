package admission

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// bytes feeds a fuzz scenario; it yields zeros once exhausted.
type bytes struct {
	b []byte
	i int
}

func (r *bytes) intn(n int) int {
	if r.i >= len(r.b) {
		return 0
	}
	v := int(r.b[r.i])
	r.i++
	return v % n
}

func (r *bytes) done() bool { return r.i >= len(r.b) }

// bruteOvercommit checks every instant at which some entry starts (the only
// instants where a sum can grow) by summing the entries covering it: an
// implementation independent of Verify.
func bruteOvercommit(tt Timetable) error {
	for _, h := range tt.Hosts {
		for _, e := range tt.Entries {
			if e.Kind != KindHost || e.Resource != h.Name {
				continue
			}
			var mem, cpu int64
			for _, o := range tt.Entries {
				if o.Kind == KindHost && o.Resource == h.Name && o.Window.Contains(e.Window.Start) {
					mem += o.MemoryMiB
					cpu += o.VCPUs
				}
			}
			if mem > h.MemoryMiB || cpu > h.VCPUs {
				return fmt.Errorf("host %s at %v: %d MiB %d vCPUs booked, capacity %d/%d", h.Name, e.Window.Start, mem, cpu, h.MemoryMiB, h.VCPUs)
			}
		}
	}
	for _, s := range tt.Storage {
		for _, e := range tt.Entries {
			if e.Kind != KindStorage || e.Resource != s.Name {
				continue
			}
			var b int64
			for _, o := range tt.Entries {
				if o.Kind == KindStorage && o.Resource == s.Name && o.Window.Contains(e.Window.Start) {
					b += o.Bytes
				}
			}
			if b > s.Bytes {
				return fmt.Errorf("storage %s at %v: %d booked, capacity %d", s.Name, e.Window.Start, b, s.Bytes)
			}
		}
	}
	for i, e := range tt.Entries {
		for _, o := range tt.Entries[i+1:] {
			if e.Kind == KindVLAN && o.Kind == KindVLAN && e.VLAN == o.VLAN && e.Window.Overlaps(o.Window) {
				return fmt.Errorf("VLAN %d held by %s and %s at once", e.VLAN, e.VC, o.VC)
			}
		}
	}
	return nil
}

const step = 30 * time.Minute

// FuzzAdmit drives random streams of requests, cancellations and early
// releases against random federations and checks: no panic; every
// placement keeps its promises and never overcommits any resource at any
// instant; the three policies agree on whether a request fits and on the
// earliest window that fits; the earliest window really fits, and no
// earlier start (on the half-hour grid the scenario uses) does.
func FuzzAdmit(f *testing.F) {
	f.Add([]byte{2, 4, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte("the quick brown fox jumps over the lazy dog, twice: the quick brown fox jumps over the lazy dog"))
	f.Add([]byte{255, 254, 253, 1, 7, 3, 9, 200, 100, 50, 25, 12, 6, 3, 1, 0, 99, 98, 97, 96, 95, 94, 93, 92, 91, 90, 89})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzScenario(t, &bytes{b: data})
	})
}

func fuzzScenario(t *testing.T, r *bytes) {
	nSites := 1 + r.intn(3)
	site := func() string { return fmt.Sprintf("s%d", r.intn(nSites)) }
	var tt Timetable
	for i := range 1 + r.intn(6) {
		tt.Hosts = append(tt.Hosts, Host{Name: fmt.Sprintf("h%d", i+1), Site: site(), MemoryMiB: 1024 * int64(r.intn(9)), VCPUs: int64(r.intn(9))})
	}
	for i := range r.intn(4) {
		tt.Storage = append(tt.Storage, StorageHost{Name: fmt.Sprintf("st%d", i+1), Site: site(), Bytes: gb * int64(r.intn(41))})
	}
	opts := Options{VLANMin: 1, VLANMax: 1 + r.intn(4)}
	var vcs []string
	for op := 0; op < 24 && !r.done(); op++ {
		switch k := r.intn(10); {
		case k < 7:
			vc := fmt.Sprintf("vc%d", op)
			req := Request{
				ID: "id-" + vc, VC: vc, Nodes: 1 + r.intn(6),
				MemoryMiB: 512 * int64(1+r.intn(8)), VCPUs: int64(1 + r.intn(4)), DiskBytes: gb * int64(r.intn(8)),
				Policy: Policies[r.intn(3)], Frontend: r.intn(2) == 0,
			}
			start := t0.Add(time.Duration(r.intn(96)) * step)
			req.Window = Window{start, start.Add(time.Duration(1+r.intn(24)) * step)}
			if r.intn(3) == 0 {
				req.Sites = []string{site()}
				if s2 := site(); s2 != req.Sites[0] {
					req.Sites = append(req.Sites, s2)
				}
			}
			if r.intn(3) == 0 {
				s := site()
				if len(req.Sites) == 0 || req.Sites[0] == s || (len(req.Sites) == 2 && req.Sites[1] == s) {
					req.EachSite = []string{s}
				}
			}
			tt = fuzzAdmit(t, tt, req, opts)
			if tt.Has(vc) {
				vcs = append(vcs, vc)
			}
		case k < 9 && len(vcs) > 0:
			vc := vcs[r.intn(len(vcs))]
			at := t0.Add(time.Duration(r.intn(100)) * step)
			tt = tt.Release(vc, at)
		case len(vcs) > 0:
			i := r.intn(len(vcs))
			tt = tt.Cancel(vcs[i])
			vcs = append(vcs[:i], vcs[i+1:]...)
		}
		if err := tt.Verify(); err != nil {
			t.Fatalf("after op %d: %v", op, err)
		}
		if err := bruteOvercommit(tt); err != nil {
			t.Fatalf("after op %d: %v", op, err)
		}
	}
}

// fuzzAdmit admits req under every policy, checks the outcomes agree, and
// returns the timetable with req's own policy's placement added.
func fuzzAdmit(t *testing.T, tt Timetable, req Request, opts Options) Timetable {
	t.Helper()
	var own Placement
	var ownErr error
	var first *Refusal
	for i, pol := range Policies {
		alt := req
		alt.Policy = pol
		p, err := Admit(tt, alt, opts)
		if err != nil && !errors.Is(err, ErrRefused) {
			t.Fatalf("Admit(%+v): unexpected error %v", alt, err)
		}
		ref, _ := IsRefusal(err)
		if i == 0 {
			first = ref
		} else if (ref == nil) != (first == nil) {
			t.Fatalf("policies disagree on %+v: %s says %v, %s says %v", req, Policies[0], first, pol, err)
		} else if ref != nil && !sameWindow(ref.Earliest, first.Earliest) {
			t.Fatalf("policies disagree on the earliest window for %+v: %v vs %v", req, first.Earliest, ref.Earliest)
		}
		if err == nil {
			if perr := placementProblems(tt, alt, p); perr != nil {
				t.Fatalf("%s placement of %+v: %v", pol, alt, perr)
			}
			if verr := bruteOvercommit(tt.Add(p)); verr != nil {
				t.Fatalf("%s placement of %+v overcommits: %v\nplacement %+v", pol, alt, verr, p)
			}
		}
		if pol == req.Policy {
			own, ownErr = p, err
		}
	}
	if ownErr == nil {
		return tt.Add(own)
	}
	ref := first
	if ref.Constraint == "" || ref.Reason == "" || ref.Nodes != req.Nodes {
		t.Fatalf("refusal without a constraint: %+v", ref)
	}
	if ref.Earliest == nil {
		empty := Timetable{Hosts: tt.Hosts, Storage: tt.Storage}
		if _, err := Admit(empty, req, opts); err == nil {
			t.Fatalf("no earliest window offered for %+v, but it fits an empty timetable", req)
		}
		return tt
	}
	e := *ref.Earliest
	if !e.Start.After(req.Window.Start) || e.Duration() != req.Window.Duration() {
		t.Fatalf("earliest %v for window %v", e, req.Window)
	}
	alt := req
	alt.Window = e
	if _, err := Admit(tt, alt, opts); err != nil {
		t.Fatalf("earliest window %v does not fit: %v", e, err)
	}
	for s := req.Window.Start.Add(step); s.Before(e.Start); s = s.Add(step) {
		alt.Window = Window{s, s.Add(req.Window.Duration())}
		if _, err := Admit(tt, alt, opts); err == nil {
			t.Fatalf("window %v fits, earlier than the earliest %v", alt.Window, e)
		}
	}
	return tt
}

func sameWindow(a, b *Window) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Start.Equal(b.Start) && a.End.Equal(b.End)
}
