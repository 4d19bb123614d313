package admission

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

func fourHosts() []Host {
	return []Host{
		host("h1", "s1", 8192, 8), host("h2", "s1", 8192, 8),
		host("h3", "s1", 8192, 8), host("h4", "s1", 8192, 8),
	}
}

func TestPlacementPolicies(t *testing.T) {
	twoSites := []Host{
		host("a1", "s1", 8192, 8), host("a2", "s1", 8192, 8),
		host("b1", "s2", 8192, 8), host("b2", "s2", 8192, 8),
	}
	twoStores := []StorageHost{store("sa", "s1", 100*gb), store("sb", "s2", 100*gb)}
	withFrontend := func(r Request) Request { r.Frontend = true; return r }
	withSites := func(r Request, sites, each []string) Request { r.Sites, r.EachSite = sites, each; return r }
	tests := []struct {
		name      string
		tt        Timetable
		req       Request
		wantHosts string
		wantStore string // "" to skip
		wantVLAN  int
	}{
		{
			name:      "round-robin cycles hosts in order",
			tt:        Timetable{Hosts: fourHosts()},
			req:       req("vc", 6, 1024, 1, 0, win(0, 10), RoundRobin),
			wantHosts: "h1,h2,h3,h4,h1,h2",
		},
		{
			name:      "empty policy means round-robin",
			tt:        Timetable{Hosts: fourHosts()},
			req:       req("vc", 5, 1024, 1, 0, win(0, 10), ""),
			wantHosts: "h1,h2,h3,h4,h1",
		},
		{
			name: "round-robin frontend on the host with fewest frontends, then the following hosts",
			tt: Timetable{Hosts: fourHosts(), Entries: []Entry{
				hostEntry("x", "h1", win(0, 10), 1024, 1, 1, 1),
				hostEntry("y", "h2", win(5, 20), 1024, 1, 1, 1),
				hostEntry("z", "h3", win(10, 20), 1024, 1, 1, 1), // after the window: does not count
			}},
			req:       withFrontend(req("vc", 5, 1024, 1, 0, win(0, 10), RoundRobin)),
			wantHosts: "h3,h4,h1,h2,h3",
		},
		{
			name: "round-robin frontend ties go to the lowest host number",
			tt: Timetable{Hosts: fourHosts(), Entries: []Entry{
				hostEntry("x", "h1", win(0, 10), 1024, 1, 1, 1),
			}},
			req:       withFrontend(req("vc", 3, 1024, 1, 0, win(0, 10), RoundRobin)),
			wantHosts: "h2,h3,h4",
		},
		{
			name: "round-robin skips a full host",
			tt: Timetable{Hosts: fourHosts(), Entries: []Entry{
				hostEntry("x", "h2", win(0, 10), 8192, 1, 1, 0),
			}},
			req:       req("vc", 5, 1024, 1, 0, win(2, 3), RoundRobin),
			wantHosts: "h1,h3,h4,h1,h3",
		},
		{
			name:      "host number is the natural order of names",
			tt:        Timetable{Hosts: []Host{host("h10", "s1", 4096, 4), host("h2", "s1", 4096, 4), host("h1", "s1", 4096, 4)}},
			req:       req("vc", 4, 1024, 1, 0, win(0, 1), RoundRobin),
			wantHosts: "h1,h2,h10,h1",
		},
		{
			name: "spread: fewest nodes of this VC, then most free memory",
			tt: Timetable{Hosts: []Host{host("h1", "s1", 8192, 8), host("h2", "s1", 16384, 8), host("h3", "s1", 16384, 8)}, Entries: []Entry{
				hostEntry("x", "h3", win(0, 10), 4096, 1, 1, 0),
			}},
			req:       req("vc", 5, 2048, 1, 0, win(0, 10), Spread),
			wantHosts: "h2,h3,h1,h2,h3",
		},
		{
			name:      "spread: equal hosts in host order",
			tt:        Timetable{Hosts: fourHosts()},
			req:       req("vc", 6, 1024, 1, 0, win(0, 10), Spread),
			wantHosts: "h1,h2,h3,h4,h1,h2",
		},
		{
			name:      "pack fills a host before the next",
			tt:        Timetable{Hosts: fourHosts()},
			req:       req("vc", 10, 2048, 1, 0, win(0, 10), Pack),
			wantHosts: "h1,h1,h1,h1,h2,h2,h2,h2,h3,h3",
		},
		{
			name:      "pack is bounded by vCPUs too",
			tt:        Timetable{Hosts: fourHosts()},
			req:       req("vc", 5, 1024, 3, 0, win(0, 10), Pack),
			wantHosts: "h1,h1,h2,h2,h3",
		},
		{
			name: "pack uses the free room left by earlier reservations",
			tt: Timetable{Hosts: fourHosts(), Entries: []Entry{
				hostEntry("x", "h1", win(0, 5), 6144, 1, 1, 0),
				hostEntry("y", "h1", win(5, 10), 4096, 1, 1, 0),
			}},
			req:       req("vc", 4, 2048, 1, 0, win(0, 10), Pack),
			wantHosts: "h1,h2,h2,h2",
		},
		{
			name:      "sites restricts placement",
			tt:        Timetable{Hosts: twoSites},
			req:       withSites(req("vc", 3, 1024, 1, 0, win(0, 10), RoundRobin), []string{"s2"}, nil),
			wantHosts: "b1,b2,b1",
		},
		{
			name:      "each_site puts one node at each listed site, then follows the policy",
			tt:        Timetable{Hosts: twoSites, Storage: twoStores},
			req:       withSites(req("vc", 4, 1024, 1, gb, win(0, 10), Pack), nil, []string{"s2", "s1"}),
			wantHosts: "a1,b1,a1,a1",
			wantStore: "sa,sb,sa,sa",
		},
		{
			name:      "each_site with a round-robin frontend",
			tt:        Timetable{Hosts: twoSites},
			req:       withFrontend(withSites(req("vc", 3, 1024, 1, 0, win(0, 10), RoundRobin), nil, []string{"s2"})),
			wantHosts: "a1,b1,b2",
		},
		{
			name: "each_site as large as the VC forces the frontend onto a listed site",
			tt: Timetable{Hosts: append(twoSites, host("c1", "s3", 8192, 8)), Entries: []Entry{
				hostEntry("x", "a1", win(0, 10), 1024, 1, 1, 1), hostEntry("y", "a2", win(0, 10), 1024, 1, 1, 1),
				hostEntry("z", "b1", win(0, 10), 1024, 1, 1, 1), hostEntry("w", "b2", win(0, 10), 1024, 1, 1, 1),
			}},
			req:       withFrontend(withSites(req("vc", 2, 1024, 1, 0, win(0, 10), RoundRobin), nil, []string{"s1", "s2"})),
			wantHosts: "a1,b1",
		},
		{
			name:      "spread with sites and each_site",
			tt:        Timetable{Hosts: append(twoSites, host("c1", "s3", 65536, 64))},
			req:       withSites(req("vc", 4, 1024, 1, 0, win(0, 10), Spread), []string{"s1", "s2"}, []string{"s2"}),
			wantHosts: "b1,a1,a2,b2",
		},
		{
			name:      "volumes go to a storage host of the node's site",
			tt:        Timetable{Hosts: twoSites, Storage: append(twoStores, store("sb2", "s2", 200*gb))},
			req:       req("vc", 4, 1024, 1, 10*gb, win(0, 10), RoundRobin),
			wantHosts: "a1,a2,b1,b2",
			wantStore: "sa,sa,sb2,sb2",
		},
		{
			name:      "pack takes the first storage host with room",
			tt:        Timetable{Hosts: twoSites, Storage: []StorageHost{store("st1", "s1", 25*gb), store("st2", "s1", 100*gb)}},
			req:       withSites(req("vc", 4, 1024, 1, 10*gb, win(0, 10), Pack), []string{"s1"}, nil),
			wantHosts: "a1,a1,a1,a1",
			wantStore: "st1,st1,st2,st2",
		},
		{
			name:      "a site without storage is skipped when nodes need disk",
			tt:        Timetable{Hosts: twoSites, Storage: []StorageHost{store("sb", "s2", 100*gb)}},
			req:       req("vc", 3, 1024, 1, gb, win(0, 10), RoundRobin),
			wantHosts: "b1,b2,b1",
		},
		{
			name:      "no disk needs no storage host",
			tt:        Timetable{Hosts: twoSites},
			req:       req("vc", 2, 1024, 1, 0, win(0, 10), RoundRobin),
			wantHosts: "a1,a2",
			wantStore: ",",
		},
		{
			name: "the lowest free VLAN tag",
			tt: Timetable{Hosts: fourHosts(), Entries: []Entry{
				vlanEntry("x", 1, win(0, 5)), vlanEntry("y", 2, win(9, 12)), vlanEntry("z", 4, win(0, 20)),
			}},
			req:       req("vc", 1, 1024, 1, 0, win(3, 10), RoundRobin),
			wantHosts: "h1",
			wantVLAN:  3,
		},
		{
			name: "a VLAN tag is free again when its window ends",
			tt: Timetable{Hosts: fourHosts(), Entries: []Entry{
				vlanEntry("x", 1, win(0, 5)), vlanEntry("y", 2, win(5, 7)),
			}},
			req:       req("vc", 1, 1024, 1, 0, win(5, 10), RoundRobin),
			wantHosts: "h1",
			wantVLAN:  1,
		},
		{
			name: "back-to-back windows do not overlap",
			tt: Timetable{Hosts: []Host{host("h1", "s1", 4096, 4)}, Entries: []Entry{
				hostEntry("x", "h1", win(0, 5), 4096, 4, 1, 0), hostEntry("y", "h1", win(10, 20), 4096, 4, 1, 0),
			}},
			req:       req("vc", 2, 2048, 2, 0, win(5, 10), Pack),
			wantHosts: "h1,h1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Admit(tc.tt, tc.req, Options{})
			if err != nil {
				t.Fatalf("Admit: %v", err)
			}
			checkPlacement(t, tc.tt, tc.req, p)
			if got := hostsOf(p); got != tc.wantHosts {
				t.Errorf("hosts = %s, want %s", got, tc.wantHosts)
			}
			if tc.wantStore != "" {
				if got := storesOf(p); got != tc.wantStore {
					t.Errorf("storage = %s, want %s", got, tc.wantStore)
				}
			}
			want := tc.wantVLAN
			if want == 0 {
				want = 1
			}
			if p.VLAN != want {
				t.Errorf("VLAN = %d, want %d", p.VLAN, want)
			}
			if err := tc.tt.Add(p).Verify(); err != nil {
				t.Errorf("overcommitted after Add: %v", err)
			}
		})
	}
}

