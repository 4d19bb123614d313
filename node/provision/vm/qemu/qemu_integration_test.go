//go:build integration

package qemu_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/ovstest"
	"github.com/musubi-fabric/musubi/node/image"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/iscsi"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/netns"
	"github.com/musubi-fabric/musubi/node/provision/vm/qemu"
	"github.com/musubi-fabric/musubi/node/provision/vm/qmp"
	"github.com/musubi-fabric/musubi/node/provision/vm/vmtest"
)

// needQEMU skips unless QEMU with its iSCSI driver, tgt and the image
// inputs are installed and the test runs as root.
func needQEMU(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (taps, namespaces, tgtd)")
	}
	for _, p := range []string{"qemu-system-x86_64", "tgtd", "tgtadm", "mke2fs", "debugfs", "dpkg-query"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install qemu-system-x86 qemu-block-extra tgt e2fsprogs)", p)
		}
	}
	if m, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so"); len(m) == 0 {
		t.Skip("skipping: QEMU's iSCSI driver missing (apt-get install qemu-block-extra)")
	}
	if err := image.StaticELF(image.DefaultBusybox); err != nil {
		t.Skipf("skipping: %v (apt-get install busybox-static)", err)
	}
	if err := ovstest.Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
}

var (
	imgOnce sync.Once
	imgDir  string
	imgErr  error
	theImg  image.Image
)

// testImage builds one image for the whole test binary (busybox stands in
// for the agent binary: no agent runs without musubi.zk).
func testImage(t *testing.T) image.Image {
	t.Helper()
	imgOnce.Do(func() {
		imgDir, imgErr = os.MkdirTemp("", "mimg")
		if imgErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		t0 := time.Now()
		theImg, imgErr = image.Store{Dir: imgDir}.Build(ctx, image.Config{Agent: image.DefaultBusybox})
		t.Logf("image %s built in %v", theImg.ID, time.Since(t0).Round(time.Millisecond))
	})
	if imgErr != nil {
		t.Fatalf("build image: %v", imgErr)
	}
	return theImg
}

func TestMain(m *testing.M) {
	code := m.Run()
	if imgDir != "" {
		os.RemoveAll(imgDir)
	}
	os.Exit(code)
}

// site is one OVS site with br-int, a state directory and the port driver.
type site struct {
	s     *ovstest.Site
	ports *vm.VsctlPorts
	state string
}

func newSite(t *testing.T) *site {
	t.Helper()
	f := ovstest.NewT(t, 1)
	s := f.Sites()[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Vsctl(ctx, "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev"); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mq") // short: QMP sockets live there
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return &site{s: s, ports: &vm.VsctlPorts{Runner: vm.ExecRunner{}, DB: s.OVSDBEndpoint(), Owner: "site1"}, state: dir}
}

func (st *site) backend(t *testing.T, ready vm.ReadyFunc) *qemu.Backend {
	t.Helper()
	b, err := qemu.New(qemu.Config{StateDir: filepath.Join(st.state, "q"), Ports: st.ports, SwitchNetns: st.s.NS,
		Ready: ready, StopGrace: 10 * time.Second, LogDir: filepath.Join(st.state, "logs")})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// qemuProcs lists the QEMU processes of musubi nodes whose name starts
// with prefix ("musubi:<prefix>").
func qemuProcs(prefix string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte("\x00musubi:"+prefix)) {
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(b[:min(len(b), 80)]), "\x00", " "))
		}
	}
	return out
}

func (st *site) leftovers(t *testing.T, prefix string) []string {
	t.Helper()
	var left []string
	ports, err := st.ports.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		left = append(left, "port "+p.Name)
	}
	links, err := exec.Command("ip", "-n", st.s.NS, "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(links), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], qemu.TapPrefix) {
			left = append(left, "link "+strings.TrimSuffix(f[1], ":"))
		}
	}
	for _, p := range qemuProcs(prefix) {
		left = append(left, "qemu "+p)
	}
	sort.Strings(left)
	return left
}

