// Package qemu is the virtual machine node backend. Every node is one QEMU
// process, started detached (its own session) inside the switch's
// namespace so that it can open its tap there, and tracked by PID and
// start time in the node's state directory:
//
//   - accelerator: KVM when it really works here, TCG otherwise. /dev/kvm
//     being there is not enough (on this project's lab machine it is a
//     kvm_pvm device on which ordinary guests never run), so the backend
//     first runs a 64 KiB probe firmware under KVM that counts to 64
//     million and writes to an isa-debug-exit port; only if QEMU exits with
//     the probe's code within a few seconds is KVM used;
//   - boot: direct kernel boot of an image's kernel and initramfs, with
//     "console=ttyS0 quiet no_timer_check panic=1" (no_timer_check avoids
//     a TCG timer-check panic seen under load) and the node's settings as
//     musubi.* arguments (see package node/image);
//   - root disk: an iSCSI LUN opened by QEMU's own libiscsi
//     (-blockdev driver=iscsi) with CHAP, the secret read from a 0600 file
//     by a secret object (never on a command line; the file is deleted once
//     QEMU has read it), or a local raw file;
//   - NIC: virtio-net on a tap of br-int with the VC's tag, opened with
//     vnet_hdr=off (the OVS userspace datapath does not complete partial
//     checksums, which breaks TCP);
//   - control: QMP on a unix socket in the state directory (query-status,
//     system_powerdown, quit); the serial console goes to serial.log there.
//
// Remove presses the power button (the image's acpid powers off), waits
// StopGrace, then quits QEMU over QMP, and kills it if need be.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/node/image"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/internal/nodedir"
	"github.com/musubi-fabric/musubi/node/provision/vm/qmp"
)

// Kind is the backend's name.
const Kind = "qemu"

// TapPrefix starts the name of the nodes' taps.
const TapPrefix = "mq"

// Accelerators.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// MinMemoryMiB is the least memory the Debian cloud kernel boots in (the
// lab found that 64 MiB guests exit silently).
const MinMemoryMiB = 72

// Files of a node's state directory.
const (
	serialFile = "serial.log"
	qemuLog    = "qemu.log"
	qmpSocket  = "qmp.sock"
	secretFile = "chap.secret"
)

// QMP is what the backend needs of a QMP connection.
type QMP interface {
	QueryStatus(ctx context.Context) (qmp.Status, error)
	SystemPowerdown(ctx context.Context) error
	Quit(ctx context.Context) error
	Close() error
}

// Config configures the backend.
type Config struct {
	// StateDir holds one directory per node (absolute; keep it short:
	// QMP sockets live there).
	StateDir string
	// Runner reaches the host (default vm.ExecRunner{}).
	Runner vm.Runner
	// Ports attaches the taps to br-int (required).
	Ports provision.PortDriver
	// SwitchNetns is the namespace of br-int's ovs-vswitchd: taps are
	// created there and QEMU runs there ("" for the peer's own).
	SwitchNetns string
	// QEMU is the emulator (default "qemu-system-x86_64").
	QEMU string
	// Accel is AccelAuto (default), AccelKVM or AccelTCG.
	Accel string
	// TBSizeMiB is TCG's translation cache (default 32; QEMU's default
	// costs about 190 MiB per guest).
	TBSizeMiB int
	// MemoryMiB and VCPUs are the defaults for specs that leave them 0
	// (128 and 1).
	MemoryMiB int
	VCPUs     int
	// Ready tells when a node is ready (default SerialReady: the image's
	// console marker).
	Ready vm.ReadyFunc
	// ReadyTimeout bounds the wait for Ready (default 3 minutes: TCG
	// guests boot in seconds when the host is idle, much slower when it
	// is not).
	ReadyTimeout time.Duration
	// StopGrace is how long Remove waits for the guest to power off after
	// the power button (default 5 s; 0 keeps the default, negative skips
	// the button).
	StopGrace time.Duration
	// LogDir, when set, keeps each removed node's serial log there as
	// <vc>.<node>.serial.log; otherwise it goes with the node.
	LogDir string
	// DialQMP connects to a QMP socket (default qmp.Dial).
	DialQMP func(ctx context.Context, path string) (QMP, error)
	// ProbeKVM reports whether KVM runs guests here (default: open
	// /dev/kvm and run the probe firmware).
	ProbeKVM func(ctx context.Context) error
	// Logger receives progress (default: discard).
	Logger *slog.Logger
}