func TestNodeNamesAndEntries(t *testing.T) {
	tt := Timetable{Hosts: fourHosts(), Storage: []StorageHost{store("st", "s1", 100*gb)}}
	r := req("vc", 12, 1024, 2, gb, win(0, 10), RoundRobin)
	r.Frontend = true
	p, err := Admit(tt, r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Nodes[0].Name != "node00" || p.Nodes[11].Name != "node11" || !p.Nodes[0].Frontend {
		t.Errorf("names: %+v", p.Nodes)
	}
	es := p.Entries()
	var got []string
	for _, e := range es {
		switch e.Kind {
		case KindHost:
			got = append(got, e.Resource+":"+itoa(e.MemoryMiB)+"/"+itoa(e.VCPUs)+"/"+itoa(int64(e.Nodes))+"/"+itoa(int64(e.Frontends)))
		case KindStorage:
			got = append(got, e.Resource+":"+itoa(e.Bytes/gb)+"G/"+itoa(int64(e.Nodes)))
		case KindVLAN:
			got = append(got, "vlan:"+itoa(int64(e.VLAN)))
		}
		if e.VC != "vc" || e.RequestID != "id-vc" || e.Window != p.Window {
			t.Errorf("entry header %+v", e)
		}
	}
	want := "h1:3072/6/3/1 h2:3072/6/3/0 h3:3072/6/3/0 h4:3072/6/3/0 st:12G/12 vlan:1"
	if strings.Join(got, " ") != want {
		t.Errorf("entries = %s, want %s", strings.Join(got, " "), want)
	}
	if s := p.Sites(); len(s) != 1 || s[0] != "s1" {
		t.Errorf("Sites = %v", s)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestRefusals(t *testing.T) {
	hosts := []Host{host("h1", "s1", 4096, 4), host("h2", "s1", 4096, 4), host("h3", "s2", 4096, 4)}
	stores := []StorageHost{store("st1", "s1", 50*gb), store("st2", "s2", 50*gb)}
	tests := []struct {
		name       string
		tt         Timetable
		opts       Options
		req        Request
		constraint Constraint
		resource   string
		free       int64
		reason     string  // exact reason, or "" to skip
		contains   string  // substring of the reason
		earliest   *Window // nil: no window fits
	}{
		{
			name: "memory names the host closest to fitting and the earliest window",
			tt: Timetable{Hosts: hosts, Entries: []Entry{
				hostEntry("x", "h1", win(0, 8), 3584, 1, 1, 0),
				hostEntry("y", "h2", win(0, 6), 4096, 1, 1, 0),
				hostEntry("z", "h3", win(2, 4), 3072, 1, 1, 0),
			}},
			req:        req("vc", 3, 2048, 1, 0, win(1, 5), RoundRobin),
			constraint: ConstraintMemory, resource: "h3", free: 1024,
			reason:   "memory: host h3 at site s2 has 1024 MiB free in [2030-01-01T01:00:00Z, 2030-01-01T05:00:00Z), 2048 needed; no placement of 3 nodes fits",
			earliest: ptr(win(6, 10)), // from 4 only h3 has room (2 nodes); from 6 h2 too
		},
		{
			name: "the count of nodes that fitted first",
			tt:   Timetable{Hosts: hosts},
			req:  req("vc", 7, 2048, 1, 0, win(0, 5), Pack),
			// 6 fit (2 per host); nothing ever frees the 7th slot.
			constraint: ConstraintMemory, resource: "h1", free: 0,
			contains: "no placement of 7 nodes fits (the first 6 fit)",
		},
		{
			name: "vcpu",
			tt: Timetable{Hosts: hosts, Entries: []Entry{
				hostEntry("x", "h1", win(0, 10), 0, 3, 1, 0), hostEntry("x2", "h2", win(0, 10), 0, 4, 1, 0), hostEntry("x3", "h3", win(0, 3), 0, 4, 1, 0),
			}},
			req:        req("vc", 1, 1024, 2, 0, win(0, 5), RoundRobin),
			constraint: ConstraintVCPU, resource: "h1", free: 1,
			contains: "vcpu: host h1 at site s1 has 1 vCPUs free in [2030-01-01T00:00:00Z, 2030-01-01T05:00:00Z), 2 needed",
			earliest: ptr(win(3, 8)),
		},
		{
			name: "storage space",
			tt: Timetable{Hosts: hosts, Storage: stores, Entries: []Entry{
				{Kind: KindStorage, Resource: "st1", VC: "x", Window: win(0, 10), Bytes: 45 * gb, Nodes: 1},
				{Kind: KindStorage, Resource: "st2", VC: "y", Window: win(0, 12), Bytes: 48 * gb, Nodes: 1},
			}},
			req:        req("vc", 1, 1024, 1, 10*gb, win(0, 5), RoundRobin),
			constraint: ConstraintStorage, resource: "st1", free: 5 * gb,
			reason:   "storage: storage host st1 at site s1 has 5 GiB free in [2030-01-01T00:00:00Z, 2030-01-01T05:00:00Z), 10 GiB needed; no placement of 1 nodes fits",
			earliest: ptr(win(10, 15)),
		},
		{
			name:       "no storage host at the site",
			tt:         Timetable{Hosts: hosts, Storage: []StorageHost{store("st1", "s1", 50*gb)}},
			req:        withSitesReq(req("vc", 1, 1024, 1, gb, win(0, 5), RoundRobin), []string{"s2"}, nil),
			constraint: ConstraintStorage,
			reason:     "storage: no storage host at site s2, whose hosts have room; no placement of 1 nodes fits at sites [s2]",
		},
		{
			name:       "no host at the requested sites",
			tt:         Timetable{Hosts: hosts},
			req:        withSitesReq(req("vc", 1, 1024, 1, 0, win(0, 5), RoundRobin), []string{"s9"}, nil),
			constraint: ConstraintSite,
			reason:     "site: no compute host at sites [s9]; no placement of 1 nodes fits at sites [s9]",
		},
		{
			name: "each_site binds at one site",
			tt: Timetable{Hosts: hosts, Entries: []Entry{
				hostEntry("x", "h3", win(0, 10), 3072, 1, 1, 0),
			}},
			req:        withSitesReq(req("vc", 2, 2048, 1, 0, win(0, 5), Pack), nil, []string{"s1", "s2"}),
			constraint: ConstraintMemory, resource: "h3", free: 1024,
			contains: "memory: host h3 at site s2 has 1024 MiB free in [2030-01-01T00:00:00Z, 2030-01-01T05:00:00Z), 2048 needed; no placement of 2 nodes fits with one at each of sites [s1 s2] (the first 1 fit)",
			earliest: ptr(win(10, 15)),
		},
		{
			name:       "each_site site without hosts",
			tt:         Timetable{Hosts: hosts},
			req:        withSitesReq(req("vc", 2, 1024, 1, 0, win(0, 5), Spread), nil, []string{"s3"}),
			constraint: ConstraintSite,
			reason:     "site: no compute host at site s3; no placement of 2 nodes fits with one at each of sites [s3]",
		},
		{
			name:       "each_site covering every node, at sites without hosts",
			tt:         Timetable{Hosts: hosts},
			req:        withSitesReq(withFrontendReq(req("vc", 2, 1024, 1, 0, win(0, 5), RoundRobin)), nil, []string{"s7", "s8"}),
			constraint: ConstraintSite,
			reason:     "site: no compute host at sites [s7 s8]; no placement of 2 nodes fits with one at each of sites [s7 s8]",
		},
		{
			name:       "empty federation",
			tt:         Timetable{},
			req:        req("vc", 1, 1024, 1, 0, win(0, 5), Spread),
			constraint: ConstraintSite,
			reason:     "site: the federation has no compute host; no placement of 1 nodes fits",
		},
		{
			name: "vlan pool exhausted",
			tt: Timetable{Hosts: hosts, Entries: []Entry{
				vlanEntry("x", 10, win(0, 7)), vlanEntry("y", 11, win(0, 9)),
			}},
			opts:       Options{VLANMin: 10, VLANMax: 11},
			req:        req("vc", 1, 1024, 1, 0, win(3, 5), RoundRobin),
			constraint: ConstraintVLAN,
			reason:     "vlan: all 2 tags of 10-11 are held in [2030-01-01T03:00:00Z, 2030-01-01T05:00:00Z)",
			earliest:   ptr(win(7, 9)),
		},
		{
			name: "earliest fit beyond the horizon is not offered",
			tt: Timetable{Hosts: hosts, Entries: []Entry{
				hostEntry("x", "h1", win(0, 100), 4096, 1, 1, 0), hostEntry("y", "h2", win(0, 100), 4096, 1, 1, 0), hostEntry("z", "h3", win(0, 100), 4096, 1, 1, 0),
			}},
			opts:       Options{Horizon: 50 * time.Hour},
			req:        req("vc", 1, 1024, 1, 0, win(0, 5), RoundRobin),
			constraint: ConstraintMemory, resource: "h1",
		},
		{
			name: "earliest fit needs several entries to end",
			tt: Timetable{Hosts: hosts, Entries: []Entry{
				hostEntry("x", "h1", win(0, 3), 4096, 1, 1, 0), hostEntry("y", "h2", win(0, 6), 4096, 1, 1, 0), hostEntry("z", "h3", win(0, 9), 4096, 1, 1, 0),
				hostEntry("w", "h1", win(5, 8), 4096, 1, 1, 0),
			}},
			req:        req("vc", 2, 4096, 1, 0, win(0, 2), Pack),
			constraint: ConstraintMemory,
			earliest:   ptr(win(8, 10)),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Admit(tc.tt, tc.req, tc.opts)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("Admit = %v, want a refusal", err)
			}
			r, ok := IsRefusal(err)
			if !ok {
				t.Fatalf("%T is not a *Refusal", err)
			}
			if r.Constraint != tc.constraint {
				t.Errorf("constraint = %s, want %s (%s)", r.Constraint, tc.constraint, r.Reason)
			}
			if tc.resource != "" && (r.Resource != tc.resource || r.Free != tc.free) {
				t.Errorf("resource %s free %d, want %s free %d (%s)", r.Resource, r.Free, tc.resource, tc.free, r.Reason)
			}
			if tc.reason != "" && r.Reason != tc.reason {
				t.Errorf("reason:\n got %s\nwant %s", r.Reason, tc.reason)
			}
			if !strings.Contains(r.Reason, tc.contains) {
				t.Errorf("reason %q lacks %q", r.Reason, tc.contains)
			}
			switch {
			case tc.earliest == nil && r.Earliest != nil:
				t.Errorf("earliest = %v, want none", r.Earliest)
			case tc.earliest != nil && (r.Earliest == nil || !r.Earliest.Start.Equal(tc.earliest.Start) || !r.Earliest.End.Equal(tc.earliest.End)):
				t.Errorf("earliest = %v, want %v", r.Earliest, tc.earliest)
			}
			if r.Earliest != nil {
				alt := tc.req
				alt.Window = *r.Earliest
				p, err := Admit(tc.tt, alt, tc.opts)
				if err != nil {
					t.Fatalf("the earliest window does not fit: %v", err)
				}
				if err := tc.tt.Add(p).Verify(); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(err2s(r), "earliest window that fits: "+r.Earliest.String()) {
					t.Errorf("Error() = %s", r.Error())
				}
			}
		})
	}
}

func err2s(e error) string { return e.Error() }

func ptr[T any](v T) *T { return &v }

func withFrontendReq(r Request) Request { r.Frontend = true; return r }

func withSitesReq(r Request, sites, each []string) Request {
	r.Sites, r.EachSite = sites, each
	return r
}

func TestInvalidInputs(t *testing.T) {
	tt := Timetable{Hosts: fourHosts()}
	good := req("vc", 2, 1024, 1, 0, win(0, 1), RoundRobin)
	mod := func(f func(*Request)) Request { r := good; f(&r); return r }
	bad := map[string]Request{
		"vc name":          mod(func(r *Request) { r.VC = "bad/name" }),
		"zero nodes":       mod(func(r *Request) { r.Nodes = 0 }),
		"too many nodes":   mod(func(r *Request) { r.Nodes = MaxNodes + 1 }),
		"zero memory":      mod(func(r *Request) { r.MemoryMiB = 0 }),
		"zero vcpus":       mod(func(r *Request) { r.VCPUs = 0 }),
		"negative disk":    mod(func(r *Request) { r.DiskBytes = -1 }),
		"empty window":     mod(func(r *Request) { r.Window = win(1, 1) }),
		"reversed window":  mod(func(r *Request) { r.Window = win(2, 1) }),
		"zero window":      mod(func(r *Request) { r.Window = Window{} }),
		"policy":           mod(func(r *Request) { r.Policy = "best" }),
		"duplicate site":   mod(func(r *Request) { r.Sites = []string{"s1", "s1"} }),
		"each outside":     mod(func(r *Request) { r.Sites = []string{"s1"}; r.EachSite = []string{"s2"} }),
		"each too many":    mod(func(r *Request) { r.EachSite = []string{"s1", "s2", "s3"} }),
		"bad each name":    mod(func(r *Request) { r.EachSite = []string{""} }),
		"duplicate each":   mod(func(r *Request) { r.EachSite = []string{"s1", "s1"} }),
		"window past 2200": mod(func(r *Request) { r.Window = Window{hr(0), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)} }),
	}
	for name, r := range bad {
		if _, err := Admit(tt, r, Options{}); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: err = %v, want ErrInvalidRequest", name, err)
		}
	}
	badTT := map[string]Timetable{
		"duplicate host":   {Hosts: []Host{host("h1", "s1", 1, 1), host("h1", "s2", 1, 1)}},
		"negative memory":  {Hosts: []Host{host("h1", "s1", -1, 1)}},
		"unnamed site":     {Hosts: []Host{host("h1", "", 1, 1)}},
		"duplicate store":  {Storage: []StorageHost{store("a", "s1", 1), store("a", "s1", 1)}},
		"bad entry kind":   {Entries: []Entry{{Kind: "gpu", Resource: "h1", VC: "x", Window: win(0, 1)}}},
		"bad entry window": {Entries: []Entry{hostEntry("x", "h1", win(1, 0), 1, 1, 1, 0)}},
		"bad vlan":         {Entries: []Entry{vlanEntry("x", 4095, win(0, 1))}},
		"negative amount":  {Entries: []Entry{hostEntry("x", "h1", win(0, 1), -5, 1, 1, 0)}},
		"frontends>nodes":  {Entries: []Entry{hostEntry("x", "h1", win(0, 1), 5, 1, 1, 2)}},
	}
	for name, tt := range badTT {
		if _, err := Admit(tt, good, Options{}); !errors.Is(err, ErrInvalidTimetable) {
			t.Errorf("%s: err = %v, want ErrInvalidTimetable", name, err)
		}
	}
	for name, o := range map[string]Options{"vlan range": {VLANMin: 5, VLANMax: 4}, "vlan max": {VLANMax: 4095}, "horizon": {Horizon: -1}, "probes": {MaxProbes: -1}} {
		if _, err := Admit(tt, good, o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions", name, err)
		}
	}
	tt.Entries = []Entry{hostEntry("vc", "h1", win(5, 6), 1, 1, 1, 0)}
	if _, err := Admit(tt, good, Options{}); !errors.Is(err, ErrVCExists) {
		t.Errorf("existing VC: %v", err)
	}
}

