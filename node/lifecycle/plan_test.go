package lifecycle

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/node/admission"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/reserve"
)

func testRecord() reserve.Record {
	w := admission.Window{Start: time.Unix(1000, 0), End: time.Unix(2000, 0)}
	return reserve.Record{
		VC: "Lab_1", RequestID: "r1", State: reserve.Admitted, Window: w,
		Request: admission.Request{Image: "img"},
		Placement: admission.Placement{VC: "Lab_1", Window: w, VLAN: 42, MemoryMiB: 256, VCPUs: 2, DiskBytes: 1 << 30,
			Nodes: []admission.Node{
				{Name: "node0", Host: "a-h1", Site: "a", Storage: "a-s1", Frontend: true},
				{Name: "node1", Host: "b-h1", Site: "b", Storage: "b-s1"},
				{Name: "node2", Host: "a-h2", Site: "a", Storage: "a-s1"},
			}},
	}
}

// Each site gets its own nodes, with addresses and MACs that follow the
// placement index, so every site computes the same for the whole VC.
func TestShare(t *testing.T) {
	rec := testRecord()
	a, err := Share(rec, "a", Network{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Share(rec, "b", Network{})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Nodes) != 2 || len(b.Nodes) != 1 || a.Total != 3 || len(a.Sites) != 2 {
		t.Fatalf("shares: a %+v, b %+v", a, b)
	}
	want := map[string]string{"node0": "10.64.0.10/16", "node1": "10.64.0.11/16", "node2": "10.64.0.12/16"}
	seen := map[string]bool{}
	for _, n := range append(a.Nodes, b.Nodes...) {
		if n.Addr.String() != want[n.Node] {
			t.Errorf("%s: address %s, want %s", n.Node, n.Addr, want[n.Node])
		}
		if n.MAC.IsMulticast() || n.MAC[0]&2 == 0 || seen[n.MAC.String()] {
			t.Errorf("%s: MAC %s", n.Node, n.MAC)
		}
		seen[n.MAC.String()] = true
		if n.VLAN != 42 || !n.HasDisk() || n.DiskBytes != 1<<30 || n.Image != "img" {
			t.Errorf("node %+v", n)
		}
		if iqn := InitiatorIQN(n.Site, n.VC, n.Node); !provision.ValidIQN(iqn) {
			t.Errorf("initiator name %q is not an IQN", iqn)
		}
	}
	if NodeMAC("Lab_1", "r1", 1) == NodeMAC("Lab_1", "r2", 1) {
		t.Error("a VC admitted again keeps its MACs")
	}
	if !a.Nodes[0].Frontend {
		t.Error("frontend lost")
	}
	if _, err := Share(rec, "a", Network{Subnet: netip.MustParsePrefix("10.9.9.0/30")}); err == nil {
		t.Error("3 nodes fit in a /30")
	}
}

func TestGoal(t *testing.T) {
	rec := testRecord()
	for _, c := range []struct {
		at   int64
		want Goal
		next int64
	}{{999, GoalNone, 1000}, {1000, GoalUp, 2000}, {1999, GoalUp, 2000}, {2000, GoalDown, 0}} {
		if g := GoalAt(rec, time.Unix(c.at, 0)); g != c.want {
			t.Errorf("at %d: %v, want %v", c.at, g, c.want)
		}
		if n := nextEvent(rec, time.Unix(c.at, 0)); (c.next == 0) != n.IsZero() || (c.next != 0 && n.Unix() != c.next) {
			t.Errorf("at %d: next event %v, want %d", c.at, n, c.next)
		}
	}
	rec.State = reserve.Cancelled
	if g := GoalAt(rec, time.Unix(999, 0)); g != GoalDown {
		t.Errorf("cancelled: %v", g)
	}
}

// Secrets are 0600 files in a 0700 directory, listed and deleted with
// their VC's directory.
func TestSecrets(t *testing.T) {
	s := Secrets{Dir: filepath.Join(t.TempDir(), "secrets")}
	if got, err := s.Load("vc", "n0"); err != nil || got != "" {
		t.Fatalf("missing secret: %q, %v", got, err)
	}
	if err := s.Save("vc", "n0", "short"); err == nil {
		t.Error("malformed secret saved")
	}
	const sec = "abcdefghijklmnop1234"
	if err := s.Save("vc", "n0", sec); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load("vc", "n0"); got != sec {
		t.Errorf("loaded %q", got)
	}
	for p, want := range map[string]os.FileMode{s.Dir: 0o700, filepath.Join(s.Dir, "vc"): 0o700, filepath.Join(s.Dir, "vc", "n0.chap"): 0o600} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode().Perm(), err, want)
		}
	}
	// An agent's credentials file sits beside the CHAP secret, and one
	// alone (a crash between the two) still lists its node.
	p, err := s.SaveAgent("vc", "n0", []byte("creds\n"))
	if fi, serr := os.Stat(p); err != nil || serr != nil || fi.Mode().Perm() != 0o600 || filepath.Dir(p) != filepath.Join(s.Dir, "vc") {
		t.Errorf("agent secret %s: %v, %v", p, err, serr)
	}
	if _, err := s.SaveAgent("vc", "n1", []byte("creds\n")); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.List(); len(l) != 2 || l[0] != "vc/n0" || l[1] != "vc/n1" {
		t.Errorf("list %v", l)
	}
	if err := s.Delete("vc", "n1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("vc", "n0"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "vc")); !os.IsNotExist(err) {
		t.Errorf("VC directory left: %v", err)
	}
	if err := s.Save("../x", "n0", sec); err == nil {
		t.Error("a path-like VC name was accepted")
	}
}
