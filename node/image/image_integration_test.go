//go:build integration

package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The real thing: an image with the statically built musubi and AutoDock
// Vina, whose root file system, mounted read-only and entered with chroot,
// runs both (the payload's libraries resolve inside the image).
func TestImageRunsItsPrograms(t *testing.T) {
	hostReady(t)
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root (loop mount, chroot)")
	}
	if len(payload()) == 0 {
		t.Skip("skipping: autodock-vina not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	agent, lean := filepath.Join(dir, "musubi"), filepath.Join(dir, "musubi-sge")
	_, file, _, _ := runtime.Caller(0)
	for out, pkg := range map[string]string{agent: "./cmd/musubi", lean: "./cmd/musubi-sge"} {
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
		build.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := build.CombinedOutput(); err != nil {
			t.Skipf("skipping: cannot build %s statically here: %v\n%s", pkg, err, msg)
		}
	}
	m, err := Build(ctx, Config{Agent: agent, SGE: lean, Payload: payload()}, filepath.Join(dir, "img"))
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop,ro", filepath.Join(dir, "img", RootFile), mnt).CombinedOutput(); err != nil {
		t.Skipf("skipping: loop mount: %v: %s", err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	}()
	for _, c := range [][]string{
		{"/usr/bin/vina", "--version"},
		{AgentPath, "version"},
		{"/bin/sh", "-c", "test -x /sbin/init && test -x /sbin/musubi-setup && echo ok"},
		// The Grid Engine commands: symlinks to the lean binary.
		{"/bin/sh", "-c", "readlink /usr/bin/qsub && readlink /usr/bin/qacct"},
		{"/usr/bin/qsub", "-help"},
	} {
		out, err := exec.CommandContext(ctx, "chroot", append([]string{mnt}, c...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("chroot %v: %v\n%s", c, err, out)
		}
		t.Logf("%s: %s", c[0], strings.TrimSpace(string(out)))
		if c[0] == "/bin/sh" && strings.Contains(c[2], "readlink") && string(out) != "musubi-sge\nmusubi-sge\n" {
			t.Errorf("qsub, qacct link to %q, want musubi-sge", out)
		}
	}
	t.Logf("image %s: %d inputs from %d packages", m.ID, len(m.Inputs), len(m.Packages))
}
