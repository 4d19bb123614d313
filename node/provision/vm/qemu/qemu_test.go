package qemu_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/node/image"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/qemu"
	"github.com/musubi-fabric/musubi/node/provision/vm/qmp/qmptest"
	"github.com/musubi-fabric/musubi/node/provision/vm/vmtest"
)

const switchNS = "site1"

// fakeGuests plays QEMU on a FakeHost: every started QEMU gets a fake QMP
// server on its socket and, unless told otherwise, prints the image's
// ready marker on its serial console.
type fakeGuests struct {
	t    *testing.T
	host *vmtest.FakeHost

	mu      sync.Mutex
	servers map[string]*qmptest.Server // by socket path
	byPID   map[int]*qmptest.Server
	silent  bool     // no ready marker
	secrets []string // secret file contents seen at start
	args    [][]string
}

func newFakeGuests(t *testing.T, host *vmtest.FakeHost) *fakeGuests {
	g := &fakeGuests{t: t, host: host, servers: map[string]*qmptest.Server{}, byPID: map[int]*qmptest.Server{}}
	host.OnStart = g.start
	t.Cleanup(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, s := range g.servers {
			s.Close()
		}
	})
	return g
}

func argAfter(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func (g *fakeGuests) start(c vm.Cmd, p *vmtest.FakeProc) {
	if !strings.HasPrefix(c.Name, "qemu-system") {
		return
	}
	sock := strings.TrimPrefix(strings.Split(argAfter(c.Args, "-qmp"), ",")[0], "unix:")
	serial := strings.TrimPrefix(argAfter(c.Args, "-serial"), "file:")
	name := strings.TrimPrefix(argAfter(c.Args, "-name"), "musubi:")
	g.mu.Lock()
	defer g.mu.Unlock()
	g.args = append(g.args, c.Args)
	if obj := argAfter(c.Args, "-object"); obj != "" {
		file := obj[strings.Index(obj, "file=")+5:]
		b, err := os.ReadFile(file)
		if err != nil {
			g.t.Errorf("secret file at start: %v", err)
		}
		st, _ := os.Stat(file)
		if st != nil && st.Mode().Perm() != 0o600 {
			g.t.Errorf("secret file mode %v", st.Mode())
		}
		g.secrets = append(g.secrets, string(b))
	}
	if old := g.servers[sock]; old != nil {
		old.Close()
	}
	_ = os.Remove(sock)
	s, err := qmptest.Start(sock)
	if err != nil {
		g.t.Errorf("fake QMP: %v", err)
		return
	}
	pid := p.Proc.PID
	s.OnQuit = func() { g.host.Kill(pid) }
	s.OnPowerdown = func() { g.host.Kill(pid) }
	g.servers[sock] = s
	g.byPID[pid] = s
	if !g.silent {
		_ = os.WriteFile(serial, []byte("booting\n"+image.ReadyMarker+" "+name+" ip=x uptime=1.0\n"), 0o600)
	}
}

// crash ends a guest's process and its monitor.
func (g *fakeGuests) crash(pid int) {
	g.host.Kill(pid)
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.byPID[pid]; s != nil {
		s.Close()
	}
}

type env struct {
	h      vmtest.Harness
	host   *vmtest.FakeHost
	ports  *vmtest.MemPorts
	guests *fakeGuests
	boot   vm.Boot
}

func newEnv(t *testing.T) *env {
	host := vmtest.NewFakeHost()
	host.AddNetns(switchNS)
	ports := vmtest.NewMemPorts()
	dir := t.TempDir()
	img := t.TempDir()
	e := &env{host: host, ports: ports, guests: newFakeGuests(t, host),
		boot: vm.Boot{Kernel: filepath.Join(img, "vmlinuz"), Initrd: filepath.Join(img, "initrd.img")}}
	e.h = vmtest.Harness{
		New: func(t *testing.T, ready vm.ReadyFunc) vm.Backend {
			cfg := qemu.Config{StateDir: dir, Runner: host, Ports: ports, SwitchNetns: switchNS, Accel: qemu.AccelTCG,
				StopGrace: time.Second, ReadyTimeout: 5 * time.Second}
			if ready != nil {
				cfg.Ready = func(ctx context.Context, st vm.NodeState) error {
					if err := qemu.SerialReady(ctx, st); err != nil {
						return err
					}
					return ready(ctx, st)
				}
			}
			b, err := qemu.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		Spec:  func(t *testing.T, sp *vm.NodeSpec) { sp.Boot = e.boot },
		Crash: func(t *testing.T, st vm.NodeState) { e.guests.crash(st.PID) },
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
	return e
}

func TestContractOnFakeHost(t *testing.T) {
	vmtest.Run(t, newEnv(t).h)
}

func iscsiSpec(e *env) vm.NodeSpec {
	sp := vmtest.NewSpec("vc1", 0)
	sp.Boot = e.boot
	sp.Boot.Append = []string{"loglevel=4"}
	sp.Gateway = sp.Addr.Addr().Next()
	sp.Agent.Env = map[string]string{"MUSUBI_ZK": "10.0.0.1:2181,10.0.0.2:2181", "MUSUBI_SESSION_TIMEOUT": "10s"}
	sp.Disk = &vm.Disk{ISCSI: &vm.ISCSIDisk{Portal: "10.9.0.2:3260", Target: "iqn.2025-01.org.musubi:site1.vc1.n0", LUN: 1,
		Initiator: "iqn.2025-01.org.musubi:site1.host1", User: "vc1-n0", Secret: "S3cretS3cret42"}}
	return sp
}

// The QEMU command line: TCG, direct boot, iSCSI with the secret in a
// secret object, the tap with vnet_hdr off; the secret is in no command
// and its file is gone after the start.
func TestCommandLine(t *testing.T) {
	e := newEnv(t)
	b := e.h.New(t, nil)
	sp := iscsiSpec(e)
	ctx := context.Background()
	st, err := b.Ensure(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if st.Accel != "tcg" || st.Status != "running" || st.Netns != switchNS {
		t.Fatalf("state %+v", st)
	}
	tap := vm.PortName("mq", "vc1/n0")
	cmds := e.host.Commands()
	var start string
	for _, c := range cmds {
		if strings.Contains(c, "S3cretS3cret42") {
			t.Errorf("secret on a command line: %s", c)
		}
		if strings.HasPrefix(c, "start ") {
			start = c
		}
	}
	for _, want := range []string{
		"ip -n site1 tuntap add dev " + tap + " mode tap",
		"ip -n site1 link set " + tap + " mtu 1400 up",
	} {
		found := false
		for _, c := range cmds {
			found = found || c == want
		}
		if !found {
			t.Errorf("no %q in %q", want, cmds)
		}
	}
	args := e.guests.args[0]
	for _, want := range [][2]string{
		{"-accel", "tcg,tb-size=32"},
		{"-m", "128"},
		{"-kernel", e.boot.Kernel},
		{"-initrd", e.boot.Initrd},
		{"-append", "console=ttyS0 quiet no_timer_check panic=1 musubi.vc=vc1 musubi.node=n0 musubi.ip=10.77.0.11/24 musubi.mtu=1400 " +
			"musubi.gw=10.77.0.12 musubi.rootdev=/dev/vda musubi.session_timeout=10s musubi.zk=10.0.0.1:2181,10.0.0.2:2181 loglevel=4"},
		{"-blockdev", "driver=iscsi,node-name=root,transport=tcp,portal=10.9.0.2:3260,target=iqn.2025-01.org.musubi:site1.vc1.n0,lun=1," +
			"initiator-name=iqn.2025-01.org.musubi:site1.host1,cache.direct=on,user=vc1-n0,password-secret=chap0"},
		{"-device", "virtio-blk-pci,drive=root"},
		{"-netdev", "tap,id=net0,ifname=" + tap + ",script=no,downscript=no,vnet_hdr=off"},
	} {
		if got := argAfter(args, want[0]); got != want[1] && !strings.Contains(start, want[0]+" "+want[1]) {
			t.Errorf("%s = %q, want %q", want[0], got, want[1])
		}
	}
	if !strings.Contains(start, "-device virtio-net-pci,netdev=net0,mac=02:6d:76:00:00:01") || !strings.HasPrefix(start, "start [site1] qemu-system-x86_64 ") {
		t.Errorf("start command %s", start)
	}
	if len(e.guests.secrets) != 1 || e.guests.secrets[0] != "S3cretS3cret42" {
		t.Errorf("secret file held %q", e.guests.secrets)
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(st.Log), "*secret*")); len(matches) > 0 {
		t.Errorf("secret file left after the start: %v", matches)
	}
	if p, _ := e.ports.List(ctx); len(p) != 1 || p[0].Name != tap || p[0].VLAN != 100 {
		t.Errorf("ports %+v", p)
	}
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatal(err)
	}
	// The power button was enough.
	srv := e.guests.byPID[st.PID]
	if calls := srv.Calls(); !strings.Contains(strings.Join(calls, " "), "system_powerdown") || strings.Contains(strings.Join(calls, " "), "quit") {
		t.Errorf("QMP calls %v", calls)
	}
	if e.host.HasLink(switchNS, tap) {
		t.Error("tap left")
	}
}

// A guest that never powers off is quit over QMP; one whose monitor is
// gone is killed.
func TestRemoveEscalates(t *testing.T) {
	e := newEnv(t)
	b := e.h.New(t, nil)
	ctx := context.Background()
	sp := vmtest.NewSpec("vc1", 0)
	sp.Boot = e.boot
	st, err := b.Ensure(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	srv := e.guests.byPID[st.PID]
	srv.OnPowerdown = nil // the guest ignores the button
	t0 := time.Now()
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatal(err)
	}
	if calls := strings.Join(srv.Calls(), " "); !strings.Contains(calls, "system_powerdown") || !strings.Contains(calls, "quit") {
		t.Errorf("QMP calls %s", calls)
	}
	if d := time.Since(t0); d < time.Second {
		t.Errorf("Remove did not wait the grace period: %v", d)
	}

	st, err = b.Ensure(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	e.guests.byPID[st.PID].Close() // monitor gone, process alive
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatal(err)
	}
	if e.host.Alive(vm.Proc{PID: st.PID}) {
		t.Fatal("QEMU survived Remove")
	}
	if !strings.Contains(strings.Join(e.host.Commands(), "\n"), "kill -15 ") {
		t.Error("no SIGTERM")
	}
}

// QEMU exiting at start (an iSCSI login refused, say) fails Ensure with
// ErrExited and QEMU's own message.
func TestQEMUExitsAtStart(t *testing.T) {
	e := newEnv(t)
	b := e.h.New(t, nil)
	e.host.OnStart = func(c vm.Cmd, p *vmtest.FakeProc) {
		_ = os.WriteFile(c.Log, []byte("qemu-system-x86_64: -blockdev driver=iscsi: Failed to connect to LUN: iSCSI login failed: Authentication failure\n"), 0o600)
		p.Alive = false
	}
	sp := iscsiSpec(e)
	_, err := b.Ensure(context.Background(), sp)
	if !errors.Is(err, vm.ErrExited) || !strings.Contains(err.Error(), "Authentication failure") {
		t.Fatalf("Ensure: %v", err)
	}
	if strings.Contains(err.Error(), "S3cretS3cret42") {
		t.Fatal("secret in the error")
	}
	if err := b.Remove(context.Background(), sp.Name()); err != nil {
		t.Fatal(err)
	}
}

// A guest printing the failure marker fails readiness at once.
func TestGuestFailureMarker(t *testing.T) {
	e := newEnv(t)
	e.guests.silent = true
	b := e.h.New(t, nil)
	sp := vmtest.NewSpec("vc1", 0)
	sp.Boot = e.boot
	var serial string
	old := e.host.OnStart
	e.host.OnStart = func(c vm.Cmd, p *vmtest.FakeProc) {
		old(c, p)
		serial = strings.TrimPrefix(argAfter(c.Args, "-serial"), "file:")
		_ = os.WriteFile(serial, []byte(image.FailMarker+" no root file system on /dev/vda\n"), 0o600)
	}
	t0 := time.Now()
	_, err := b.Ensure(context.Background(), sp)
	if !errors.Is(err, vm.ErrNotReady) || !strings.Contains(err.Error(), "no root file system") {
		t.Fatalf("Ensure: %v", err)
	}
	if time.Since(t0) > 3*time.Second {
		t.Fatalf("failure took %v to show", time.Since(t0))
	}
	if err := b.Remove(context.Background(), sp.Name()); err != nil {
		t.Fatal(err)
	}
}

func TestValidation(t *testing.T) {
	e := newEnv(t)
	b := e.h.New(t, nil)
	for name, mut := range map[string]func(*vm.NodeSpec){
		"relative kernel": func(sp *vm.NodeSpec) { sp.Boot.Kernel = "vmlinuz" },
		"no initrd":       func(sp *vm.NodeSpec) { sp.Boot.Initrd = "" },
		"comma in disk":   func(sp *vm.NodeSpec) { sp.Disk = &vm.Disk{File: "/a,b"} },
		"too little RAM":  func(sp *vm.NodeSpec) { sp.MemoryMiB = 64 },
		"bad append":      func(sp *vm.NodeSpec) { sp.Boot.Append = []string{"a b"} },
	} {
		sp := vmtest.NewSpec("vc1", 0)
		sp.Boot = e.boot
		mut(&sp)
		if _, err := b.Ensure(context.Background(), sp); !errors.Is(err, vm.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := qemu.New(qemu.Config{StateDir: t.TempDir(), Ports: e.ports, Accel: "hvf"}); !errors.Is(err, vm.ErrInvalid) {
		t.Errorf("unknown accelerator: %v", err)
	}
}

// A guest with a control channel gets a second NIC that only forwards to
// the relay, the agent's credentials as an fw_cfg file (a path on the
// command line, never the content), and its control address.
func TestControlChannel(t *testing.T) {
	e := newEnv(t)
	b := e.h.New(t, nil)
	sp := iscsiSpec(e)
	sp.Control = &vm.Control{Pipe: []string{"/usr/bin/musubi", "relay-pipe"}, SecretFile: "/var/lib/p/vc1/n0.agent",
		Forwards: []vm.Forward{{Guest: netip.MustParseAddrPort("10.0.2.100:2181"), Socket: "/var/lib/p/zk/zk-1.sock"}}}
	if _, err := b.Ensure(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	args := e.guests.args[0]
	joined := strings.Join(args, " ")
	for _, want := range []string{
		"-netdev user,id=ctl0,restrict=on,ipv6=off,net=10.0.2.0/24,host=10.0.2.2,guestfwd=tcp:10.0.2.100:2181-cmd:/usr/bin/musubi relay-pipe /var/lib/p/zk/zk-1.sock",
		"-device virtio-net-pci,netdev=ctl0,mac=52:54:00:00:c7:01",
		"-fw_cfg name=" + image.ControlSecretName + ",file=/var/lib/p/vc1/n0.agent",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("no %q in %s", want, joined)
		}
	}
	if app := argAfter(args, "-append"); !strings.Contains(app, "musubi.ctl_ip=10.0.2.15/24") {
		t.Errorf("kernel arguments %q lack the control address", app)
	}
	if vm.ControlSecretName != image.ControlSecretName {
		t.Errorf("fw_cfg name %q here, %q in the image", vm.ControlSecretName, image.ControlSecretName)
	}
	bad := sp
	bad.Node = "n1"
	bad.Control = &vm.Control{Pipe: []string{"relay-pipe"}, Forwards: sp.Control.Forwards}
	if err := bad.Validate(); !errors.Is(err, vm.ErrInvalid) {
		t.Errorf("a relative pipe command: %v", err)
	}
	bad.Control = &vm.Control{Pipe: sp.Control.Pipe, Forwards: []vm.Forward{{Guest: netip.MustParseAddrPort("192.0.2.1:2181"), Socket: "/s"}}}
	if err := bad.Validate(); !errors.Is(err, vm.ErrInvalid) {
		t.Errorf("a forward outside the control network: %v", err)
	}
}
