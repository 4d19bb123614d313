package topology

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func site(name, gw string) Site { return Site{Name: name, Gateway: netip.MustParseAddr(gw)} }

func link(a, b string, cost uint32, up bool) Link {
	return Link{A: a, B: b, Cost: cost, Up: up, Updated: t0}
}

var three = []Site{site("s1", "192.0.2.11"), site("s2", "192.0.2.12"), site("s3", "192.0.2.13")}

func TestGraphShortestPaths(t *testing.T) {
	type want struct {
		from, to string
		path     []string
		cost     uint64
	}
	cases := []struct {
		name  string
		sites []Site
		live  []string
		links []Link
		want  []want
	}{
		{
			name: "direct links cheapest", sites: three, live: []string{"s1", "s2", "s3"},
			links: []Link{link("s1", "s2", 500, true), link("s2", "s3", 500, true), link("s1", "s3", 800, true)},
			want: []want{
				{"s1", "s3", []string{"s1", "s3"}, 800},
				{"s3", "s1", []string{"s3", "s1"}, 800},
				{"s1", "s2", []string{"s1", "s2"}, 500},
			},
		},
		{
			name: "cheaper through s2", sites: three, live: []string{"s1", "s2", "s3"},
			links: []Link{link("s1", "s2", 100, true), link("s2", "s3", 100, true), link("s1", "s3", 300, true)},
			want:  []want{{"s1", "s3", []string{"s1", "s2", "s3"}, 200}, {"s3", "s1", []string{"s3", "s2", "s1"}, 200}},
		},
		{
			name: "down link routed around", sites: three, live: []string{"s1", "s2", "s3"},
			links: []Link{link("s1", "s2", 500, true), link("s2", "s3", 500, true), link("s3", "s1", 100, false)},
			want:  []want{{"s1", "s3", []string{"s1", "s2", "s3"}, 1000}},
		},
		{
			name: "missing record costs DefaultCost", sites: three, live: []string{"s1", "s2", "s3"},
			links: []Link{link("s1", "s2", 500, true), link("s2", "s3", 500, true)},
			want:  []want{{"s1", "s3", []string{"s1", "s2", "s3"}, 1000}, {"s1", "s2", []string{"s1", "s2"}, 500}},
		},
		{
			name: "tie broken toward the smaller name", live: []string{"a", "m", "b", "z"},
			sites: []Site{site("a", "192.0.2.1"), site("z", "192.0.2.2"), site("m", "192.0.2.3"), site("b", "192.0.2.4")},
			links: []Link{link("a", "m", 10, true), link("m", "z", 10, true), link("a", "b", 10, true), link("b", "z", 10, true), link("a", "z", 0, false), link("b", "m", 0, false)},
			want:  []want{{"a", "z", []string{"a", "b", "z"}, 20}, {"z", "a", []string{"z", "b", "a"}, 20}},
		},
		{
			name: "zero cost counts as MinCost", sites: three, live: []string{"s1", "s2", "s3"},
			links: []Link{link("s1", "s2", 0, true), link("s2", "s3", 0, true), link("s1", "s3", 5, true)},
			want:  []want{{"s1", "s3", []string{"s1", "s2", "s3"}, 2}},
		},
		{
			name: "dead site excluded", sites: three, live: []string{"s1", "s3"},
			links: []Link{link("s1", "s2", 1, true), link("s2", "s3", 1, true), link("s1", "s3", 900, true)},
			want:  []want{{"s1", "s3", []string{"s1", "s3"}, 900}, {"s1", "s2", nil, Unreachable}},
		},
		{
			name: "partition", sites: three, live: []string{"s1", "s2", "s3"},
			links: []Link{link("s1", "s2", 1, true), link("s2", "s3", 1, false), link("s1", "s3", 1, false)},
			want:  []want{{"s1", "s3", nil, Unreachable}, {"s2", "s1", []string{"s2", "s1"}, 1}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewGraph(c.sites, c.live, c.links)
			for _, w := range c.want {
				if got := g.Path(w.from, w.to); !slices.Equal(got, w.path) {
					t.Errorf("Path(%s,%s) = %v, want %v\n%s", w.from, w.to, got, w.path, g)
				}
				if got := g.Distance(w.from, w.to); got != w.cost {
					t.Errorf("Distance(%s,%s) = %d, want %d", w.from, w.to, got, w.cost)
				}
				hop, ok := g.NextHop(w.from, w.to)
				if ok != (w.path != nil) || (ok && hop != w.path[1]) {
					t.Errorf("NextHop(%s,%s) = %q,%v", w.from, w.to, hop, ok)
				}
			}
			if p := g.Problems(); len(p) != 0 {
				t.Errorf("problems: %v", p)
			}
		})
	}
}