// TestFirstComeFirstServed: admitting in sequence never changes earlier
// placements; a request that would need an earlier one's resources is
// refused, not given them.
func TestFirstComeFirstServed(t *testing.T) {
	tt := Timetable{Hosts: []Host{host("h1", "s1", 4096, 4), host("h2", "s1", 4096, 4)}}
	a, err := Admit(tt, req("a", 4, 2048, 1, 0, win(0, 10), Pack), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tt = tt.Add(a)
	before := append([]Entry(nil), tt.Entries...)
	_, err = Admit(tt, req("b", 1, 1024, 1, 0, win(5, 6), Pack), Options{})
	r, ok := IsRefusal(err)
	if !ok {
		t.Fatalf("b = %v, want refusal", err)
	}
	if r.Earliest == nil || !r.Earliest.Start.Equal(hr(10)) {
		t.Errorf("earliest = %v, want from hour 10", r.Earliest)
	}
	if !reflect.DeepEqual(before, tt.Entries) {
		t.Error("a refused admission changed the timetable")
	}
	// Cancel frees: b fits now.
	freed := tt.Cancel("a")
	if _, err := Admit(freed, req("b", 1, 1024, 1, 0, win(5, 6), Pack), Options{}); err != nil {
		t.Errorf("after cancel: %v", err)
	}
	if tt.Has("a") == false || freed.Has("a") {
		t.Error("Cancel changed its receiver or kept the VC")
	}
	// Early release at hour 5: b fits from 5, not before.
	rel := tt.Release("a", hr(5))
	if _, err := Admit(rel, req("b", 1, 1024, 1, 0, win(5, 6), Pack), Options{}); err != nil {
		t.Errorf("after release: %v", err)
	}
	if _, err := Admit(rel, req("b", 1, 1024, 1, 0, win(4, 6), Pack), Options{}); !errors.Is(err, ErrRefused) {
		t.Errorf("before the release instant: %v", err)
	}
	for _, e := range rel.EntriesOf("a") {
		if !e.Window.End.Equal(hr(5)) {
			t.Errorf("released entry %+v", e)
		}
	}
	if n := len(tt.Release("a", hr(-1)).EntriesOf("a")); n != 0 {
		t.Errorf("release before start left %d entries", n)
	}
	if n := len(tt.Release("a", hr(20)).EntriesOf("a")); n != len(tt.EntriesOf("a")) {
		t.Errorf("release after end changed entries")
	}
}

// TestDeterministic: the same request against the same timetable, with
// hosts and entries listed in any order, gets the same placement.
func TestDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tt Timetable
	for i := range 30 {
		tt.Hosts = append(tt.Hosts, host("h"+itoa(int64(i)), "s"+itoa(int64(i%3)), 16384, 16))
	}
	for i := range 3 {
		tt.Storage = append(tt.Storage, store("st"+itoa(int64(i)), "s"+itoa(int64(i)), 1000*gb))
	}
	for i := range 40 {
		p, err := Admit(tt, Request{VC: "v" + itoa(int64(i)), Nodes: 1 + rng.IntN(8), MemoryMiB: 1024 * int64(1+rng.IntN(4)), VCPUs: 1, DiskBytes: gb,
			Window: win(rng.IntN(20), 21+rng.IntN(20)), Policy: Policies[i%3], Frontend: i%2 == 0}, Options{})
		if err == nil {
			tt = tt.Add(p)
		}
	}
	for _, pol := range Policies {
		r := Request{VC: "new", Nodes: 20, MemoryMiB: 2048, VCPUs: 2, DiskBytes: 10 * gb, Window: win(10, 30), Policy: pol, Frontend: true, EachSite: []string{"s2"}}
		want, werr := Admit(tt, r, Options{})
		for k := range 5 {
			sh := tt.clone()
			rng.Shuffle(len(sh.Hosts), func(i, j int) { sh.Hosts[i], sh.Hosts[j] = sh.Hosts[j], sh.Hosts[i] })
			rng.Shuffle(len(sh.Storage), func(i, j int) { sh.Storage[i], sh.Storage[j] = sh.Storage[j], sh.Storage[i] })
			rng.Shuffle(len(sh.Entries), func(i, j int) { sh.Entries[i], sh.Entries[j] = sh.Entries[j], sh.Entries[i] })
			got, gerr := Admit(sh, r, Options{})
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gerr, werr) {
				t.Fatalf("%s shuffle %d: got %v / %v, want %v / %v", pol, k, hostsOf(got), gerr, hostsOf(want), werr)
			}
		}
	}
}

