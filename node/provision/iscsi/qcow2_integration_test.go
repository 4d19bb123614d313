//go:build integration

package iscsi_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/iscsi"
	"github.com/musubi-fabric/musubi/node/provision/provisiontest"
)

func needQcow2(t *testing.T) {
	t.Helper()
	needTgt(t, "qemu-img", "qemu-storage-daemon", "umount")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
}

func (h *tgtHost) qcow2Driver(t *testing.T) *iscsi.Driver {
	t.Helper()
	d, err := iscsi.New(context.Background(), iscsi.Config{Dir: h.vols, Portal: h.portal, Mgmt: h.d.Mgmt(), Backend: iscsi.BackendQcow2})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// exportLeftovers lists FUSE mounts under dir and qemu-storage-daemon
// processes whose command line mentions dir.
func exportLeftovers(t *testing.T, dir string) []string {
	t.Helper()
	var left []string
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			left = append(left, "mount "+f[4])
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("qemu-storage-daemon")) || !bytes.Contains(b, []byte(dir)) {
			continue
		}
		st, _ := os.ReadFile(strings.TrimSuffix(p, "cmdline") + "stat")
		if !bytes.Contains(st, []byte(") Z")) { // zombies of daemonised processes are not ours to reap
			left = append(left, "process "+p)
		}
	}
	return left
}

func TestIntegrationQcow2Contract(t *testing.T) {
	needQcow2(t)
	provisiontest.TestVolumeDriver(t, func(t *testing.T) *provisiontest.VolumeHarness {
		h := startHost(t)
		t.Cleanup(func() {
			if left := exportLeftovers(t, h.dir); len(left) != 0 {
				t.Errorf("exports left: %v", left)
			}
		})
		return &provisiontest.VolumeHarness{
			Driver: h.qcow2Driver(t), Image: writeImage(t, t.TempDir(), 8<<20), ImageSize: 8 << 20,
			Reopen: func(t *testing.T) provision.VolumeDriver { return h.qcow2Driver(t) },
			Leftovers: func(t *testing.T) []string {
				return append(h.leftovers(t), exportLeftovers(t, h.dir)...)
			},
			RestartTarget: func(t *testing.T) {
				h.stop(t)
				h.start(t)
			},
		}
	})
}

// TestIntegrationQcow2 writes through iSCSI into an overlay, checks that
// the image is untouched and the overlay small, recovers from a killed
// export, and measures.
func TestIntegrationQcow2(t *testing.T) {
	needQcow2(t)
	needTgt(t, "qemu-io", "iscsi-inq")
	h := startHost(t)
	d := h.qcow2Driver(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const gib = 1 << 30
	img := writeImage(t, t.TempDir(), gib)
	const ini = "iqn.2026-11.org.musubi:test:q"
	spec := provision.VolumeSpec{VC: "vc1", Node: "n1", Image: img, InitiatorName: ini}
	t0 := time.Now()
	v, err := d.Ensure(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	if v.Size != gib || v.Backend != iscsi.BackendQcow2 {
		t.Fatalf("volume %+v", v)
	}
	out, err := qemuIO(t, v, ini, v.CHAPSecret, "read -P 0 1M 4k", "write -P 0x5a 1M 4k", "read -P 0x5a 1M 4k")
	if err != nil || strings.Count(out, "read 4096/4096") != 2 || strings.Contains(out, "verification failed") {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	if head := readAt(t, v.Path, 0, 12); string(head) != "MUSUBI-IMAGE" {
		t.Fatalf("export does not show the image's data: %q", head)
	}
	if orig := readAt(t, img, 1<<20, 4096); !bytes.Equal(orig, make([]byte, 4096)) {
		t.Fatal("the write reached the application image")
	}
	var st syscall.Stat_t
	q := strings.TrimSuffix(v.Path, ".fuse") + ".qcow2"
	if err := syscall.Stat(q, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("qcow2 overlay of a 1 GiB image: Ensure (overlay + export + target) %v; overlay allocates %d KiB after a 4 KiB write",
		took.Round(10*time.Microsecond), st.Blocks*512>>10)

	// Kill the export (as a crash would): List reports it; Ensure exports
	// again, re-adds the LUN, and the data is still there.
	pid, err := os.ReadFile(strings.TrimSuffix(v.Path, ".fuse") + ".qsd.pid")
	if err != nil {
		t.Fatal(err)
	}
	var p int
	fmt.Sscan(string(pid), &p)
	if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		vs, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) == 1 && !vs[0].Complete() {
			t.Logf("after the export died: %v", vs[0].Problems)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("List still reports %+v 10 s after the export was killed", vs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	spec.CHAPSecret = v.CHAPSecret
	if _, err := d.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	out, err = qemuIO(t, v, ini, v.CHAPSecret, "read -P 0x5a 1M 4k")
	if err != nil || !strings.Contains(out, "read 4096/4096") || strings.Contains(out, "verification failed") {
		t.Fatalf("after re-export: %v\n%s", err, out)
	}
	if err := d.Remove(ctx, v.Name); err != nil {
		t.Fatal(err)
	}
	if left := append(h.leftovers(t), exportLeftovers(t, h.dir)...); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
}

// TestIntegrationQcow2WithTgtdInNetns: exports mounted after tgtd started
// in a site's network namespace are visible to it (it shares the mount
// namespace).
func TestIntegrationQcow2WithTgtdInNetns(t *testing.T) {
	needQcow2(t)
	needTgt(t, "ip", "nsenter", "iscsi-readcapacity16")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns := fmt.Sprintf("mtgtq-%d", os.Getpid())
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.CommandContext(ctx, "ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	dir, err := os.MkdirTemp("", "mtgt")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	tg, err := iscsi.StartDaemon(ctx, iscsi.DaemonConfig{Dir: filepath.Join(dir, "tgtd"), Portal: "127.0.0.1:3260", Netns: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tg.Stop(ctx); err != nil {
			t.Error(err)
		}
	}()
	drv, err := iscsi.New(ctx, iscsi.Config{Dir: filepath.Join(dir, "vols"), Portal: "127.0.0.1:3260", Mgmt: tg.Mgmt(), Backend: iscsi.BackendQcow2})
	if err != nil {
		t.Fatal(err)
	}
	const ini = "iqn.2026-11.org.musubi:test:nsq"
	v, err := drv.Ensure(ctx, provision.VolumeSpec{VC: "vc1", Node: "n1", Image: writeImage(t, t.TempDir(), 32<<20), InitiatorName: ini})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "iscsi-readcapacity16", "-i", ini, lunURL(v, v.CHAPUser, v.CHAPSecret)).CombinedOutput()
	if want := fmt.Sprintf("RETURNED LOGICAL BLOCK ADDRESS:%d", 32<<20/512-1); err != nil || !strings.Contains(string(out), want) {
		t.Fatalf("capacity seen from the namespace (want %q): %v\n%s", want, err, out)
	}
	if err := drv.Remove(ctx, v.Name); err != nil {
		t.Fatal(err)
	}
	if left := exportLeftovers(t, dir); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
}