func TestGraphRecords(t *testing.T) {
	sites := []Site{
		site("s1", "192.0.2.11"),
		site("s2", "192.0.2.12"),
		site("s2", "192.0.2.99"), // duplicate record: the smaller gateway wins
		{Name: "s3"},             // no gateway
		site("bad/name", "192.0.2.14"),
		site("s4", "0.0.0.0"),
	}
	links := []Link{
		{A: "s1", B: "s2", Cost: 10, Up: true, Updated: t0},
		{A: "s2", B: "s1", Cost: 20, Up: false, Updated: t0.Add(time.Second)}, // newer: down
		{A: "s1", B: "s1", Cost: 1, Up: true},
		{A: "s1", B: "ghost", Cost: 1, Up: true}, // not live: silently ignored
	}
	g := NewGraph(sites, []string{"s1", "s2", "s3", "bad/name", "s4", "ghost"}, links)
	if got := g.Sites(); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Errorf("Sites = %v", got)
	}
	if s, _ := g.Site("s2"); s.Gateway != netip.MustParseAddr("192.0.2.12") {
		t.Errorf("s2 gateway = %v", s.Gateway)
	}
	if _, ok := g.Cost("s1", "s2"); ok {
		t.Error("newer down record did not win")
	}
	problems := g.Problems()
	if len(problems) != 5 {
		t.Errorf("want 5 problems, got %d: %v", len(problems), problems)
	}
	for _, p := range problems {
		if !errors.Is(p, ErrBadRecord) {
			t.Errorf("problem %v does not wrap ErrBadRecord", p)
		}
	}
	// Same timestamp: down wins over up, whatever the order.
	for _, ls := range [][]Link{
		{link("s1", "s2", 5, true), link("s1", "s2", 5, false)},
		{link("s1", "s2", 5, false), link("s1", "s2", 5, true)},
	} {
		if _, ok := NewGraph(sites[:2], []string{"s1", "s2"}, ls).Cost("s1", "s2"); ok {
			t.Errorf("tie %v: up won", ls)
		}
	}
}

func TestGraphTunnelNameCollision(t *testing.T) {
	// Find two long names whose tunnel port names collide (20-bit hash).
	seen := map[string]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		n := "tokyo-" + itoa(i)
		pn := tunnelName(n)
		if o, ok := seen[pn]; ok {
			a, b = o, n
		}
		seen[pn] = n
	}
	g := NewGraph([]Site{site(a, "192.0.2.1"), site(b, "192.0.2.2"), site("s1", "192.0.2.3")}, []string{a, b, "s1"}, nil)
	keep, drop := min(a, b), max(a, b)
	if !g.Has(keep) || g.Has(drop) || len(g.Problems()) != 1 {
		t.Errorf("collision %s/%s: sites %v problems %v", a, b, g.Sites(), g.Problems())
	}
}

func TestGraphRoutes(t *testing.T) {
	g := NewGraph(three, []string{"s1", "s2", "s3"}, []Link{link("s1", "s2", 100, true), link("s2", "s3", 100, true), link("s1", "s3", 300, true)})
	got := g.Routes("s1")
	want := []Route{{Dest: "s2", NextHop: "s2", Cost: 100, Hops: 1}, {Dest: "s3", NextHop: "s2", Cost: 200, Hops: 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Routes = %+v", got)
	}
	if g.Routes("nope") != nil {
		t.Error("routes from an unknown site")
	}
}
