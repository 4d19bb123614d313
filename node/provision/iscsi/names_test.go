package iscsi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/musubi-fabric/musubi/node/provision"
)

func TestNames(t *testing.T) {
	cases := []struct{ vc, node, iqn, user string }{
		{"vc1", "n1", "iqn.2026-11.org.musubi:vc1:n1", "musubi:vc1:n1"},
		{"a.b", "c", "iqn.2026-11.org.musubi:a.b:c", "musubi:a.b:c"},
		{"a", "b.c", "iqn.2026-11.org.musubi:a:b.c", "musubi:a:b.c"},
		{"VC_1", "n-1", "iqn.2026-11.org.musubi:-kzbv6mi:n-1", "musubi:-kzbv6mi:n-1"},
	}
	for _, c := range cases {
		if got := TargetIQN(c.vc, c.node); got != c.iqn || !provision.ValidIQN(got) {
			t.Errorf("TargetIQN(%s, %s) = %q, want %q", c.vc, c.node, got, c.iqn)
		}
		if got := CHAPUser(c.vc, c.node); got != c.user {
			t.Errorf("CHAPUser(%s, %s) = %q, want %q", c.vc, c.node, got, c.user)
		}
		if vc, node, ok := ParseTargetIQN(c.iqn); !ok || vc != c.vc || node != c.node {
			t.Errorf("ParseTargetIQN(%q) = %q %q %v", c.iqn, vc, node, ok)
		}
		if vc, node, ok := ParseCHAPUser(c.user); !ok || vc != c.vc || node != c.node {
			t.Errorf("ParseCHAPUser(%q) = %q %q %v", c.user, vc, node, ok)
		}
	}
	for _, bad := range []string{"iqn.x:other", "iqn.2026-11.org.musubi:onlyvc", "iqn.2026-11.org.musubi:-!!:n", "iqn.2026-11.org.musubi:Upper:n"} {
		if _, _, ok := ParseTargetIQN(bad); ok {
			t.Errorf("ParseTargetIQN(%q) accepted", bad)
		}
	}
	long := strings.Repeat("X", 63)
	if err := checkNames(long, long); !errors.Is(err, provision.ErrInvalid) {
		t.Errorf("two 63-byte escaped names: %v, want ErrInvalid (IQN too long)", err)
	}
}

func FuzzNamesRoundTrip(f *testing.F) {
	f.Add("vc1", "n1")
	f.Add("VC_x", "a.b-c")
	f.Fuzz(func(t *testing.T, vc, node string) {
		if provision.VolumeSpec.Validate(provision.VolumeSpec{VC: vc, Node: node, Image: "/i", InitiatorName: "iqn.a.b"}) != nil {
			return
		}
		v, n, ok := ParseTargetIQN(TargetIQN(vc, node))
		if !ok || v != vc || n != node {
			t.Fatalf("%q/%q -> %q -> %q/%q %v", vc, node, TargetIQN(vc, node), v, n, ok)
		}
	})
}

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		s, err := NewSecret(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != SecretLen || !provision.ValidSecret(s) || seen[s] {
			t.Fatalf("secret %d chars valid=%v repeated=%v", len(s), provision.ValidSecret(s), seen[s])
		}
		seen[s] = true
	}
	// Bytes >= 248 are rejected, so a reader of 0xff then 0x00 yields 'A's.
	r := bytes.NewReader(append(bytes.Repeat([]byte{0xff}, 48), make([]byte, 48)...))
	s, err := NewSecret(r)
	if err != nil || s != strings.Repeat("A", SecretLen) {
		t.Fatalf("NewSecret(scripted) = %q %v", s, err)
	}
	if _, err := NewSecret(bytes.NewReader(nil)); err == nil {
		t.Fatal("NewSecret from an empty reader succeeded")
	}
}

