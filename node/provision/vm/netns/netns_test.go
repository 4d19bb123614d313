package netns_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/netns"
	"github.com/musubi-fabric/musubi/node/provision/vm/vmtest"
)

const switchNS = "site1"

func fakeHarness(t *testing.T) (vmtest.Harness, *vmtest.FakeHost, *vmtest.MemPorts) {
	host := vmtest.NewFakeHost()
	host.AddNetns(switchNS)
	ports := vmtest.NewMemPorts()
	dir := t.TempDir()
	h := vmtest.Harness{
		New: func(t *testing.T, ready vm.ReadyFunc) vm.Backend {
			b, err := netns.New(netns.Config{StateDir: dir, Runner: host, Ports: ports, SwitchNetns: switchNS,
				Ready: ready, StopGrace: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		Spec:  func(t *testing.T, sp *vm.NodeSpec) { sp.Agent.Args = []string{"/usr/bin/musubi", "agent"} },
		Crash: func(t *testing.T, st vm.NodeState) { host.Kill(st.PID) },
		Leftovers: func(t *testing.T) []string {
			var left []string
			for _, l := range host.Leftovers() {
				if l != "netns "+switchNS {
					left = append(left, l)
				}
			}
			for _, p := range ports.Names() {
				left = append(left, "port "+p)
			}
			return left
		},
	}
	return h, host, ports
}

func TestContractOnFakeHost(t *testing.T) {
	h, _, _ := fakeHarness(t)
	vmtest.Run(t, h)
}

// The commands one Ensure runs, in order: the recording pins the
// namespace, veth and offload setup.
func TestEnsureCommands(t *testing.T) {
	h, host, ports := fakeHarness(t)
	b := h.New(t, nil)
	sp := vmtest.NewSpec("vc1", 0)
	sp.Gateway = sp.Addr.Addr().Next()
	sp.Agent = vm.Agent{Args: []string{"/usr/bin/musubi", "agent"}, Env: map[string]string{"MUSUBI_ZK": "10.0.0.1:2181"}}
	ctx := context.Background()
	st, err := b.Ensure(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	port := vm.PortName("mv", "vc1/n0")
	ns := "musubi-vc1+n0"
	if st.Netns != ns || st.Port != port {
		t.Fatalf("state %+v", st)
	}
	want := []string{
		"ip netns list",
		"ip netns pids " + ns, // none: the teardown of leftovers finds no namespace
		"ip -n site1 link del " + port,
		"ip netns add " + ns,
		"ip link add " + port + " netns site1 type veth peer name eth0 netns " + ns,
		"[" + ns + "] sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
		"[" + ns + "] sysctl -qw net.ipv6.conf.default.disable_ipv6=1",
		"[" + ns + "] sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1",
		"[" + ns + "] ip link set lo up",
		"[" + ns + "] ip link set eth0 address 02:6d:76:00:00:01 mtu 1400",
		"[" + ns + "] ip addr add 10.77.0.11/24 dev eth0",
		"[" + ns + "] ethtool -K eth0 tx off",
		"[" + ns + "] ip link set eth0 up",
		"[" + ns + "] ip route add default via 10.77.0.12",
		"[site1] sysctl -qw net.ipv6.conf." + port + ".disable_ipv6=1",
		"ip -n site1 link set " + port + " mtu 1400 up",
		"start [" + ns + "] /usr/bin/musubi agent",
	}
	got := host.Commands()
	// The pids probe only runs when the namespace exists.
	want = slices.DeleteFunc(want, func(s string) bool { return strings.HasPrefix(s, "ip netns pids") })
	if !slices.Equal(got, want) {
		t.Fatalf("commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	procs := host.Procs()
	if len(procs) != 1 {
		t.Fatalf("procs %+v", procs)
	}
	env := procs[0].Cmd.Env
	for _, kv := range []string{"MUSUBI_VC=vc1", "MUSUBI_NODE=n0", "MUSUBI_ZK=10.0.0.1:2181",
		// Users of the node open it: in the 0711 public directory.
		"MUSUBI_AGENT_SOCKET=" + filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(procs[0].Cmd.Log))), "pub", "vc1+n0-agent.sock"),
		"MUSUBI_SPOOL=" + filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(procs[0].Cmd.Log))), "pub", "vc1+n0-spool")} {
		if !slices.Contains(env, kv) {
			t.Errorf("agent env %q lacks %s", env, kv)
		}
	}
	pub := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(procs[0].Cmd.Log))), "pub")
	for _, p := range []string{filepath.Dir(pub), pub} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o711 {
			t.Errorf("%s: %v, %v; want mode 0711 (traversable, not listable)", p, fi, err)
		}
	}
	if fi, err := os.Stat(filepath.Dir(procs[0].Cmd.Log)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("node directory: %v, %v; want 0700", fi, err)
	}
	if !strings.HasSuffix(procs[0].Cmd.Log, "/vc1/n0/agent.log") {
		t.Errorf("agent log %q", procs[0].Cmd.Log)
	}
	pl, _ := ports.List(ctx)
	if len(pl) != 1 || pl[0].Name != port || pl[0].VLAN != 100 || pl[0].VC != "vc1" || pl[0].MAC != sp.MAC || pl[0].IP != sp.Addr.Addr() {
		t.Fatalf("ports %+v", pl)
	}

	host.ResetCommands()
	if err := b.Remove(ctx, "vc1/n0"); err != nil {
		t.Fatal(err)
	}
	got = host.Commands()
	wantRemove := []string{
		"kill -15 " + strconv.Itoa(st.PID),
		"ip netns list",
		"ip netns pids " + ns,
		"ip -n site1 link del " + port,
		"ip netns del " + ns,
	}
	if !slices.Equal(got, wantRemove) {
		t.Fatalf("Remove commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRemove, "\n"))
	}
	if left := host.Leftovers(); !slices.Equal(left, []string{"netns site1"}) {
		t.Fatalf("leftovers %q", left)
	}
}

