//go:build integration

package ovstest_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/ovstest"
)

func addr(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// TestNormalMesh builds three sites with a NORMAL-action GRE mesh, checks
// VLAN isolation, TCP, cutting and restoring one WAN link, and that Close
// leaves nothing behind.
func TestNormalMesh(t *testing.T) {
	f := ovstest.NewT(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if err := f.BuildNormalMesh(ctx, "br-int"); err != nil {
		t.Fatal(err)
	}
	// Endpoint "a<i>" on VLAN 10 and "b<i>" on VLAN 11 at every site; all
	// in one /24, so only the VLAN separates them.
	eps := map[string]*ovstest.Endpoint{}
	for _, s := range f.Sites() {
		for j, vc := range []string{"a", "b"} {
			name := fmt.Sprintf("%s%d", vc, s.Index)
			e, err := f.AddEndpoint(ctx, s, ovstest.EndpointSpec{Name: name, Addr: addr(fmt.Sprintf("10.0.0.%d/24", 10*(j+1)+s.Index))})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Attach(ctx, "br-int", 10+j); err != nil {
				t.Fatal(err)
			}
			eps[name] = e
		}
	}
	// Same VLAN across sites: reachable.
	for _, p := range [][2]string{{"a1", "a2"}, {"a1", "a3"}, {"a2", "a3"}, {"b1", "b3"}} {
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
		if err := eps[p[0]].WaitPing(wctx, eps[p[1]].IP()); err != nil {
			t.Errorf("%s -> %s: %v", p[0], p[1], err)
		}
		wcancel()
	}
	// Across VLANs: nothing arrives, even with the MAC known.
	before, err := eps["b2"].Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := eps["a1"].SetNeighbor(ctx, eps["b2"].IP(), eps["b2"].MAC); err != nil {
		t.Fatal(err)
	}
	if n, err := eps["a1"].Ping(ctx, eps["b2"].IP(), 3); err != nil || n != 0 {
		t.Errorf("a1 -> b2 across VLANs: %d replies, err %v", n, err)
	}
	after, err := eps["b2"].Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.RxPackets != before.RxPackets {
		t.Errorf("b2 received %d packets from another VLAN", after.RxPackets-before.RxPackets)
	}

	bps, err := ovstest.Throughput(ctx, eps["a1"], eps["a3"], time.Second)
	if err != nil {
		t.Fatalf("TCP a1 -> a3: %v", err)
	}
	t.Logf("TCP a1 -> a3 over NORMAL GRE: %.0f Mbit/s", bps/1e6)

	// Cut site1~site3: with NORMAL and split horizon there is no detour.
	s1, _ := f.Site(1)
	s3, _ := f.Site(3)
	p, err := ovstest.StartProbe(eps["a1"], eps["a3"], 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	waitReplies(t, p, 5)
	cut := time.Now()
	if err := f.CutLink(ctx, s1, s3); err != nil {
		t.Fatal(err)
	}
	if n, _ := eps["a1"].Ping(ctx, eps["a3"].IP(), 3); n != 0 {
		t.Errorf("a1 -> a3 with the link cut: %d replies", n)
	}
	if n, _ := eps["a1"].Ping(ctx, eps["a2"].IP(), 3); n == 0 {
		t.Errorf("a1 -> a2 with site1~site3 cut: no replies")
	}
	if err := f.RestoreLink(ctx, s1, s3); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	if err := eps["a1"].WaitPing(wctx, eps["a3"].IP()); err != nil {
		t.Errorf("after restore: %v", err)
	}
	waitRepliesAfter(t, p, time.Now(), 3)
	r := p.Stop()
	t.Logf("probe: sent %d, received %d, outage %v", r.Sent, r.Received(), r.OutageAfter(cut).Round(time.Millisecond))
	if r.OutageAfter(cut) < 300*time.Millisecond {
		t.Errorf("outage %v: the cut did not stop the probe", r.OutageAfter(cut))
	}

	// A fourth site joins and leaves.
	s4, err := f.AddSite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := s4.Exec(ctx, "ping", "-c", "1", "-W", "2", s1.Addr.Addr().String()); err != nil {
		t.Errorf("site4 underlay -> site1: %v %s", err, out)
	}
	if err := f.RemoveSite(ctx, s4); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", s4.NS)); !os.IsNotExist(err) {
		t.Errorf("namespace %s still there after RemoveSite", s4.NS)
	}

	// Close removes everything (NewT's cleanup will find it closed).
	id, dir := f.ID, f.Dir()
	pids := []int{}
	for _, s := range f.Sites() {
		pids = append(pids, s.VswitchdPID())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, id, dir, pids)
}

func waitReplies(t *testing.T, p *ovstest.Probe, n int) {
	t.Helper()
	waitRepliesAfter(t, p, time.Time{}, n)
}

func waitRepliesAfter(t *testing.T, p *ovstest.Probe, at time.Time, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for p.Snapshot().RepliesAfter(at) < n {
		if time.Now().After(deadline) {
			t.Fatalf("probe: fewer than %d replies after %v", n, at)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func assertGone(t *testing.T, id, dir string, pids []int) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), id) {
		t.Errorf("namespaces of %s left:\n%s", id, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("run directory %s left", dir)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("process %d left", pid)
		}
	}
}

// TestSweep fakes the leftovers of a crashed run (directory with a dead
// owner, a namespace, a daemon) and checks that the next fabric's sweep
// removes them while a live fabric is left alone.
func TestSweep(t *testing.T) {
	if err := ovstest.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	base := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	live, err := ovstest.New(ctx, ovstest.Options{Sites: 1, BaseDir: base, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	dead := ovstest.NamePrefix + "dead00"
	deadDir := filepath.Join(base, dead)
	if err := os.MkdirAll(deadDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// PID 1 with a start time that cannot match: a dead owner.
	if err := os.WriteFile(filepath.Join(deadDir, "owner"), []byte("1 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "netns", "add", dead+"-s1").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", dead+"-s1").Run() })
	// A "daemon" of the dead run: its command line names the run dir.
	if err := os.WriteFile(filepath.Join(deadDir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("tail", "-f", filepath.Join(deadDir, "x"))
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = sleeper.Wait(); close(exited) }()
	t.Cleanup(func() { _ = sleeper.Process.Kill(); <-exited })

	if err := ovstest.Sweep(base, t.Logf); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Error("the dead run's process survived the sweep")
	}
	if _, err := os.Stat(filepath.Join("/run/netns", dead+"-s1")); !os.IsNotExist(err) {
		t.Error("the dead run's namespace survived the sweep")
	}
	if _, err := os.Stat(deadDir); !os.IsNotExist(err) {
		t.Error("the dead run's directory survived the sweep")
	}
	if _, err := os.Stat(live.Dir()); err != nil {
		t.Errorf("the live run's directory was swept: %v", err)
	}
	s, err := live.Site(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Vsctl(ctx, "show"); err != nil {
		t.Errorf("the live run's OVS was swept: %v", err)
	}
}