// Backend is the QEMU node backend.
type Backend struct {
	cfg Config
	dir *nodedir.Dir
	log *slog.Logger

	kvmDevice string // /dev/kvm (tests change it)

	accelMu sync.Mutex
	accel   string // decided accelerator ("" until the first start)
}

var _ vm.Backend = (*Backend)(nil)

// record is a node's state file.
type record struct {
	VC, Node  string
	SpecHash  string
	Netns     string
	Tap       string
	VLAN      uint16
	QEMU      vm.Proc
	Accel     string
	StartedAt time.Time
}

// New returns a backend; it creates the state directory. The accelerator
// is decided at the first start.
func New(cfg Config) (*Backend, error) {
	if cfg.Runner == nil {
		cfg.Runner = vm.ExecRunner{}
	}
	if cfg.Ports == nil {
		return nil, fmt.Errorf("%w: qemu backend without a port driver", vm.ErrInvalid)
	}
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	switch cfg.Accel {
	case "":
		cfg.Accel = AccelAuto
	case AccelAuto, AccelKVM, AccelTCG:
	default:
		return nil, fmt.Errorf("%w: accelerator %q (auto, kvm or tcg)", vm.ErrInvalid, cfg.Accel)
	}
	if cfg.TBSizeMiB <= 0 {
		cfg.TBSizeMiB = 32
	}
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = 128
	}
	if cfg.MemoryMiB < MinMemoryMiB {
		return nil, fmt.Errorf("%w: default memory %d MiB below %d", vm.ErrInvalid, cfg.MemoryMiB, MinMemoryMiB)
	}
	if cfg.VCPUs <= 0 {
		cfg.VCPUs = 1
	}
	if cfg.Ready == nil {
		cfg.Ready = SerialReady
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 3 * time.Minute
	}
	if cfg.StopGrace == 0 {
		cfg.StopGrace = 5 * time.Second
	}
	if cfg.DialQMP == nil {
		cfg.DialQMP = func(ctx context.Context, path string) (QMP, error) { return qmp.Dial(ctx, path) }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d, err := nodedir.New(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", vm.ErrInvalid, err)
	}
	b := &Backend{cfg: cfg, dir: d, log: cfg.Logger.With("backend", Kind), kvmDevice: "/dev/kvm"}
	if b.cfg.ProbeKVM == nil {
		b.cfg.ProbeKVM = b.probeKVM
	}
	return b, nil
}

// Kind implements vm.Backend.
func (b *Backend) Kind() string { return Kind }

// Accel decides the accelerator (once) and returns it.
func (b *Backend) Accel(ctx context.Context) string {
	b.accelMu.Lock()
	defer b.accelMu.Unlock()
	if b.accel != "" {
		return b.accel
	}
	switch b.cfg.Accel {
	case AccelKVM, AccelTCG:
		b.accel = b.cfg.Accel
	default:
		if err := b.cfg.ProbeKVM(ctx); err != nil {
			b.log.Info("KVM not usable here; using TCG", "reason", err)
			b.accel = AccelTCG
		} else {
			b.log.Info("KVM works; using it")
			b.accel = AccelKVM
		}
	}
	return b.accel
}

func (b *Backend) state(rec record, running bool) vm.NodeState {
	return vm.NodeState{
		Name: vm.NodeName(rec.VC, rec.Node), VC: rec.VC, Node: rec.Node, Backend: Kind,
		Running: running, PID: rec.QEMU.PID, Port: rec.Tap, VLAN: rec.VLAN, Netns: rec.Netns,
		Log: b.dir.Path(rec.VC, rec.Node, serialFile), Accel: rec.Accel, StartedAt: rec.StartedAt, SpecHash: rec.SpecHash,
	}
}