func TestDetectDeviceMapper(t *testing.T) {
	ctx := context.Background()
	ctl := filepath.Join(t.TempDir(), "control")
	ok := &recRunner{answer: func(string, []string) ([]byte, error) {
		return []byte("Library version:   1.02.185\nDriver version:    4.48.0\n"), nil
	}}
	if err := DetectDeviceMapper(ctx, ok, ctl); err == nil {
		t.Fatal("detected without a control node")
	}
	if err := os.WriteFile(ctl, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := DetectDeviceMapper(ctx, ok, ctl); err != nil {
		t.Fatalf("control node and driver version: %v", err)
	}
	// This machine's case: the node exists, the kernel has no driver.
	noDriver := &recRunner{answer: func(string, []string) ([]byte, error) {
		return []byte("Library version:   1.02.185\n"), &CommandError{Name: "dmsetup", Err: errors.New("exit status 1"),
			Stderr: "/dev/mapper/control: open failed: No such device"}
	}}
	if err := DetectDeviceMapper(ctx, noDriver, ctl); err == nil {
		t.Fatal("detected although dmsetup failed")
	}
	libOnly := &recRunner{answer: func(string, []string) ([]byte, error) { return []byte("Library version: 1\n"), nil }}
	if err := DetectDeviceMapper(ctx, libOnly, ctl); err == nil {
		t.Fatal("detected without a kernel driver version")
	}
	// The host itself, for the record.
	t.Logf("this host: device-mapper usable: %v", DetectDeviceMapper(ctx, ExecRunner{}, DefaultDMControl))
}

func TestBackendSelection(t *testing.T) {
	ctx := context.Background()
	ctl := filepath.Join(t.TempDir(), "control")
	if err := os.WriteFile(ctl, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dmOK := &recRunner{answer: func(string, []string) ([]byte, error) { return []byte("Driver version: 4.48.0\n"), nil }}
	dmBad := &recRunner{answer: func(string, []string) ([]byte, error) { return nil, errors.New("no dm") }}
	base := Config{Dir: t.TempDir(), Portal: "127.0.0.1:3260", Mgmt: Socket{Path: "/nonexistent"}, DMControl: ctl}
	for _, c := range []struct {
		backend, vg string
		run         Runner
		want        string
		wantErr     bool
	}{
		{"", "", dmOK, BackendFile, false},
		{"", "vg0", dmOK, BackendLVM, false},
		{"", "vg0", dmBad, BackendFile, false},
		{BackendLVM, "vg0", dmBad, "", true},
		{BackendLVM, "", dmOK, "", true},
		{BackendFile, "vg0", dmOK, BackendFile, false},
		{"zfs", "", dmOK, "", true},
	} {
		cfg := base
		cfg.Backend, cfg.VolumeGroup, cfg.Runner = c.backend, c.vg, c.run
		d, err := New(ctx, cfg)
		if c.wantErr {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("%+v: err %v, want ErrConfig", c, err)
			}
			continue
		}
		if err != nil || d.Backend() != c.want {
			t.Errorf("backend %q vg %q: got %v %v, want %s", c.backend, c.vg, d, err, c.want)
		}
	}
}

// lvmHost scripts lvs/lvcreate/lvremove over an in-memory volume group.
type lvmHost struct {
	lvs map[string]string // name -> "tags|size"
}

func (h *lvmHost) answer(name string, args []string) ([]byte, error) {
	switch name {
	case "lvs":
		var b strings.Builder
		for n, rest := range h.lvs {
			fmt.Fprintf(&b, "  %s|%s\n", n, rest)
		}
		return []byte(b.String()), nil
	case "lvcreate":
		var lv, tag, size string
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "--name":
				lv = args[i+1]
			case "--addtag":
				tag = args[i+1]
			case "--size":
				size = strings.TrimSuffix(args[i+1], "b")
			}
		}
		h.lvs[lv] = tag + "|" + size
	case "lvremove":
		_, lv, _ := strings.Cut(args[len(args)-1], "/")
		delete(h.lvs, lv)
	}
	return nil, nil
}

// The LVM backend is untested against real LVM (no device-mapper here):
// this checks the commands it issues and how it reads lvs.
func TestLVMBackendCommands(t *testing.T) {
	ctx := context.Background()
	host := &lvmHost{lvs: map[string]string{"app": "|1073741824"}}
	rr := &recRunner{answer: host.answer}
	b := &lvmBackend{vg: "vg0", run: rr}
	size, fresh, err := b.ensure(ctx, "/dev/vg0/app", "vc1", "n1", 0)
	if err != nil || size != 1<<30 || !fresh {
		t.Fatalf("ensure: %d %v %v", size, fresh, err)
	}
	lvn := lvName("vc1", "n1")
	wantCreate := "lvcreate --snapshot --name " + lvn + " --size 1073741824b --addtag musubi-vol=vc1/n1 --yes vg0/app"
	if !strings.Contains(strings.Join(rr.calls, "\n"), wantCreate) {
		t.Fatalf("calls:\n%s\nwant %s", strings.Join(rr.calls, "\n"), wantCreate)
	}
	if _, fresh, err := b.ensure(ctx, "/dev/vg0/app", "vc1", "n1", 0); err != nil || fresh {
		t.Fatalf("second ensure: fresh %v %v", fresh, err)
	}
	if p := b.path("vc1", "n1"); p != "/dev/vg0/"+lvn {
		t.Fatalf("path %s", p)
	}
	cl, err := b.list(ctx)
	if err != nil || !reflect.DeepEqual(cl, []clone{{vc: "vc1", node: "n1", path: "/dev/vg0/" + lvn, size: 1 << 30}}) {
		t.Fatalf("list: %+v %v", cl, err)
	}
	for _, bad := range []struct {
		img  string
		size int64
		want error
	}{{"/dev/vg1/app", 0, provision.ErrInvalid}, {"/var/app.img", 0, provision.ErrInvalid}, {"/dev/vg0/none", 0, provision.ErrNotFound}, {"/dev/vg0/app", 2 << 30, provision.ErrInvalid}} {
		if _, _, err := b.ensure(ctx, bad.img, "vc1", "n2", bad.size); !errors.Is(err, bad.want) {
			t.Errorf("ensure(%s, %d) = %v, want %v", bad.img, bad.size, err, bad.want)
		}
	}
	rr.calls = nil
	if err := b.remove(ctx, "vc1", "n1"); err != nil {
		t.Fatal(err)
	}
	if err := b.remove(ctx, "vc1", "n1"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rr.calls, "\n"); strings.Count(got, "lvremove --yes vg0/"+lvn) != 1 {
		t.Fatalf("remove calls:\n%s", got)
	}
}

