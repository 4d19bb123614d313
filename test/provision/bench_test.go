//go:build bench

package provision_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/internal/benchrec"
	"github.com/musubi-fabric/musubi/node/image"
	"github.com/musubi-fabric/musubi/node/lifecycle"
	"github.com/musubi-fabric/musubi/node/overlayctl"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/netns"
	"github.com/musubi-fabric/musubi/node/provision/vm/qemu"
)

// TestBenchProvision records, for `make bench` (bench "provision"), the
// time from a VC's window start to all its nodes ready, as the sites'
// status records report it, on a 2-site federation: 8 netns nodes with
// iSCSI volumes (median of 3 VCs; goal < 2 s) and 4 QEMU-TCG nodes booting
// from their iSCSI volumes (goal < 15 s). The baseline of each, measured
// in the same run, is the same nodes built one after the other straight
// through the drivers, without the reconciler. The seed system's 1,822 s
// for one virtual frontend is the historical anchor.
func TestBenchProvision(t *testing.T) {
	rec := benchrec.New(os.Stdout)
	fed := newFederation(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	base := fed.directBuild(ctx, netns.Kind, 8)
	for _, s := range fed.sites {
		s.startReconciler()
	}
	var runs []time.Duration
	for i := range 3 {
		r := fed.reserve("bench"+strconv.Itoa(i), 8, 2*time.Second, 8*time.Second)
		d := fed.waitReady(r, time.Minute)
		t.Logf("round %d: window start -> 8 netns nodes ready in %v (load %s)", i, d.Round(time.Millisecond), loadavg())
		runs = append(runs, d)
		fed.waitPurged(r.VC, time.Until(r.Window.End)+time.Minute)
	}
	med := benchrec.Percentile(runs, 50)
	f := benchrec.Figure{Bench: "provision", Figure: "window_start_to_ready_8_netns_s", Value: med.Seconds(), Unit: "s", Goal: "< 2"}
	if err := rec.Record(f.WithBaseline("direct_sequential_build_8_netns_s", base.Seconds())); err != nil {
		t.Fatal(err)
	}

	if why := qemuMissing(); why != "" {
		t.Logf("no QEMU figure: %s", why)
		return
	}
	fed.enableQEMU(ctx)
	for _, s := range fed.sites {
		s.killReconciler()
	}
	qbase := fed.directBuild(ctx, qemu.Kind, 4)
	for _, s := range fed.sites {
		s.setKind(ctx, s.host, qemu.Kind)
		s.startReconciler()
	}
	r := fed.reserveQEMU("benchq", 4, 2*time.Second, 2*time.Minute)
	d := fed.waitReady(r, 2*time.Minute)
	t.Logf("window start -> 4 QEMU-TCG nodes ready in %v (load %s)", d.Round(time.Millisecond), loadavg())
	if _, err := fed.res.Release(ctx, r.VC, time.Now()); err != nil {
		t.Fatal(err)
	}
	fed.waitPurged(r.VC, 2*time.Minute)
	f = benchrec.Figure{Bench: "provision", Figure: "window_start_to_ready_4_qemu_tcg_s", Value: d.Seconds(), Unit: "s", Goal: "< 15"}
	if err := rec.Record(f.WithBaseline("direct_sequential_build_4_qemu_tcg_s", qbase.Seconds())); err != nil {
		t.Fatal(err)
	}
}

// qemuMissing says why QEMU guests cannot run here ("" if they can).
func qemuMissing() string {
	for _, p := range []string{"qemu-system-x86_64", "mke2fs", "debugfs", "dpkg-query"} {
		if _, err := exec.LookPath(p); err != nil {
			return p + " not installed"
		}
	}
	if err := image.StaticELF(image.DefaultBusybox); err != nil {
		return err.Error()
	}
	return ""
}

// directBuild builds n nodes of backend kind (half on each site) one after
// the other straight through the drivers, as the reconciler would but
// without it (no reconciler may run meanwhile), returns how long that
// took, and removes them.
func (fed *federation) directBuild(ctx context.Context, kind string, n int) time.Duration {
	t := fed.t
	t.Helper()
	const vc, vlan = "direct", 4000
	type built struct {
		st   *site
		node string
		b    vm.Backend
	}
	var all []built
	defer func() {
		var errs []error
		for _, x := range all {
			errs = append(errs, overlayctl.DeleteNode(ctx, fed.admin, vc, x.node),
				x.b.Remove(ctx, vc+"/"+x.node), x.st.att.Remove(ctx, vc+"/"+x.node), x.st.vols.Remove(ctx, vc+"/"+x.node))
		}
		errs = append(errs, deleteTree(ctx, fed.admin, coord.VCPath(vc)))
		if err := errors.Join(errs...); err != nil {
			t.Errorf("direct build: cleanup: %v", err)
		}
	}()
	disk, imgPath := int64(64<<20), fed.image
	if kind == qemu.Kind {
		fi, err := os.Stat(fed.img.RootDisk)
		if err != nil {
			t.Fatal(err)
		}
		disk, imgPath = fi.Size(), fed.img.RootDisk
	}
	t0 := time.Now()
	for i := range n {
		st := fed.sites[i%len(fed.sites)]
		node := fmt.Sprintf("d%02d", i)
		name := vc + "/" + node
		initiator := lifecycle.InitiatorIQN(st.name, vc, node)
		vol, err := st.vols.Ensure(ctx, provision.VolumeSpec{VC: vc, Node: node, Image: imgPath, Size: disk, InitiatorName: initiator})
		if err != nil {
			t.Fatal(err)
		}
		var b vm.Backend = st.nodes
		port := vm.PortName(netns.PortPrefix, name)
		if kind == qemu.Kind {
			b, port = st.qemu, vm.PortName(qemu.TapPrefix, name)
		}
		all = append(all, built{st, node, b})
		mac := lifecycle.NodeMAC(vc, "direct", i)
		addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64, 1, byte(10 + i)}), 16)
		if err := overlayctl.PutNode(ctx, st.store, overlayctl.NodeRecord{Node: node, VC: vc, Site: st.name, Port: port, VLAN: vlan, MAC: mac, IP: addr.Addr()}); err != nil {
			t.Fatal(err)
		}
		spec := vm.NodeSpec{VC: vc, Node: node, VLAN: vlan, MAC: mac, Addr: addr, MemoryMiB: 128, VCPUs: 1}
		if kind == qemu.Kind {
			spec.Boot = vm.Boot{Kernel: fed.img.Kernel, Initrd: fed.img.Initrd}
			spec.Disk = &vm.Disk{ISCSI: &vm.ISCSIDisk{Portal: vol.Portal, Target: vol.Target, LUN: vol.LUN, Initiator: initiator,
				User: vol.CHAPUser, Secret: vol.CHAPSecret}}
			// The guest's agent registers through its control NIC, as the
			// reconciler sets it up (lifecycle.GuestControl).
			spec.Control = &vm.Control{Pipe: []string{fed.musubi, "relay-pipe"}}
			var zk []string
			for j, sock := range st.relay.Sockets() {
				g := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 2, byte(100 + j)}), 2181)
				spec.Control.Forwards = append(spec.Control.Forwards, vm.Forward{Guest: g, Socket: sock})
				zk = append(zk, g.String())
			}
			spec.Agent.Env = map[string]string{"MUSUBI_ZK": strings.Join(zk, ","), "MUSUBI_ROOT": root}
		} else {
			at, err := st.att.Ensure(ctx, lifecycle.AttachSpec{VC: vc, Node: node, Portal: vol.Portal, Target: vol.Target, LUN: vol.LUN,
				Initiator: initiator, User: vol.CHAPUser, Secret: vol.CHAPSecret})
			if err != nil {
				t.Fatal(err)
			}
			env := st.agentEnv()
			env["MUSUBI_DISK"], env["MUSUBI_IP"], env["MUSUBI_SITE"] = at.URL, addr.String(), st.name
			spec.Agent = vm.Agent{Args: []string{"/bin/sh", fed.agent}, Env: env}
		}
		if _, err := b.Ensure(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(t0)
	t.Logf("direct build of %d %s nodes, one after the other: %v (load %s)", n, kind, took.Round(time.Millisecond), loadavg())
	return took
}

// deleteTree deletes p and everything under it.
func deleteTree(ctx context.Context, st coord.Store, p string) error {
	kids, _, err := st.Children(ctx, p)
	if errors.Is(err, coord.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := deleteTree(ctx, st, p+"/"+k); err != nil {
			return err
		}
	}
	if err := st.Delete(ctx, p, coord.AnyVersion); err != nil && !errors.Is(err, coord.ErrNotFound) {
		return err
	}
	return nil
}