func (b *Backend) validate(spec vm.NodeSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	for _, f := range []string{spec.Boot.Kernel, spec.Boot.Initrd} {
		if !filepath.IsAbs(f) || strings.ContainsAny(f, ", \t\n") {
			return fmt.Errorf("%w: %s: boot file %q (absolute, no commas or spaces)", vm.ErrInvalid, spec.Name(), f)
		}
	}
	if spec.Disk != nil && strings.ContainsAny(spec.Disk.File, ", \t\n") {
		return fmt.Errorf("%w: %s: disk file %q has commas or spaces", vm.ErrInvalid, spec.Name(), spec.Disk.File)
	}
	for _, a := range spec.Boot.Append {
		if a == "" || strings.ContainsAny(a, " \t\n\"") {
			return fmt.Errorf("%w: %s: kernel argument %q", vm.ErrInvalid, spec.Name(), a)
		}
	}
	if spec.MemoryMiB != 0 && spec.MemoryMiB < MinMemoryMiB {
		return fmt.Errorf("%w: %s: %d MiB of memory; the guest kernel needs at least %d", vm.ErrInvalid, spec.Name(), spec.MemoryMiB, MinMemoryMiB)
	}
	if spec.VCPUs > 64 {
		return fmt.Errorf("%w: %s: %d vCPUs", vm.ErrInvalid, spec.Name(), spec.VCPUs)
	}
	return nil
}

