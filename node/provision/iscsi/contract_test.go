package iscsi_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/iscsi"
	"github.com/musubi-fabric/musubi/node/provision/iscsi/iscsitest"
	"github.com/musubi-fabric/musubi/node/provision/provisiontest"
)

// writeImage makes a sparse test image with some data at its start.
func writeImage(t *testing.T, dir string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, "app.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("MUSUBI-IMAGE"); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFakeContract(t *testing.T) {
	provisiontest.TestVolumeDriver(t, func(t *testing.T) *provisiontest.VolumeHarness {
		f := iscsitest.NewFake("127.0.0.1:3260")
		return &provisiontest.VolumeHarness{
			Driver: f, Image: writeImage(t, t.TempDir(), 1<<20), ImageSize: 1 << 20,
			Reopen:        func(*testing.T) provision.VolumeDriver { return f },
			RestartTarget: func(*testing.T) { f.RestartTarget() },
		}
	})
}

// TestDriverContractOnFakeTgt runs the real driver (file backend, real cp)
// against the tgtd emulation.
func TestDriverContractOnFakeTgt(t *testing.T) {
	provisiontest.TestVolumeDriver(t, func(t *testing.T) *provisiontest.VolumeHarness {
		tgt := iscsitest.NewFakeTgt()
		dir := filepath.Join(t.TempDir(), "vols")
		open := func(t *testing.T) provision.VolumeDriver {
			d, err := iscsi.New(context.Background(), iscsi.Config{Dir: dir, Portal: "127.0.0.1:3260", Mgmt: tgt, Backend: iscsi.BackendFile})
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		return &provisiontest.VolumeHarness{
			Driver: open(t), Image: writeImage(t, t.TempDir(), 1<<20), ImageSize: 1 << 20,
			Reopen:        open,
			RestartTarget: func(*testing.T) { tgt.Restart() },
			Leftovers: func(t *testing.T) []string {
				left := leftFiles(t, dir)
				out, _ := tgt.Do(context.Background(), iscsi.Request{Mode: iscsi.ModeTarget, Op: iscsi.OpShow})
				if strings.TrimSpace(out) != "" {
					left = append(left, "targets: "+out)
				}
				out, _ = tgt.Do(context.Background(), iscsi.Request{Mode: iscsi.ModeAccount, Op: iscsi.OpShow})
				if strings.TrimSpace(strings.TrimPrefix(out, "Account list:")) != "" {
					left = append(left, out)
				}
				return left
			},
		}
	})
}

// leftFiles lists every file and directory under dir (not dir itself).
func leftFiles(t *testing.T, dir string) []string {
	t.Helper()
	var left []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if p != dir {
			left = append(left, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return left
}
