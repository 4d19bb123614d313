package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// scripted is a Runner answering from a table keyed by the command line.
type scripted map[string]string

func (s scripted) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	key := strings.Join(append([]string{name}, args...), " ")
	if out, ok := s[key]; ok {
		if rest, failed := strings.CutPrefix(out, "FAIL:"); failed {
			return nil, fmt.Errorf("%w: %s: %s", ErrCommand, key, rest)
		}
		return []byte(out), nil
	}
	return nil, fmt.Errorf("%w: unexpected command %q", ErrCommand, key)
}

func TestKernelOfResolvesTheMetapackage(t *testing.T) {
	r := scripted{
		"dpkg-query -W -f ${Depends} linux-image-cloud-amd64":                        "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)",
		"dpkg-query -L linux-image-cloud-amd64":                                      "/.\n/usr/share/doc/linux-image-cloud-amd64\n",
		"dpkg-query -L linux-image-6.1.0-56-cloud-amd64":                             "/boot\n/boot/System.map-6.1.0-56-cloud-amd64\n/boot/vmlinuz-6.1.0-56-cloud-amd64\n",
		"dpkg-query -W -f ${Package}\t${Version}\n linux-image-6.1.0-56-cloud-amd64": "linux-image-6.1.0-56-cloud-amd64\t6.1.192-2\n",
	}
	p, rel, err := kernelOf(context.Background(), r, "linux-image-cloud-amd64")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "linux-image-6.1.0-56-cloud-amd64" || p.Version != "6.1.192-2" || rel != "6.1.0-56-cloud-amd64" {
		t.Fatalf("got %+v %q", p, rel)
	}
	r["dpkg-query -W -f ${Depends} linux-image-cloud-amd64"] = "FAIL:no packages found"
	if _, _, err := kernelOf(context.Background(), r, "linux-image-cloud-amd64"); !errors.Is(err, ErrMissing) {
		t.Fatalf("missing kernel package: %v", err)
	}
}

func TestModulesInOrder(t *testing.T) {
	dir := t.TempDir()
	dep := `kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/x.ko.xz:
`
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := modulesInOrder(dir, []string{"virtio_pci", "virtio_blk", "virtio-rng"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range got {
		names = append(names, moduleName(g))
	}
	want := []string{"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk", "virtio_rng"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("order %v, want %v", names, want)
	}
	if _, err := modulesInOrder(dir, []string{"nosuch"}); !errors.Is(err, ErrMissing) {
		t.Fatalf("unknown module: %v", err)
	}
	if _, err := modulesInOrder(dir, []string{"x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("compressed module: %v", err)
	}
}

func TestSharedLibs(t *testing.T) {
	r := scripted{
		"ldd /usr/bin/vina": "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x1)\n" +
			"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n",
		"ldd /bin/busybox": "FAIL:\tnot a dynamic executable",
		"ldd /usr/bin/bad": "\tlibfoo.so.1 => not found\n",
	}
	libs, err := sharedLibs(context.Background(), r, "/usr/bin/vina")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if !reflect.DeepEqual(libs, want) {
		t.Fatalf("libs %v, want %v", libs, want)
	}
	if libs, err := sharedLibs(context.Background(), r, "/bin/busybox"); err != nil || len(libs) != 0 {
		t.Fatalf("static program: %v %v", libs, err)
	}
	if _, err := sharedLibs(context.Background(), r, "/usr/bin/bad"); !errors.Is(err, ErrMissing) {
		t.Fatalf("missing library: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for name, c := range map[string]Config{
		"no agent":       {},
		"relative agent": {Agent: "musubi"},
		"odd payload":    {Agent: "/bin/x", Payload: []string{"/usr/bin/a b"}},
		"unclean":        {Agent: "/bin/../x"},
		"tiny root":      {Agent: "/bin/x", RootSize: 1 << 20},
	} {
		c.setDefaults()
		if err := c.validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if err := StaticELF("/proc/self/status"); !errors.Is(err, ErrInvalid) {
		t.Errorf("StaticELF of a text file: %v", err)
	}
	if uuid := uuidFrom(strings.Repeat("ab", 32)); len(uuid) != 36 || uuid[14] != '4' {
		t.Errorf("uuid %s", uuid)
	}
}
