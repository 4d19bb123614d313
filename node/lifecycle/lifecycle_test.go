package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/lifecycle"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/fakevm"
	"github.com/musubi-fabric/musubi/node/provision/vm/netns"
	"github.com/musubi-fabric/musubi/node/provision/vm/vmtest"
	"github.com/musubi-fabric/musubi/node/reserve"
	"github.com/musubi-fabric/musubi/overlay"
)

// checkUp verifies site s's share of rec once it is ready: its nodes run
// with their volumes (secrets stored 0600 and matching the targets'),
// attachments and node records; nothing of the other sites' shares.
func (e *env) checkUp(rec reserve.Record, name string) {
	e.t.Helper()
	s := e.sites[name]
	ctx := context.Background()
	want := nodesAt(rec, name)
	if got := s.vms.Running(); !slices.Equal(got, want) {
		e.t.Errorf("%s runs %v, want %v", name, got, want)
	}
	for _, n := range want {
		vc, node, _ := strings.Cut(n, "/")
		secret := s.vols.Secret(n)
		if secret == "" {
			e.t.Errorf("%s: volume %s has no target", name, n)
		}
		f := filepath.Join(s.stateDir, "secrets", vc, node+".chap")
		fi, err := os.Stat(f)
		if err != nil {
			e.t.Errorf("%s: secret file of %s: %v", name, n, err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			e.t.Errorf("secret file %s has mode %v", f, fi.Mode().Perm())
		}
		if b, _ := os.ReadFile(f); strings.TrimSpace(string(b)) != secret {
			e.t.Errorf("secret file of %s does not hold the target's secret", n)
		}
		nr, found, err := lifecycle.ReadNode(ctx, e.admin, vc, node)
		if err != nil || !found {
			e.t.Fatalf("node record %s: found %v, %v", n, found, err)
		}
		if nr.State != lifecycle.NodeReady || nr.Site != name || nr.Host != s.host || nr.VLAN != uint16(rec.Placement.VLAN) ||
			nr.MAC.IsZero() || !nr.IP.IsValid() || nr.Port == "" || nr.ReadyAt.IsZero() {
			e.t.Errorf("node record %s: %+v", n, nr)
		}
		data, _, _ := e.admin.Get(ctx, coord.VCNodePath(vc, node))
		if strings.Contains(string(data), secret) {
			e.t.Errorf("node record %s holds the CHAP secret", n)
		}
	}
	ats, _ := s.att.List(ctx)
	if len(ats) != len(want) {
		e.t.Errorf("%s: %d attachments, want %d", name, len(ats), len(want))
	}
}

// A VC over two sites: nothing before its window; at the start each site
// builds its own share (and only it) and reports it ready; at the end
// both tear down, the last one purges the reservation, and nothing is
// left: nodes, volumes, attachments, secrets, records, bookings.
func TestStartAndEnd(t *testing.T) {
	e := newEnv(t, "s1", "s2")
	rec := e.reserve("vc1", 3, 10*time.Second, 60*time.Second)
	e.start("s1")
	e.start("s2")
	// Before the window: the reconcilers have read it and wait.
	eventually(t, 5*time.Second, "timers armed", func() (bool, string) {
		e.clock.mu.Lock()
		n := len(e.clock.waiters)
		e.clock.mu.Unlock()
		return n >= 2, fmt.Sprintf("%d timers", n)
	})
	if got := e.sites["s1"].vms.Running(); len(got) > 0 {
		t.Fatalf("nodes before the window: %v", got)
	}
	e.clock.Set(t0.Add(10 * time.Second))
	for _, s := range []string{"s1", "s2"} {
		st := e.waitState("vc1", s, lifecycle.StateReady)
		if st.Nodes != len(nodesAt(rec, s)) || st.NodesReady != st.Nodes || st.ReadyAt.IsZero() || st.RequestID != rec.RequestID {
			t.Errorf("status at %s: %+v", s, st)
		}
		e.checkUp(rec, s)
	}
	// The addresses follow the placement index, the same at every site.
	ips := map[string]bool{}
	for _, n := range rec.Placement.Nodes {
		nr, _, _ := lifecycle.ReadNode(context.Background(), e.admin, "vc1", n.Name)
		if ips[nr.IP.String()] {
			t.Errorf("address %s used twice", nr.IP)
		}
		ips[nr.IP.String()] = true
	}
	e.clock.Set(t0.Add(60 * time.Second))
	e.waitPurged("vc1")
	e.noLeftovers()
}

// A cancel while nodes are being built stops the build, tears down what
// was built and purges the reservation.
func TestCancelMidProvisioning(t *testing.T) {
	e := newEnv(t, "s1")
	s := e.sites["s1"]
	entered := make(chan string, 8)
	s.ready = func(ctx context.Context, st vm.NodeState) error {
		entered <- st.Name
		<-ctx.Done() // never ready: the node's agent hangs
		return ctx.Err()
	}
	e.reserve("vc1", 2, time.Second, time.Hour)
	e.start("s1")
	e.clock.Set(t0.Add(time.Second))
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no node was started")
	}
	st := e.waitState("vc1", "s1", lifecycle.StateProvisioning)
	if st.NodesReady != 0 {
		t.Errorf("status %+v", st)
	}
	if _, err := e.res.Cancel(context.Background(), "vc1"); err != nil {
		t.Fatal(err)
	}
	e.waitPurged("vc1")
	e.noLeftovers()
}

