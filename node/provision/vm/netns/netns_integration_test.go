//go:build integration

package netns_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/ovstest"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/netns"
	"github.com/musubi-fabric/musubi/node/provision/vm/vmtest"
)

// realHost is one OVS site (from ovstest) with br-int, and a backend
// factory over it with a namespace prefix of this test run.
type realHost struct {
	site   *ovstest.Site
	ports  *vm.VsctlPorts
	dir    string
	prefix string
}

func newRealHost(t *testing.T) *realHost {
	t.Helper()
	f := ovstest.NewT(t, 1)
	s := f.Sites()[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Vsctl(ctx, "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev"); err != nil {
		t.Fatal(err)
	}
	h := &realHost{
		site:   s,
		ports:  &vm.VsctlPorts{Runner: vm.ExecRunner{}, DB: s.OVSDBEndpoint(), Bridge: "br-int", Owner: "site1"},
		dir:    t.TempDir(),
		prefix: fmt.Sprintf("mnt%d-", os.Getpid()%100000),
	}
	t.Cleanup(func() {
		// Whatever a failed test left: namespaces with our prefix.
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], h.prefix) {
				_ = exec.Command("ip", "netns", "del", f[0]).Run()
			}
		}
	})
	return h
}

func (h *realHost) backend(t *testing.T, ready vm.ReadyFunc) *netns.Backend {
	t.Helper()
	b, err := netns.New(netns.Config{StateDir: h.dir, Ports: h.ports, SwitchNetns: h.site.NS, Prefix: h.prefix,
		Ready: ready, ReadyTimeout: 30 * time.Second, StopGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// agentArgs is a stand-in agent: it says "ready" on its output and stays.
var agentArgs = []string{"/bin/sh", "-c", "echo agent-ready $MUSUBI_NODE; exec sleep 3600"}

// logReady waits for the stand-in agent's line in its log.
func logReady(ctx context.Context, st vm.NodeState) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(st.Log); err == nil && bytes.Contains(b, []byte("agent-ready "+st.Node)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// leftovers lists what nodes left: namespaces with the prefix, musubi
// ports on br-int, veth ends in the site namespace, and live agents.
func (h *realHost) leftovers(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var left []string
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], h.prefix) {
			left = append(left, "netns "+f[0])
		}
	}
	ports, err := h.ports.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		left = append(left, "port "+p.Name)
	}
	links, err := exec.Command("ip", "-n", h.site.NS, "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(links), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], netns.PortPrefix) {
			left = append(left, "link "+strings.TrimSuffix(f[1], ":"))
		}
	}
	sort.Strings(left)
	return left
}

func TestContractRealHost(t *testing.T) {
	h := newRealHost(t)
	vmtest.Run(t, vmtest.Harness{
		New: func(t *testing.T, ready vm.ReadyFunc) vm.Backend {
			if ready == nil {
				ready = logReady
			} else {
				inner := ready
				ready = func(ctx context.Context, st vm.NodeState) error {
					if err := logReady(ctx, st); err != nil {
						return err
					}
					return inner(ctx, st)
				}
			}
			return h.backend(t, ready)
		},
		Spec: func(t *testing.T, sp *vm.NodeSpec) { sp.Agent.Args = agentArgs },
		Crash: func(t *testing.T, st vm.NodeState) {
			// The test's own node: kill its agent by PID and wait for it.
			if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if !vm.WaitGone(context.Background(), vm.ExecRunner{}, vm.Proc{PID: st.PID}, 5*time.Second) {
				t.Fatalf("pid %d survived SIGKILL", st.PID)
			}
		},
		Leftovers: h.leftovers,
		Timeout:   time.Minute,
	})
}

func ping(ctx context.Context, ns string, dst netip.Addr) error {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "ping", "-c", "2", "-i", "0.2", "-W", "1", dst.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", dst, ns, err, out)
	}
	return nil
}

// Two nodes of a VC reach each other over br-int; a node of another VC
// with an address in the same subnet does not; after Remove nothing is
// left. Also measures how long 8 nodes take to be ready.
func TestNodesOnVLAN(t *testing.T) {
	h := newRealHost(t)
	b := h.backend(t, logReady)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mk := func(vc string, i int, vlan uint16) vm.NodeSpec {
		sp := vmtest.NewSpec(vc, i)
		sp.VLAN = vlan
		sp.Agent.Args = agentArgs
		return sp
	}
	a, c, other := mk("vca", 0, 100), mk("vca", 1, 100), mk("vcb", 2, 200)
	var names []string
	for _, sp := range []vm.NodeSpec{a, c, other} {
		if _, err := b.Ensure(ctx, sp); err != nil {
			t.Fatalf("Ensure %s: %v", sp.Name(), err)
		}
		names = append(names, sp.Name())
	}
	nsA, nsC := b.NetnsName(a.VC, a.Node), b.NetnsName(c.VC, c.Node)
	if err := ping(ctx, nsA, c.Addr.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := ping(ctx, nsC, a.Addr.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := ping(ctx, nsA, other.Addr.Addr()); err == nil {
		t.Fatalf("node of VLAN 100 reached the node of VLAN 200")
	}
	st, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 3 {
		t.Fatalf("List = %+v", st)
	}
	for _, n := range names {
		if err := b.Remove(ctx, n); err != nil {
			t.Fatalf("Remove %s: %v", n, err)
		}
	}
	if left := h.leftovers(t); len(left) > 0 {
		t.Fatalf("left after Remove: %q", left)
	}

	// 8 nodes at once, from the first Ensure to the last ready.
	const n = 8
	specs := make([]vm.NodeSpec, n)
	for i := range specs {
		specs[i] = mk("vc8", i, 300)
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Ensure(ctx, specs[i])
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	for i, err := range errs {
		if err != nil {
			t.Errorf("Ensure %s: %v", specs[i].Name(), err)
		}
	}
	t.Logf("FIGURE netns: %d nodes ready in %v (concurrent Ensure, agent stand-in)", n, took.Round(time.Millisecond))
	if err := ping(ctx, b.NetnsName("vc8", "n0"), specs[n-1].Addr.Addr()); err != nil {
		t.Error(err)
	}
	t1 := time.Now()
	for i := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.Remove(ctx, specs[i].Name())
		}()
	}
	wg.Wait()
	t.Logf("FIGURE netns: %d nodes removed in %v", n, time.Since(t1).Round(time.Millisecond))
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if left := h.leftovers(t); len(left) > 0 {
		t.Fatalf("left after Remove: %q", left)
	}
}