// Ensure implements vm.Backend.
func (b *Backend) Ensure(ctx context.Context, spec vm.NodeSpec) (vm.NodeState, error) {
	if err := b.validate(spec); err != nil {
		return vm.NodeState{}, err
	}
	unlock := b.dir.Lock(spec.VC, spec.Node)
	defer unlock()
	hash := spec.Hash()
	var rec record
	found, err := b.dir.Load(spec.VC, spec.Node, &rec)
	if err != nil {
		return vm.NodeState{}, err
	}
	if found && rec.SpecHash != hash {
		return b.state(rec, b.cfg.Runner.Alive(rec.QEMU)), fmt.Errorf("%w: %s", vm.ErrConflict, spec.Name())
	}
	if found && b.cfg.Runner.Alive(rec.QEMU) {
		if err := b.ensurePort(ctx, spec, rec.Tap); err != nil {
			return b.state(rec, true), err
		}
		st := b.state(rec, true)
		return st, vm.WaitReady(ctx, b.cfg.Runner, rec.QEMU, b.cfg.Ready, st, b.cfg.ReadyTimeout)
	}
	if found {
		b.log.Info("QEMU gone; starting the node again", "node", spec.Name(), "pid", rec.QEMU.PID)
	}
	if err := b.teardown(ctx, spec.VC, spec.Node, rec); err != nil {
		return vm.NodeState{}, err
	}
	// A fresh start keeps no console output of an earlier run.
	for _, f := range []string{serialFile, qemuLog} {
		if err := os.Remove(b.dir.Path(spec.VC, spec.Node, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return vm.NodeState{}, fmt.Errorf("vm: %w", err)
		}
	}
	accel := b.Accel(ctx)
	rec = record{VC: spec.VC, Node: spec.Node, SpecHash: hash, Netns: b.cfg.SwitchNetns,
		Tap: vm.PortName(TapPrefix, spec.Name()), VLAN: spec.VLAN, Accel: accel}
	if err := b.dir.Save(spec.VC, spec.Node, rec); err != nil {
		return vm.NodeState{}, err
	}
	t0 := time.Now()
	if err := b.createTap(ctx, spec, rec.Tap); err != nil {
		return b.state(rec, false), err
	}
	secret := ""
	if spec.Disk != nil && spec.Disk.ISCSI != nil && spec.Disk.ISCSI.Secret != "" {
		secret = b.dir.Path(spec.VC, spec.Node, secretFile)
		if err := writeSecret(secret, spec.Disk.ISCSI.Secret); err != nil {
			return b.state(rec, false), err
		}
		// The secret lives in QEMU's memory once it runs; the file goes
		// whatever happens.
		defer os.Remove(secret)
	}
	args := b.argv(spec, accel, secret)
	p, err := b.cfg.Runner.Start(ctx, vm.Cmd{Netns: b.cfg.SwitchNetns, Name: b.cfg.QEMU, Args: args,
		Dir: b.dir.NodeDir(spec.VC, spec.Node), Log: b.dir.Path(spec.VC, spec.Node, qemuLog)})
	if p.PID > 0 {
		rec.QEMU = p
		rec.StartedAt = time.Now().UTC()
		if serr := b.dir.Save(spec.VC, spec.Node, rec); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	if err != nil {
		return b.state(rec, false), err
	}
	st := b.state(rec, true)
	status, err := b.waitQMP(ctx, spec, p)
	if err != nil {
		st.Running = b.cfg.Runner.Alive(p)
		return st, err
	}
	st.Status = status
	b.log.Info("node started", "node", spec.Name(), "pid", p.PID, "accel", accel, "tap", rec.Tap, "vlan", spec.VLAN,
		"took", time.Since(t0).Round(time.Millisecond))
	return st, vm.WaitReady(ctx, b.cfg.Runner, p, b.cfg.Ready, st, b.cfg.ReadyTimeout)
}

func writeSecret(path, secret string) error {
	_ = os.Remove(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("vm: secret file: %w", err)
	}
	if _, err := f.WriteString(secret); err != nil {
		f.Close()
		return fmt.Errorf("vm: secret file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("vm: secret file: %w", err)
	}
	return nil
}

// ipIn runs "ip -n ns ..." (or plain "ip ..." for the peer's namespace).
func (b *Backend) ipIn(ctx context.Context, args ...string) ([]byte, error) {
	if ns := b.cfg.SwitchNetns; ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	return b.cfg.Runner.Run(ctx, vm.Cmd{Name: "ip", Args: args})
}

func (b *Backend) createTap(ctx context.Context, spec vm.NodeSpec, tap string) error {
	if _, err := b.ipIn(ctx, "tuntap", "add", "dev", tap, "mode", "tap"); err != nil {
		return err
	}
	if _, err := b.cfg.Runner.Run(ctx, vm.Cmd{Netns: b.cfg.SwitchNetns, Name: "sysctl",
		Args: []string{"-qw", "net.ipv6.conf." + tap + ".disable_ipv6=1"}}); err != nil {
		return err
	}
	if _, err := b.ipIn(ctx, "link", "set", tap, "mtu", strconv.Itoa(spec.MTUOrDefault()), "up"); err != nil {
		return err
	}
	return b.ensurePort(ctx, spec, tap)
}

func (b *Backend) ensurePort(ctx context.Context, spec vm.NodeSpec, tap string) error {
	_, err := b.cfg.Ports.Ensure(ctx, provision.PortSpec{Name: tap, VC: spec.VC, VLAN: spec.VLAN, MAC: spec.MAC, IP: spec.Addr.Addr()})
	if err != nil {
		return fmt.Errorf("vm: %s: port %s: %w", spec.Name(), tap, err)
	}
	return nil
}

// KernelArgs is the guest's kernel command line for spec.
func KernelArgs(spec vm.NodeSpec) string {
	a := []string{"console=ttyS0", "quiet", "no_timer_check", "panic=1",
		"musubi.vc=" + spec.VC, "musubi.node=" + spec.Node, "musubi.ip=" + spec.Addr.String(),
		"musubi.mtu=" + strconv.Itoa(spec.MTUOrDefault())}
	if spec.Gateway.IsValid() {
		a = append(a, "musubi.gw="+spec.Gateway.String())
	}
	if spec.Disk != nil {
		a = append(a, "musubi.rootdev=/dev/vda") // not musubi.root: that is MUSUBI_ROOT, the agent's chroot
	}
	if spec.Control != nil {
		a = append(a, "musubi.ctl_ip="+vm.ControlNet.String())
	}
	keys := make([]string, 0, len(spec.Agent.Env))
	for k := range spec.Agent.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		a = append(a, "musubi."+strings.ToLower(strings.TrimPrefix(k, "MUSUBI_"))+"="+spec.Agent.Env[k])
	}
	return strings.Join(append(a, spec.Boot.Append...), " ")
}

// argv is QEMU's command line (without the program).
func (b *Backend) argv(spec vm.NodeSpec, accel, secret string) []string {
	mem, cpus := spec.MemoryMiB, spec.VCPUs
	if mem == 0 {
		mem = b.cfg.MemoryMiB
	}
	if cpus == 0 {
		cpus = b.cfg.VCPUs
	}
	a := []string{"-name", "musubi:" + spec.Name()}
	if accel == AccelKVM {
		a = append(a, "-accel", "kvm", "-cpu", "host")
	} else {
		a = append(a, "-accel", "tcg,tb-size="+strconv.Itoa(b.cfg.TBSizeMiB))
	}
	a = append(a, "-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:"+b.dir.Path(spec.VC, spec.Node, serialFile),
		"-qmp", "unix:"+b.dir.SocketPath(spec.VC, spec.Node, qmpSocket)+",server=on,wait=off",
		"-kernel", spec.Boot.Kernel, "-initrd", spec.Boot.Initrd, "-append", KernelArgs(spec))
	if d := spec.Disk; d != nil {
		if i := d.ISCSI; i != nil {
			bd := "driver=iscsi,node-name=root,transport=tcp,portal=" + i.Portal + ",target=" + i.Target +
				",lun=" + strconv.Itoa(i.LUN) + ",initiator-name=" + i.Initiator + ",cache.direct=on"
			if secret != "" {
				a = append(a, "-object", "secret,id=chap0,file="+secret)
				bd += ",user=" + i.User + ",password-secret=chap0"
			}
			a = append(a, "-blockdev", bd)
		} else {
			a = append(a, "-blockdev", "driver=file,node-name=rootfile,filename="+d.File,
				"-blockdev", "driver=raw,node-name=root,file=rootfile")
		}
		a = append(a, "-device", "virtio-blk-pci,drive=root")
	}
	a = append(a, "-netdev", "tap,id=net0,ifname="+vm.PortName(TapPrefix, spec.Name())+",script=no,downscript=no,vnet_hdr=off",
		"-device", "virtio-net-pci,netdev=net0,mac="+spec.MAC.String())
	if c := spec.Control; c != nil {
		// The control NIC (eth1): user networking that routes nowhere
		// (restrict=on); only the forwards to the relay's sockets work.
		nd := "user,id=ctl0,restrict=on,ipv6=off,net=" + vm.ControlNet.Masked().String() + ",host=" + controlHost()
		for _, f := range c.Forwards {
			nd += ",guestfwd=tcp:" + f.Guest.String() + "-cmd:" + strings.Join(append(slices.Clone(c.Pipe), f.Socket), " ")
		}
		a = append(a, "-netdev", nd, "-device", "virtio-net-pci,netdev=ctl0,mac="+controlMAC)
		if c.SecretFile != "" {
			a = append(a, "-fw_cfg", "name="+vm.ControlSecretName+",file="+c.SecretFile)
		}
	}
	return a
}

// controlMAC is the control NIC's address: the same in every guest, as
// each guest's user network is its own.
const controlMAC = "52:54:00:00:c7:01"

// controlHost is the user network's host address (.2 of ControlNet).
func controlHost() string {
	b := vm.ControlNet.Masked().Addr().As4()
	b[3] = 2
	return netip.AddrFrom4(b).String()
}

// waitQMP waits for QEMU's monitor to answer and returns the run state; it
// fails with ErrExited (and the tail of QEMU's log) when QEMU exits first,
// for example when the iSCSI login is refused.
func (b *Backend) waitQMP(ctx context.Context, spec vm.NodeSpec, p vm.Proc) (string, error) {
	sock := b.dir.SocketPath(spec.VC, spec.Node, qmpSocket)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if !b.cfg.Runner.Alive(p) {
			return "", fmt.Errorf("%w: %s: QEMU (pid %d) exited at start: %s", vm.ErrExited, spec.Name(), p.PID,
				tail(b.dir.Path(spec.VC, spec.Node, qemuLog), 600))
		}
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := b.cfg.DialQMP(dctx, sock)
		if err == nil {
			st, serr := c.QueryStatus(dctx)
			c.Close()
			cancel()
			if serr == nil {
				return st.Status, nil
			}
			err = serr
		} else {
			cancel()
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%w: %s: QMP does not answer: %v", vm.ErrUnavailable, spec.Name(), err)
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		case <-t.C:
		}
	}
}

// tail returns the last n bytes of a file, on one line.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.Join(strings.Fields(string(b)), " ")
}