// An early release ends the share at once.
func TestEarlyRelease(t *testing.T) {
	e := newEnv(t, "s1")
	e.reserve("vc1", 2, time.Second, time.Hour)
	e.start("s1")
	e.clock.Set(t0.Add(time.Second))
	e.waitState("vc1", "s1", lifecycle.StateReady)
	e.clock.Advance(time.Second)
	if _, err := e.res.Release(context.Background(), "vc1", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitPurged("vc1")
	e.noLeftovers()
}

// A failed build is reported and retried with a backoff; the status says
// "failed" after FailAfter attempts and "ready" once it works.
func TestRetryAfterFailure(t *testing.T) {
	e := newEnv(t, "s1")
	s := e.sites["s1"]
	e.reserve("vc1", 1, time.Second, time.Hour)
	var fails atomic.Int64
	fails.Store(3)
	s.wrap = func(cfg lifecycle.Config) lifecycle.Config {
		cfg.Attacher = failingAttacher{Attacher: cfg.Attacher, left: &fails}
		return cfg
	}
	e.start("s1")
	e.clock.Set(t0.Add(time.Second))
	for i := 1; i <= 3; i++ {
		eventually(t, 5*time.Second, "failure recorded", func() (bool, string) {
			st, _ := e.status("vc1", "s1")
			return st.Failures == i && strings.Contains(st.Message, "boom"), fmt.Sprintf("%+v", st)
		})
		st, _ := e.status("vc1", "s1")
		if want := map[bool]string{true: lifecycle.StateFailed, false: lifecycle.StateProvisioning}[i >= 3]; st.State != want {
			t.Errorf("after %d failures: state %q, want %q", i, st.State, want)
		}
		if i < 3 {
			e.clock.Advance(8 * time.Second) // RetryMax
		}
	}
	e.clock.Advance(8 * time.Second)
	st := e.waitState("vc1", "s1", lifecycle.StateReady)
	if st.Failures != 0 || st.Message != "" {
		t.Errorf("ready status %+v", st)
	}
}

type failingAttacher struct {
	lifecycle.Attacher
	left *atomic.Int64
}

func (a failingAttacher) Ensure(ctx context.Context, spec lifecycle.AttachSpec) (lifecycle.Attachment, error) {
	if a.left.Add(-1) >= 0 {
		return lifecycle.Attachment{}, errors.New("boom")
	}
	return a.Attacher.Ensure(ctx, spec)
}

// A node that crashes while its VC is ready is started again at the next
// resync.
func TestResyncRestartsCrashedNode(t *testing.T) {
	e := newEnv(t, "s1")
	rec := e.reserve("vc1", 2, time.Second, time.Hour)
	e.start("s1")
	e.clock.Set(t0.Add(time.Second))
	e.waitState("vc1", "s1", lifecycle.StateReady)
	s := e.sites["s1"]
	victim := nodesAt(rec, "s1")[0]
	s.vms.Crash(victim)
	e.clock.Advance(time.Minute)
	eventually(t, 5*time.Second, "node restarted", func() (bool, string) {
		got := s.vms.Running()
		return contains(got, victim), fmt.Sprint(got)
	})
}

// Leftovers of a VC nobody reserves (a peer that died before a purge,
// whose reservation another site purged) are removed: nodes, volumes,
// attachments, ports, secrets.
func TestLeftoversRemoved(t *testing.T) {
	e := newEnv(t, "s1")
	s := e.sites["s1"]
	ctx := context.Background()
	ports := vmtest.NewMemPorts()
	s.ports = ports
	b := fakevm.New(s.vms, fakevm.Config{})
	spec := vm.NodeSpec{VC: "ghost", Node: "node0", VLAN: 7, MAC: overlay.MAC{2, 0, 0, 0, 0, 9},
		Addr: netipPrefix("10.64.0.10/16")}
	if _, err := b.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := s.vols.Ensure(ctx, provision.VolumeSpec{VC: "ghost", Node: "node1", Image: e.image,
		InitiatorName: "iqn.2026-11.org.musubi.node:x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.att.Ensure(ctx, lifecycle.AttachSpec{VC: "ghost", Node: "node1", Portal: "127.0.0.1:3260",
		Target: "iqn.2026-11.org.musubi:ghost:node1", LUN: 1, Initiator: "iqn.2026-11.org.musubi.node:x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ports.Ensure(ctx, provision.PortSpec{Name: "mvghost", VC: "ghost", VLAN: 7, MAC: overlay.MAC{2, 0, 0, 0, 0, 8}}); err != nil {
		t.Fatal(err)
	}
	if err := (lifecycle.Secrets{Dir: filepath.Join(s.stateDir, "secrets")}).Save("ghost", "node2", "abcdefghijkl1234"); err != nil {
		t.Fatal(err)
	}
	p := e.start("s1")
	eventually(t, 5*time.Second, "leftovers removed", func() (bool, string) {
		left := s.leftovers(t)
		return len(left) == 0, fmt.Sprint(left)
	})
	if st := p.r.Stats(); st.Teardowns < 1 || st.Builds != 0 {
		t.Errorf("stats %+v", st)
	}
}

// The peer dies before any one step of the build (every driver call and
// store write is a step), and a new one converges: the VC comes up; at the
// end everything goes.
func TestCrashDuringBuild(t *testing.T) {
	steps := countSteps(t, false)
	t.Logf("a build takes %d steps", steps)
	for at := int64(1); at <= steps; at++ {
		t.Run(fmt.Sprintf("step%02d", at), func(t *testing.T) { crashAt(t, at, false) })
	}
}

// The same during the teardown.
func TestCrashDuringTeardown(t *testing.T) {
	steps := countSteps(t, true)
	t.Logf("a teardown takes %d steps", steps)
	for at := int64(1); at <= steps; at++ {
		t.Run(fmt.Sprintf("step%02d", at), func(t *testing.T) { crashAt(t, at, true) })
	}
}

// countSteps runs the scenario without a crash and counts the steps of
// its build (or, with teardown, of its teardown).
func countSteps(t *testing.T, teardown bool) int64 {
	e := newEnv(t, "s1")
	c := &crasher{}
	c.at.Store(-1)
	e.sites["s1"].wrap = wrapCrash(c)
	e.reserve("vc1", 2, time.Second, time.Hour)
	e.start("s1")
	e.clock.Set(t0.Add(time.Second))
	e.waitState("vc1", "s1", lifecycle.StateReady)
	built := c.n.Load()
	if !teardown {
		return built
	}
	e.clock.Set(t0.Add(time.Hour))
	e.waitPurged("vc1")
	return c.n.Load() - built
}

func crashAt(t *testing.T, at int64, teardown bool) {
	e := newEnv(t, "s1")
	s := e.sites["s1"]
	c := &crasher{}
	c.at.Store(at)
	if teardown {
		c.at.Store(-1)
	}
	s.wrap = wrapCrash(c)
	s.onStart = func(cancel context.CancelFunc) { c.cancel.Store(&cancel) }
	e.reserve("vc1", 2, time.Second, time.Hour)
	p := e.start("s1")
	e.clock.Set(t0.Add(time.Second))
	if teardown {
		e.waitState("vc1", "s1", lifecycle.StateReady)
		c.n.Store(0)
		c.at.Store(at)
		e.clock.Set(t0.Add(time.Hour))
	}
	p.waitExit(t)
	if !c.fired.Load() {
		t.Fatal("the crash was not injected")
	}
	s.wrap, s.onStart = nil, nil
	e.start("s1")
	if !teardown {
		e.waitState("vc1", "s1", lifecycle.StateReady)
		e.checkUp(mustGet(t, e, "vc1"), "s1")
		e.clock.Set(t0.Add(time.Hour))
	}
	e.waitPurged("vc1")
	e.noLeftovers()
}

// With the netns backend (on a simulated host), the node record is
// written before the node's port exists and deleted before it goes, as
// the overlay needs; nothing is left on the simulated host afterwards.
func TestRecordBeforePort(t *testing.T) {
	e := newEnv(t, "s1")
	s := e.sites["s1"]
	host := vmtest.NewFakeHost()
	host.AddNetns("sw")
	mem := vmtest.NewMemPorts()
	checked := &orderPorts{MemPorts: mem, st: e.admin, t: t}
	guard := lifecycle.NewPortGuard(checked)
	b, err := netns.New(netns.Config{StateDir: t.TempDir(), Runner: host, Ports: guard, SwitchNetns: "sw", StopGrace: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.backend = b
	s.ports = mem
	s.wrap = func(cfg lifecycle.Config) lifecycle.Config {
		cfg.PortGuard = guard
		return cfg
	}
	rec := e.reserve("vc1", 2, time.Second, time.Hour)
	e.start("s1")
	e.clock.Set(t0.Add(time.Second))
	e.waitState("vc1", "s1", lifecycle.StateReady)
	if n := len(mem.Names()); n != len(rec.Placement.Nodes) {
		t.Errorf("%d ports, want %d", n, len(rec.Placement.Nodes))
	}
	// A node whose agent died is rebuilt at the next resync: the backend
	// clears it first, but its port stays while its record exists.
	nodes, err := b.List(context.Background())
	if err != nil || len(nodes) != 2 {
		t.Fatalf("nodes %v, %v", nodes, err)
	}
	host.Kill(nodes[0].PID)
	e.clock.Advance(time.Minute)
	eventually(t, 5*time.Second, "node rebuilt", func() (bool, string) {
		ns, _ := b.List(context.Background())
		for _, n := range ns {
			if n.Name == nodes[0].Name && n.Healthy() && n.PID != nodes[0].PID {
				return true, ""
			}
		}
		return false, fmt.Sprint(ns)
	})
	if n := len(mem.Names()); n != len(rec.Placement.Nodes) {
		t.Errorf("%d ports after the rebuild, want %d", n, len(rec.Placement.Nodes))
	}
	e.clock.Set(t0.Add(time.Hour))
	e.waitPurged("vc1")
	if checked.ensures.Load() == 0 || checked.removes.Load() == 0 {
		t.Errorf("port calls: %d ensures, %d removes", checked.ensures.Load(), checked.removes.Load())
	}
	var left []string
	for _, l := range host.Leftovers() {
		if l != "netns sw" {
			left = append(left, l)
		}
	}
	if len(left) > 0 || len(mem.Names()) > 0 {
		t.Errorf("left on the host: %v, ports %v", left, mem.Names())
	}
}

// orderPorts checks the node record's presence at every port change.
type orderPorts struct {
	*vmtest.MemPorts
	st               coord.Store
	t                *testing.T
	ensures, removes atomic.Int64
}

func (o *orderPorts) record(vc, port string) bool {
	ctx := context.Background()
	names, _, _ := o.st.Children(ctx, coord.VCNodesDir(vc))
	for _, n := range names {
		if nr, ok, _ := lifecycle.ReadNode(ctx, o.st, vc, n); ok && nr.Port == port {
			return true
		}
	}
	return false
}

func (o *orderPorts) Ensure(ctx context.Context, spec provision.PortSpec) (provision.Port, error) {
	o.ensures.Add(1)
	if !o.record(spec.VC, spec.Name) {
		o.t.Errorf("port %s ensured before its node record exists", spec.Name)
	}
	return o.MemPorts.Ensure(ctx, spec)
}

func (o *orderPorts) Remove(ctx context.Context, name string) error {
	o.removes.Add(1)
	ps, _ := o.MemPorts.List(ctx)
	for _, p := range ps {
		if p.Name == name && o.record(p.VC, name) {
			o.t.Errorf("port %s removed while its node record exists", name)
		}
	}
	return o.MemPorts.Remove(ctx, name)
}

// A backend that opens disks itself (QEMU) gets the volume as its root
// disk with the CHAP secret, boots the image's kernel, and no attachment.
func TestQEMUGetsISCSIDisk(t *testing.T) {
	e := newEnv(t, "s1")
	s := e.sites["s1"]
	rec := &recordingBackend{Backend: fakevm.New(s.vms, fakevm.Config{})}
	s.backend = rec
	kernel := filepath.Join(t.TempDir(), "vmlinuz")
	s.wrap = func(cfg lifecycle.Config) lifecycle.Config {
		cfg.Images = func(ctx context.Context, name string) (lifecycle.Image, error) {
			return lifecycle.Image{RootDisk: e.image, Kernel: kernel, Initrd: kernel + ".initrd"}, nil
		}
		return cfg
	}
	e.reserve("vc1", 1, time.Second, time.Hour)
	e.start("s1")
	e.clock.Set(t0.Add(time.Second))
	e.waitState("vc1", "s1", lifecycle.StateReady)
	specs := rec.specs()
	if len(specs) == 0 {
		t.Fatal("no node started")
	}
	sp := specs[0]
	if sp.Disk == nil || sp.Disk.ISCSI == nil {
		t.Fatalf("spec has no iSCSI disk: %+v", sp)
	}
	d := sp.Disk.ISCSI
	if d.Secret == "" || d.Secret != s.vols.Secret("vc1/"+sp.Node) || d.User == "" || d.Target == "" || d.LUN != 1 ||
		!provision.ValidIQN(d.Initiator) || d.Portal != "127.0.0.1:3260" {
		t.Errorf("iSCSI disk %+v", *d)
	}
	if sp.Boot.Kernel != kernel || sp.MemoryMiB != 128 {
		t.Errorf("boot %+v, memory %d", sp.Boot, sp.MemoryMiB)
	}
	if ats, _ := s.att.List(context.Background()); len(ats) != 0 {
		t.Errorf("attachments for a QEMU node: %v", ats)
	}
}

// recordingBackend claims to be QEMU and records the specs it gets.
type recordingBackend struct {
	vm.Backend
	mu   sync.Mutex
	list []vm.NodeSpec
}

func (b *recordingBackend) Kind() string { return "qemu" }

func (b *recordingBackend) Ensure(ctx context.Context, spec vm.NodeSpec) (vm.NodeState, error) {
	b.mu.Lock()
	b.list = append(b.list, spec)
	b.mu.Unlock()
	return b.Backend.Ensure(ctx, spec)
}

func (b *recordingBackend) specs() []vm.NodeSpec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.list)
}

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func mustGet(t *testing.T, e *env, vc string) reserve.Record {
	t.Helper()
	rec, err := e.res.Get(context.Background(), vc)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}