// One TCG guest boots the image with its root disk on an iSCSI volume
// (tgtd with a sparse clone, an initiator ACL and CHAP), joins its VC's
// VLAN (a netns node pings it), reaches ready, and leaves nothing after
// Remove; its boot record is on the volume.
func TestGuestOnISCSI(t *testing.T) {
	needQEMU(t)
	img := testImage(t)
	st := newSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Storage: a tgtd of the test's own in the site namespace.
	tdir, err := os.MkdirTemp("", "mtgt")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tdir)
	d, err := iscsi.StartDaemon(ctx, iscsi.DaemonConfig{Dir: filepath.Join(tdir, "d"), Portal: "127.0.0.1:3260", ControlPort: 7, Netns: st.s.NS})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	vols, err := iscsi.New(ctx, iscsi.Config{Dir: filepath.Join(tdir, "vols"), Portal: "127.0.0.1:3260", Mgmt: d.Mgmt(), Backend: iscsi.BackendFile})
	if err != nil {
		t.Fatal(err)
	}
	const initiator = "iqn.2025-01.org.musubi:site1.host1"
	vol, err := vols.Ensure(ctx, provision.VolumeSpec{VC: "vcq", Node: "n0", Image: img.RootDisk, Size: 512 << 20, InitiatorName: initiator})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := vols.Remove(context.Background(), vol.Name); err != nil {
			t.Error(err)
		}
	}()

	b := st.backend(t, nil) // ready = the image's console marker
	sp := vmtest.NewSpec("vcq", 0)
	sp.Boot = vm.Boot{Kernel: img.Kernel, Initrd: img.Initrd}
	sp.Disk = &vm.Disk{ISCSI: &vm.ISCSIDisk{Portal: vol.Portal, Target: vol.Target, LUN: vol.LUN, Initiator: initiator,
		User: vol.CHAPUser, Secret: vol.CHAPSecret}}
	t0 := time.Now()
	ns, err := b.Ensure(ctx, sp)
	if err != nil {
		if ns.Log != "" {
			serial, _ := os.ReadFile(ns.Log)
			t.Logf("serial:\n%s", serial)
		}
		t.Fatalf("Ensure: %v", err)
	}
	took := time.Since(t0)
	t.Logf("FIGURE qemu: 1 %s guest on iSCSI ready in %v (load %s)", ns.Accel, took.Round(time.Millisecond), loadavg())
	if ns.Status != "running" || !ns.Running {
		t.Fatalf("state %+v", ns)
	}
	// The secret never reached a command line.
	if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ns.PID)); err != nil || bytes.Contains(cmd, []byte(vol.CHAPSecret)) {
		t.Fatalf("QEMU command line (err %v) holds the CHAP secret", err)
	}
	// QMP answers directly too.
	c, err := qmp.Dial(ctx, filepath.Join(filepath.Dir(ns.Log), "qmp.sock"))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := c.QueryStatus(ctx); err != nil || !s.Running {
		t.Fatalf("query-status %+v %v", s, err)
	}
	c.Close()

	// A netns node on the same VLAN reaches the guest.
	nb, err := netns.New(netns.Config{StateDir: filepath.Join(st.state, "n"), Ports: st.ports, SwitchNetns: st.s.NS,
		Prefix: fmt.Sprintf("mqt%d-", os.Getpid()%100000)})
	if err != nil {
		t.Fatal(err)
	}
	peer := vmtest.NewSpec("vcq", 1)
	peer.Agent.Args = []string{"/bin/sleep", "600"}
	pst, err := nb.Ensure(ctx, peer)
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Remove(context.Background(), peer.Name())
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", pst.Netns, "ping", "-c", "3", "-W", "5", sp.Addr.Addr().String()).CombinedOutput(); err != nil {
		t.Fatalf("ping guest from a netns node: %v\n%s", err, out)
	}
	if err := nb.Remove(ctx, peer.Name()); err != nil {
		t.Fatal(err)
	}

	// List from a restarted backend sees it.
	l, err := st.backend(t, nil).List(ctx)
	if err != nil || len(l) != 1 || !l[0].Healthy() || l[0].PID != ns.PID {
		t.Fatalf("List after restart = %+v, %v", l, err)
	}

	t1 := time.Now()
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE qemu: Remove (power button, guest powers off) took %v", time.Since(t1).Round(time.Millisecond))
	if left := st.leftovers(t, "vcq/n0"); len(left) > 0 {
		t.Fatalf("left after Remove: %q", left)
	}
	if ents, _ := os.ReadDir(filepath.Join(st.state, "q")); len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("state left: %v", names)
	}
	serial, err := os.ReadFile(filepath.Join(st.state, "logs", "vcq.n0.serial.log"))
	if err != nil || !bytes.Contains(serial, []byte(image.ReadyMarker+" vcq/n0")) {
		t.Fatalf("kept serial log: %v\n%s", err, serial)
	}
	// The guest wrote its boot record on the iSCSI volume.
	out, err := exec.Command("debugfs", "-R", "cat "+image.BootLog, vol.Path).Output()
	if err != nil || !bytes.Contains(out, []byte("boot vcq/n0 ")) {
		t.Fatalf("boot record on the volume %s: %v\n%s", vol.Path, err, out)
	}
}