func TestVerifyFindsOvercommit(t *testing.T) {
	tt := Timetable{
		Hosts:   []Host{host("h1", "s1", 4096, 4)},
		Storage: []StorageHost{store("st", "s1", 10*gb)},
		Entries: []Entry{
			hostEntry("a", "h1", win(0, 5), 3072, 2, 1, 0),
			hostEntry("b", "h1", win(4, 8), 2048, 3, 1, 0),
			hostEntry("c", "h1", win(5, 8), 2048, 1, 1, 0), // with b: 4096, fits
			{Kind: KindStorage, Resource: "st", VC: "a", Window: win(0, 5), Bytes: 6 * gb},
			{Kind: KindStorage, Resource: "st", VC: "b", Window: win(5, 9), Bytes: 6 * gb},
			vlanEntry("a", 7, win(0, 5)), vlanEntry("b", 7, win(4, 6)), vlanEntry("c", 7, win(6, 9)),
		},
	}
	err := tt.Verify()
	if !errors.Is(err, ErrOvercommit) {
		t.Fatalf("Verify = %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"host h1: 5120 MiB booked at 2030-01-01T04:00:00Z, capacity 4096 MiB",
		"host h1: 5 vCPUs booked at 2030-01-01T04:00:00Z, capacity 4",
		"VLAN 7 held by a",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("Verify error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "storage") || strings.Count(msg, "VLAN 7") != 1 {
		t.Errorf("false positives:\n%s", msg)
	}
}

func TestNaturalOrder(t *testing.T) {
	names := []string{"h10", "h2", "h1", "h01", "a", "h", "h1a", "h1b", "h02x", "b3c10", "b3c9"}
	sortNatural(names)
	want := "a b3c9 b3c10 h h01 h1 h1a h1b h2 h02x h10"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("natural order %s, want %s", got, want)
	}
}

func TestValidNameMatchesCoord(t *testing.T) {
	for _, s := range []string{"", "a", "A9", "-a", ".a", "_a", "a-b.c_d", "a/b", "a b", "é", strings.Repeat("x", 63), strings.Repeat("x", 64), "a\x00", "9", "a~b"} {
		if (validName(s) == nil) != (coord.ValidName(s) == nil) {
			t.Errorf("validName(%q) = %v, coord.ValidName = %v", s, validName(s), coord.ValidName(s))
		}
	}
}

func FuzzValidName(f *testing.F) {
	f.Add("a-b")
	f.Fuzz(func(t *testing.T, s string) {
		if (validName(s) == nil) != (coord.ValidName(s) == nil) {
			t.Errorf("validName(%q) = %v, coord.ValidName = %v", s, validName(s), coord.ValidName(s))
		}
	})
}