// A job the agent started (another process in the namespace) goes too.
func TestRemoveKillsEverythingInTheNamespace(t *testing.T) {
	h, host, _ := fakeHarness(t)
	b := h.New(t, nil)
	sp := vmtest.NewSpec("vc1", 0)
	h.Spec(t, &sp)
	ctx := context.Background()
	st, err := b.Ensure(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	job, err := host.Start(ctx, vm.Cmd{Netns: st.Netns, Name: "sleep", Args: []string{"1000"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatal(err)
	}
	if host.Alive(job) {
		t.Fatal("job process survived Remove")
	}
	if left := host.Leftovers(); !slices.Equal(left, []string{"netns site1"}) {
		t.Fatalf("leftovers %q", left)
	}
}

func TestStubbornAgentIsKilled(t *testing.T) {
	h, host, _ := fakeHarness(t)
	host.OnStart = func(c vm.Cmd, p *vmtest.FakeProc) { p.IgnoreTERM = true }
	b := h.New(t, nil)
	sp := vmtest.NewSpec("vc1", 0)
	h.Spec(t, &sp)
	ctx := context.Background()
	st, err := b.Ensure(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatal(err)
	}
	if host.Alive(vm.Proc{PID: st.PID}) {
		t.Fatal("agent ignoring SIGTERM survived Remove")
	}
	if !slices.Contains(host.Commands(), "kill -9 "+strconv.Itoa(st.PID)) {
		t.Fatalf("no SIGKILL in %q", host.Commands())
	}
}

// A build interrupted between the namespace and the agent (the peer died)
// is reported by List and completed by the next Ensure.
func TestInterruptedBuildIsRepaired(t *testing.T) {
	h, host, _ := fakeHarness(t)
	b := h.New(t, nil)
	sp := vmtest.NewSpec("vc1", 0)
	h.Spec(t, &sp)
	ctx := context.Background()
	host.FailOn("ethtool", 1, "ethtool: simulated crash")
	if _, err := b.Ensure(ctx, sp); !errors.Is(err, vm.ErrCommand) {
		t.Fatalf("Ensure with a failing step: %v", err)
	}
	l, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 1 || l[0].Running || len(l[0].Problems) == 0 {
		t.Fatalf("List after interrupted build: %+v", l)
	}
	st, err := b.Ensure(ctx, sp)
	if err != nil {
		t.Fatalf("Ensure after interruption: %v", err)
	}
	if !st.Running {
		t.Fatalf("%+v", st)
	}
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatal(err)
	}
	if left := host.Leftovers(); !slices.Equal(left, []string{"netns site1"}) {
		t.Fatalf("leftovers %q", left)
	}
}

// A namespace with the prefix but no state (the peer died right after
// creating it) is listed and removable.
func TestOrphanNamespace(t *testing.T) {
	h, host, _ := fakeHarness(t)
	b := h.New(t, nil)
	host.AddNetns("musubi-vc9+n3")
	host.AddNetns("other-ns")
	ctx := context.Background()
	l, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 1 || l[0].Name != "vc9/n3" || l[0].Running || len(l[0].Problems) == 0 {
		t.Fatalf("List = %+v", l)
	}
	if err := b.Remove(ctx, "vc9/n3"); err != nil {
		t.Fatal(err)
	}
	if left := host.Leftovers(); !slices.Equal(left, []string{"netns other-ns", "netns site1"}) {
		t.Fatalf("leftovers %q", left)
	}
}

func TestForeignPortIsRefused(t *testing.T) {
	h, _, ports := fakeHarness(t)
	b := h.New(t, nil)
	sp := vmtest.NewSpec("vc1", 0)
	h.Spec(t, &sp)
	ports.Foreign[vm.PortName("mv", sp.Name())] = true
	if _, err := b.Ensure(context.Background(), sp); !errors.Is(err, provision.ErrForeign) {
		t.Fatalf("Ensure over a foreign port: %v", err)
	}
	delete(ports.Foreign, vm.PortName("mv", sp.Name()))
	if err := b.Remove(context.Background(), sp.Name()); err != nil {
		t.Fatal(err)
	}
}

func TestNoAgentCommand(t *testing.T) {
	h, _, _ := fakeHarness(t)
	b := h.New(t, nil)
	sp := vmtest.NewSpec("vc1", 0)
	if _, err := b.Ensure(context.Background(), sp); !errors.Is(err, vm.ErrInvalid) {
		t.Fatalf("Ensure without agent: %v", err)
	}
}
