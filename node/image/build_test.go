package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// hostReady skips a test when the host lacks what a build reads.
func hostReady(t *testing.T) {
	t.Helper()
	for _, p := range []string{"dpkg-query", "mke2fs", "debugfs", "e2fsck", "ldd"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install e2fsprogs dpkg libc-bin)", p)
		}
	}
	if err := StaticELF(DefaultBusybox); err != nil {
		t.Skipf("skipping: %v (apt-get install busybox-static)", err)
	}
	_, rel, err := kernelOf(context.Background(), ExecRunner{}, DefaultKernelPackage)
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	f, err := os.Open("/boot/vmlinuz-" + rel)
	if err != nil {
		t.Skipf("skipping: %v (Debian's kernels are readable by root only)", err)
	}
	f.Close()
}

func payload() []string {
	if _, err := os.Stat("/usr/bin/vina"); err == nil {
		return []string{"/usr/bin/vina"}
	}
	return nil
}

// Two builds of the same inputs give the same bytes; the manifest records
// the inputs and matches the outputs.
func TestBuildIsReproducible(t *testing.T) {
	hostReady(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := Config{Agent: DefaultBusybox, Payload: payload()} // busybox stands in for the static agent
	var ms []*Manifest
	for i := 0; i < 2; i++ {
		t0 := time.Now()
		out := filepath.Join(t.TempDir(), "img")
		m, err := Build(ctx, cfg, out)
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		t.Logf("build %d: %v, id %s", i, time.Since(t0).Round(time.Millisecond), m.ID)
		if _, err := Verify(out); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	if ms[0].ID != ms[1].ID {
		for i := range ms[0].Outputs {
			t.Logf("%s: %s vs %s", ms[0].Outputs[i].Name, ms[0].Outputs[i].SHA256, ms[1].Outputs[i].SHA256)
		}
		t.Fatalf("two builds differ: %s vs %s", ms[0].ID, ms[1].ID)
	}
	m := ms[0]
	if m.Kernel.Release == "" || !strings.HasPrefix(m.Kernel.Package, "linux-image-") || m.Kernel.Version == "" {
		t.Errorf("kernel %+v", m.Kernel)
	}
	if !slices.Contains(m.Modules, "virtio_blk") || !slices.Contains(m.Modules, "virtio_net") ||
		slices.Index(m.Modules, "virtio_ring") > slices.Index(m.Modules, "virtio") {
		t.Errorf("modules %v (want virtio_ring before virtio, virtio_blk and virtio_net present)", m.Modules)
	}
	pk := map[string]bool{}
	for _, p := range m.Packages {
		pk[p.Name] = p.Version != ""
	}
	for _, want := range []string{m.Kernel.Package, "busybox-static"} {
		if !pk[want] {
			t.Errorf("packages %+v lack %s", m.Packages, want)
		}
	}
	if len(payload()) > 0 && (!pk["autodock-vina"] || !pk["libc6"]) {
		t.Errorf("packages %+v lack the payload's", m.Packages)
	}
	for _, in := range m.Inputs {
		if len(in.SHA256) != 64 || in.Path == "" || in.Dest == "" {
			t.Errorf("input %+v", in)
		}
	}
}

func TestStoreAddCloneAndVerify(t *testing.T) {
	hostReady(t)
	ctx := context.Background()
	s := Store{Dir: filepath.Join(t.TempDir(), "images")}
	img, err := s.Build(ctx, Config{Agent: DefaultBusybox})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Build(ctx, Config{Agent: DefaultBusybox})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != img.ID {
		t.Fatalf("second build %s, first %s", again.ID, img.ID)
	}
	l, err := s.List()
	if err != nil || len(l) != 1 || l[0].ID != img.ID {
		t.Fatalf("List = %+v, %v", l, err)
	}
	ents, _ := os.ReadDir(s.Dir)
	if len(ents) != 1 {
		t.Fatalf("store holds %d entries, want the one image (no staging leftovers)", len(ents))
	}
	// The initramfs holds the stage-1 init, busybox and the modules.
	f, err := os.Open(img.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	es, err := ReadCpio(zr)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]Entry{}
	for _, e := range es {
		names[e.Name] = e
	}
	for _, n := range []string{"init", "bin/busybox", "dev/console", "lib/modules/virtio_blk.ko", "lib/modules/load.order"} {
		if _, ok := names[n]; !ok {
			t.Errorf("initramfs lacks %s", n)
		}
	}
	// A clone is a private copy: writing it leaves the image alone.
	dst := filepath.Join(t.TempDir(), "node.img")
	if err := s.Clone(ctx, img.ID, dst, 512<<20); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dst)
	if err != nil || st.Size() != 512<<20 {
		t.Fatalf("clone %v %v", st, err)
	}
	w, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("scribble"), 4096); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := Verify(img.Dir); err != nil {
		t.Fatalf("image changed by a write to its clone: %v", err)
	}
	if err := s.Clone(ctx, img.ID, dst, 0); err == nil {
		t.Fatal("Clone over an existing file succeeded")
	}
	// The file system checks clean and holds the node's files.
	out, err := exec.Command("debugfs", "-R", "ls -l /sbin", img.RootDisk).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("musubi-setup")) || !bytes.Contains(out, []byte("init")) {
		t.Fatalf("debugfs ls /sbin: %v\n%s", err, out)
	}
	// A corrupted image is caught.
	if err := os.Chmod(img.Initrd, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img.Initrd, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(img.Dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify of a damaged image: %v", err)
	}
	if err := s.Remove(img.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(img.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Remove: %v", err)
	}
}