// A wrong CHAP secret keeps the guest from starting: QEMU's login fails
// and Ensure says so without printing the secret.
func TestWrongCHAPSecret(t *testing.T) {
	needQEMU(t)
	img := testImage(t)
	st := newSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tdir, err := os.MkdirTemp("", "mtgt")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tdir)
	d, err := iscsi.StartDaemon(ctx, iscsi.DaemonConfig{Dir: filepath.Join(tdir, "d"), Portal: "127.0.0.1:3260", ControlPort: 8, Netns: st.s.NS})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background())
	vols, err := iscsi.New(ctx, iscsi.Config{Dir: filepath.Join(tdir, "vols"), Portal: "127.0.0.1:3260", Mgmt: d.Mgmt(), Backend: iscsi.BackendFile})
	if err != nil {
		t.Fatal(err)
	}
	const initiator = "iqn.2025-01.org.musubi:site1.host1"
	vol, err := vols.Ensure(ctx, provision.VolumeSpec{VC: "vcw", Node: "n0", Image: img.RootDisk, InitiatorName: initiator})
	if err != nil {
		t.Fatal(err)
	}
	defer vols.Remove(context.Background(), vol.Name)
	b := st.backend(t, nil)
	sp := vmtest.NewSpec("vcw", 0)
	sp.Boot = vm.Boot{Kernel: img.Kernel, Initrd: img.Initrd}
	wrong := "WrongSecret000111"
	sp.Disk = &vm.Disk{ISCSI: &vm.ISCSIDisk{Portal: vol.Portal, Target: vol.Target, LUN: vol.LUN, Initiator: initiator,
		User: vol.CHAPUser, Secret: wrong}}
	_, err = b.Ensure(ctx, sp)
	if err == nil {
		t.Fatal("guest started with a wrong CHAP secret")
	}
	t.Logf("refused as expected: %v", err)
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), vol.CHAPSecret) {
		t.Fatal("secret in the error")
	}
	if err := b.Remove(ctx, sp.Name()); err != nil {
		t.Fatal(err)
	}
	if left := st.leftovers(t, "vcw/"); len(left) > 0 {
		t.Fatalf("left: %q", left)
	}
}

// The contract suite on real guests (local disk clones), limited to what
// only real processes can show: a restarted backend adopts running
// guests, and a killed guest is started again.
func TestContractRealGuests(t *testing.T) {
	needQEMU(t)
	img := testImage(t)
	st := newSite(t)
	disks := t.TempDir()
	var mu sync.Mutex
	vmtest.Run(t, vmtest.Harness{
		New: func(t *testing.T, ready vm.ReadyFunc) vm.Backend {
			r := qemu.SerialReady
			if ready != nil {
				r = func(ctx context.Context, s vm.NodeState) error {
					if err := qemu.SerialReady(ctx, s); err != nil {
						return err
					}
					return ready(ctx, s)
				}
			}
			return st.backend(t, r)
		},
		Spec: func(t *testing.T, sp *vm.NodeSpec) {
			sp.Boot = vm.Boot{Kernel: img.Kernel, Initrd: img.Initrd}
			f := filepath.Join(disks, sp.VC+"-"+sp.Node+".img")
			mu.Lock()
			defer mu.Unlock()
			if _, err := os.Stat(f); err != nil {
				if err := image.CloneFile(context.Background(), img.RootDisk, f, 0); err != nil {
					t.Fatal(err)
				}
			}
			sp.Disk = &vm.Disk{File: f}
		},
		Crash: func(t *testing.T, s vm.NodeState) {
			p, err := os.FindProcess(s.PID)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Kill(); err != nil {
				t.Fatal(err)
			}
			if !vm.WaitGone(context.Background(), vm.ExecRunner{}, vm.Proc{PID: s.PID}, 10*time.Second) {
				t.Fatalf("QEMU %d survived SIGKILL", s.PID)
			}
		},
		Leftovers: func(t *testing.T) []string { return st.leftovers(t, "vc") },
		Only:      []string{"RestartSafe", "Crash"},
		Timeout:   4 * time.Minute,
	})
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// Two guests started at once (local disk clones): the figure for a small
// VC's QEMU share under TCG on this machine's 2 cores.
func TestTwoGuestsAtOnce(t *testing.T) {
	needQEMU(t)
	img := testImage(t)
	st := newSite(t)
	b := st.backend(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	specs := make([]vm.NodeSpec, 2)
	for i := range specs {
		specs[i] = vmtest.NewSpec("vc2", i)
		specs[i].Boot = vm.Boot{Kernel: img.Kernel, Initrd: img.Initrd}
		f := filepath.Join(t.TempDir(), "disk.img")
		if err := image.CloneFile(ctx, img.RootDisk, f, 0); err != nil {
			t.Fatal(err)
		}
		specs[i].Disk = &vm.Disk{File: f}
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(specs))
	for i := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Ensure(ctx, specs[i])
		}()
	}
	wg.Wait()
	took := time.Since(t0)
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("FIGURE qemu: %d TCG guests started at once all ready in %v (load %s)", len(specs), took.Round(time.Millisecond), loadavg())
	for _, sp := range specs {
		if err := b.Remove(ctx, sp.Name()); err != nil {
			t.Error(err)
		}
	}
	if left := st.leftovers(t, "vc2/"); len(left) > 0 {
		t.Fatalf("left: %q", left)
	}
}