// Remove implements vm.Backend.
func (b *Backend) Remove(ctx context.Context, name string) error {
	vc, node, err := vm.ParseName(name)
	if err != nil {
		return err
	}
	unlock := b.dir.Lock(vc, node)
	defer unlock()
	var rec record
	if _, err := b.dir.Load(vc, node, &rec); err != nil {
		return err
	}
	if err := b.teardown(ctx, vc, node, rec); err != nil {
		return err
	}
	if b.cfg.LogDir != "" {
		src := b.dir.Path(vc, node, serialFile)
		if _, err := os.Stat(src); err == nil {
			if err := os.MkdirAll(b.cfg.LogDir, 0o700); err != nil {
				return fmt.Errorf("vm: %w", err)
			}
			if err := os.Rename(src, filepath.Join(b.cfg.LogDir, vc+"."+node+".serial.log")); err != nil {
				return fmt.Errorf("vm: keep serial log: %w", err)
			}
		}
	}
	if err := b.dir.Remove(vc, node, qmpSocket); err != nil {
		return err
	}
	b.log.Info("node removed", "node", name)
	return nil
}

// teardown stops QEMU and deletes the node's tap and port (names derive
// from the node's name, so it works without a record); missing pieces are
// fine.
func (b *Backend) teardown(ctx context.Context, vc, node string, rec record) error {
	var errs []error
	if rec.QEMU.PID > 0 && b.cfg.Runner.Alive(rec.QEMU) {
		errs = append(errs, b.stop(ctx, vc, node, rec.QEMU))
	}
	tap := vm.PortName(TapPrefix, vm.NodeName(vc, node))
	if err := b.cfg.Ports.Remove(ctx, tap); err != nil {
		errs = append(errs, fmt.Errorf("vm: %s/%s: port %s: %w", vc, node, tap, err))
	}
	if _, err := b.ipIn(ctx, "link", "del", tap); err != nil && !missing(err) {
		errs = append(errs, err)
	}
	if err := os.Remove(b.dir.Path(vc, node, secretFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// stop ends a QEMU process: power button and StopGrace, then QMP quit,
// then signals.
func (b *Backend) stop(ctx context.Context, vc, node string, p vm.Proc) error {
	sock := b.dir.SocketPath(vc, node, qmpSocket)
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	c, err := b.cfg.DialQMP(qctx, sock)
	cancel()
	if err == nil {
		defer c.Close()
		if b.cfg.StopGrace > 0 {
			qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := c.SystemPowerdown(qctx)
			cancel()
			if err == nil && vm.WaitGone(ctx, b.cfg.Runner, p, b.cfg.StopGrace) {
				return nil
			}
		}
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := c.Quit(qctx)
		cancel()
		if err == nil && vm.WaitGone(ctx, b.cfg.Runner, p, 5*time.Second) {
			return nil
		}
	}
	return vm.StopProc(ctx, b.cfg.Runner, p, 2*time.Second)
}

func missing(err error) bool {
	s := vm.StderrOf(err)
	return strings.Contains(s, "Cannot find device") || strings.Contains(s, "No such device") || strings.Contains(s, "does not exist")
}

// List implements vm.Backend.
func (b *Backend) List(ctx context.Context) ([]vm.NodeState, error) {
	ports, err := b.cfg.Ports.List(ctx)
	if err != nil {
		return nil, err
	}
	onBridge := map[string]bool{}
	for _, p := range ports {
		onBridge[p.Name] = true
	}
	nodes, err := b.dir.Nodes()
	if err != nil {
		return nil, err
	}
	var out []vm.NodeState
	for _, n := range nodes {
		var rec record
		found, err := b.dir.Load(n[0], n[1], &rec)
		if err != nil {
			return nil, err
		}
		if !found {
			rec = record{VC: n[0], Node: n[1], Tap: vm.PortName(TapPrefix, vm.NodeName(n[0], n[1])), Netns: b.cfg.SwitchNetns}
		}
		st := b.state(rec, b.cfg.Runner.Alive(rec.QEMU))
		if !found {
			st.Problems = append(st.Problems, "no state record")
		}
		if st.Running {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if c, err := b.cfg.DialQMP(qctx, b.dir.SocketPath(rec.VC, rec.Node, qmpSocket)); err == nil {
				if s, err := c.QueryStatus(qctx); err == nil {
					st.Status = s.Status
				}
				c.Close()
			}
			cancel()
			if st.Status == "" {
				st.Problems = append(st.Problems, "QMP does not answer")
			}
		} else {
			st.Problems = append(st.Problems, "QEMU not running")
		}
		if !onBridge[rec.Tap] {
			st.Problems = append(st.Problems, "port missing")
		}
		out = append(out, st)
	}
	return out, nil
}

// SerialReady is the default ReadyFunc: the node is ready when its console
// shows the image's ready marker with its name (image.ReadyMarker); a
// console showing image.FailMarker fails at once.
func SerialReady(ctx context.Context, st vm.NodeState) error {
	want := image.ReadyMarker + " " + st.Name + " "
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(st.Log); err == nil {
			s := string(b)
			if strings.Contains(s, want) {
				return nil
			}
			if i := strings.Index(s, image.FailMarker); i >= 0 {
				line, _, _ := strings.Cut(s[i:], "\n")
				return fmt.Errorf("guest: %s", strings.TrimSpace(line))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no %q on the console: %w", image.ReadyMarker, ctx.Err())
		case <-tick.C:
		}
	}
}