// The qcow2 backend's commands, with qemu-img and qemu-storage-daemon
// scripted (the integration tests run the real ones).
func TestQcow2BackendCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := filepath.Join(t.TempDir(), "app.img")
	if err := os.WriteFile(img, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	mounts := map[string]bool{}
	rr := &recRunner{answer: func(name string, args []string) ([]byte, error) {
		switch name {
		case "qemu-img":
			return nil, os.WriteFile(args[len(args)-2], []byte("QFI"), 0o644)
		case "qemu-storage-daemon":
			for _, a := range args {
				if _, m, ok := strings.Cut(a, "mountpoint="); ok {
					m, _, _ = strings.Cut(m, ",")
					mounts[m] = true
				}
			}
		}
		return nil, nil
	}}
	b := &qcow2Backend{dir: dir, run: rr, mounted: func(p string) (bool, error) { return mounts[p], nil }}
	if _, _, err := b.ensure(ctx, img, "vc1", "n1", 2048); !errors.Is(err, provision.ErrInvalid) {
		t.Fatalf("smaller than the image: %v", err)
	}
	_, fresh, err := b.ensure(ctx, img, "vc1", "n1", 8192)
	if err != nil || !fresh {
		t.Fatalf("ensure: fresh %v %v", fresh, err)
	}
	q := filepath.Join(dir, "vc1", "n1.qcow2")
	want := []string{
		"qemu-img create -q -f qcow2 -F raw -b " + img + " " + q + ".part 8192",
		"qemu-storage-daemon --daemonize --pidfile " + filepath.Join(dir, "vc1", "n1.qsd.pid") +
			" --blockdev driver=file,node-name=f0,filename=" + q + " --blockdev driver=qcow2,node-name=q0,file=f0" +
			" --export type=fuse,id=e0,node-name=q0,mountpoint=" + filepath.Join(dir, "vc1", "n1.fuse") + ",writable=on",
	}
	if !reflect.DeepEqual(rr.calls, want) {
		t.Fatalf("calls:\n%s\nwant\n%s", strings.Join(rr.calls, "\n"), strings.Join(want, "\n"))
	}
	rr.calls = nil
	if _, fresh, err := b.ensure(ctx, img, "vc1", "n1", 0); err != nil || fresh || len(rr.calls) != 0 {
		t.Fatalf("second ensure: fresh %v err %v calls %q", fresh, err, rr.calls)
	}
	cl, err := b.list(ctx)
	if err != nil || len(cl) != 1 || cl[0].problem != "" || cl[0].vc != "vc1" || cl[0].node != "n1" {
		t.Fatalf("list: %+v %v", cl, err)
	}
	// The export vanished: list says so; ensure exports again.
	mounts[b.path("vc1", "n1")] = false
	if cl, _ := b.list(ctx); len(cl) != 1 || cl[0].problem != "overlay not exported" {
		t.Fatalf("list without export: %+v", cl)
	}
	if _, fresh, err := b.ensure(ctx, img, "vc1", "n1", 0); err != nil || !fresh || len(rr.calls) != 1 {
		t.Fatalf("re-export: fresh %v err %v calls %q", fresh, err, rr.calls)
	}
	// remove unmounts what a dead daemon left and deletes the files.
	rr.calls = nil
	if err := b.remove(ctx, "vc1", "n1"); err != nil {
		t.Fatal(err)
	}
	if len(rr.calls) != 1 || !strings.HasPrefix(rr.calls[0], "umount -l ") {
		t.Fatalf("remove calls %q", rr.calls)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "vc1")); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
	if got := unescapeMount(`/a\040b\134c`); got != `/a b\c` {
		t.Fatalf("unescapeMount = %q", got)
	}
}
