//go:build integration

package nodesync

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// TestBindMountedHostsFile: /etc/hosts bind-mounted into a container
// cannot be replaced by a rename (EBUSY); WriteManaged rewrites it in
// place, so the new content reaches the file behind the mount. Needs root;
// the mount lives in a private mount namespace of one locked thread.
func TestBindMountedHostsFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: bind mounts need root")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "outside-hosts")
	dst := filepath.Join(dir, "etc", "hosts")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	foreign := "127.0.0.1\tlocalhost\n# written by the container runtime\n"
	if err := os.WriteFile(src, []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	block := RenderHosts([]HostEntry{{IP: netip.MustParseAddr("10.0.0.1"), Names: []string{"n1"}}})
	type result struct {
		renameErr error
		changed   bool
		err       error
		seen      string
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and its
		// mount namespace with it.
		runtime.LockOSThread()
		var r result
		defer func() { done <- r }()
		if r.err = syscall.Unshare(syscall.CLONE_NEWNS); r.err != nil {
			return
		}
		if r.err = syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); r.err != nil {
			return
		}
		if r.err = syscall.Mount(src, dst, "", syscall.MS_BIND, ""); r.err != nil {
			return
		}
		tmp := filepath.Join(filepath.Dir(dst), "probe")
		if r.err = os.WriteFile(tmp, nil, 0o644); r.err != nil {
			return
		}
		r.renameErr = os.Rename(tmp, dst)
		os.Remove(tmp)
		r.changed, r.err = WriteManaged(dst, block)
		data, _ := os.ReadFile(dst)
		r.seen = string(data)
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("WriteManaged on a bind mount: %v", r.err)
	}
	if !errors.Is(r.renameErr, syscall.EBUSY) {
		t.Errorf("rename onto the bind mount: %v, want EBUSY (the case the fallback is for)", r.renameErr)
	}
	want := foreign + string(block)
	if !r.changed || r.seen != want {
		t.Errorf("inside the namespace: changed %v, content %q", r.changed, r.seen)
	}
	if data, _ := os.ReadFile(src); string(data) != want {
		t.Errorf("the file behind the mount: %q, want %q", data, want)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 1 {
		t.Errorf("files left beside the mount: %v", entries)
	}
}
