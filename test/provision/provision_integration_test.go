//go:build integration

package provision_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/lifecycle"
)

// A 2-site federation builds a 4-node VC (netns nodes, iSCSI volumes)
// when its window starts, 2 s after the reservation: every node's agent
// writes and reads back a marker on its volume before it is ready, the
// nodes reach each other across the sites on the VC's VLAN, and at the
// window's end (20 s later) everything is gone: tgt targets and accounts,
// OVS ports, veths, namespaces, attachment daemons, agents, files, the
// reservation itself. Then a second VC is built while both peers are
// killed in the middle of provisioning and started again: it still comes
// up, and nothing leaks either.
func TestTwoSiteVC(t *testing.T) {
	fed := newFederation(t, 2)
	for _, s := range fed.sites {
		s.startReconciler()
	}
	before := fed.snapshot()
	t.Logf("before: %v", before)

	t.Run("netns", func(t *testing.T) {
		fed.t = t
		rec := fed.reserve("vc1", 4, 2*time.Second, 20*time.Second)
		t.Logf("vc1: VLAN %d, window %v, placement %+v", rec.Placement.VLAN, rec.Window, rec.Placement.Nodes)
		took := fed.waitReady(rec, 60*time.Second)
		t.Logf("window start -> all 4 nodes ready: %v", took.Round(time.Millisecond))
		for site, st := range fed.statuses("vc1") {
			t.Logf("%s: %d/%d ready, started %v after the window start, ready %v after", site, st.NodesReady, st.Nodes,
				st.Started.Sub(rec.Window.Start).Round(time.Millisecond), st.ReadyAt.Sub(rec.Window.Start).Round(time.Millisecond))
		}
		fed.checkNodes(rec)
		fed.pingAll(rec)
		fed.qsubInNode(rec, rec.Placement.Nodes[len(rec.Placement.Nodes)-1].Name)
		during := fed.snapshot()
		if len(diff(before, during)) == 0 {
			t.Error("the snapshot sees nothing of the running VC: it would not see leftovers either")
		}
		t.Logf("while up: %d more items (%v)", len(diff(before, during)), diff(before, during))
		fed.waitPurged("vc1", time.Until(rec.Window.End)+60*time.Second)
		if left := diff(before, fed.snapshot()); len(left) > 0 {
			t.Errorf("left after the end: %v", left)
		}
	})

	t.Run("restart", func(t *testing.T) {
		fed.t = t
		s1, s2 := fed.sites[0], fed.sites[1]
		// Site 1's agents wait for a gate, so its peer is killed while its
		// nodes run but are not ready; site 2's peer is killed as soon as
		// it has begun.
		gate := filepath.Join(t.TempDir(), "gate")
		s1.mu.Lock()
		s1.gate = gate
		s1.mu.Unlock()
		defer func() {
			s1.mu.Lock()
			s1.gate = ""
			s1.mu.Unlock()
		}()
		rec := fed.reserve("vc2", 4, 2*time.Second, 20*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		waitFor(t, ctx, "site2 begins", func() bool {
			st, ok := fed.statuses("vc2")[s2.name]
			return ok && st.State == lifecycle.StateProvisioning
		})
		s2.killReconciler()
		t.Logf("site2's reconciler killed: %v", fed.snapshotOf("vc2"))
		waitFor(t, ctx, "site1's agents wait at the gate", func() bool {
			nodes, err := s1.nodes.List(context.Background())
			return err == nil && len(nodes) == len(nodesAt(rec.Placement.Nodes, s1.name)) && allRunning(nodes)
		})
		s1.killReconciler()
		t.Logf("site1's reconciler killed: %v", fed.snapshotOf("vc2"))
		s1.startReconciler()
		s2.startReconciler()
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		took := fed.waitReady(rec, 60*time.Second)
		t.Logf("window start -> all 4 nodes ready, with both peers killed and restarted: %v", took.Round(time.Millisecond))
		fed.checkNodes(rec)
		fed.pingAll(rec)
		fed.waitPurged("vc2", time.Until(rec.Window.End)+60*time.Second)
		if left := diff(before, fed.snapshot()); len(left) > 0 {
			t.Errorf("left after the end: %v", left)
		}
	})
	fed.t = t
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Logf("goroutines:\n%s", b.String())
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-time.After(5 * time.Millisecond): // polling with a deadline
		}
	}
}

// snapshotOf summarises what exists of vc (for logs).
func (fed *federation) snapshotOf(vc string) string {
	var n int
	for _, s := range fed.snapshot() {
		if strings.Contains(s, vc) || strings.Contains(s, "netns") || strings.Contains(s, "process") {
			n++
		}
	}
	kids, _, _ := fed.admin.Children(context.Background(), coord.VCNodesDir(vc))
	return strings.Join([]string{"items", itoa(n), "node records", itoa(len(kids))}, " ")
}

// A VC of 4 nodes over 2 sites where each site has a QEMU host and a netns
// host: the 2 QEMU guests boot the node image (TCG) with their root disk
// on their iSCSI volume and reach ready from the image's console marker;
// the netns nodes reach both guests, across the sites too; at the end the
// guests power off and nothing is left (QEMU processes, taps, targets,
// files).
func TestTwoSiteQEMUVC(t *testing.T) {
	needTools(t)
	needQEMU(t)
	fed := newFederation(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fed.enableQEMU(ctx)
	for _, s := range fed.sites {
		s.setKind(ctx, s.name+"-q1", "qemu")
		s.startReconciler()
	}
	before := fed.snapshot()
	rec := fed.reserveQEMU("vcq", 4, 2*time.Second, 90*time.Second)
	guests := 0
	for _, n := range rec.Placement.Nodes {
		if strings.HasSuffix(n.Host, "-q1") {
			guests++
		}
	}
	if guests != 2 {
		t.Fatalf("placement puts %d nodes on QEMU hosts, want 2: %+v", guests, rec.Placement.Nodes)
	}
	took := fed.waitReady(rec, 80*time.Second)
	t.Logf("window start -> all 4 nodes (2 QEMU-TCG guests) ready: %v (load %s)", took.Round(time.Millisecond), loadavg())
	fed.checkNodes(rec)
	fed.pingAll(rec)
	// End it early: the release starts the teardown at once.
	if _, err := fed.res.Release(ctx, "vcq", time.Now()); err != nil {
		t.Fatal(err)
	}
	fed.waitPurged("vcq", 2*time.Minute)
	if left := diff(before, fed.snapshot()); len(left) > 0 {
		t.Errorf("left after the end: %v", left)
	}
}
