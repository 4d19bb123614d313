//go:build integration

package iscsi_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/node/provision"
)

// TestIntegrationFigures measures the driver on a real tgtd with 1 GiB
// images: a sparse one (12 bytes of data) and one holding 128 MiB of data,
// and logs Ensure (clone + target + LUN + account + ACL), repeated Ensure
// and Remove times per volume.
func TestIntegrationFigures(t *testing.T) {
	needTgt(t)
	h := startHost(t)
	d := h.driver(t, h.d.Mgmt())
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const gib = 1 << 30
	sparse := writeImage(t, t.TempDir(), gib)
	dense := writeImage(t, t.TempDir(), gib)
	f, err := os.OpenFile(dense, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i*7 + 1)
	}
	for i := range 128 {
		if _, err := f.WriteAt(chunk, int64(i)<<21); err != nil { // every other MiB of the first 256 MiB
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, img string
		n         int
	}{{"1 GiB sparse image", sparse, 8}, {"1 GiB image with 128 MiB data", dense, 3}} {
		var ensure, again, remove []time.Duration
		var used int64
		for i := range c.n {
			spec := provision.VolumeSpec{VC: "fig", Node: fmt.Sprintf("n%d", i), Image: c.img, InitiatorName: "iqn.2026-11.org.musubi:test:fig"}
			t0 := time.Now()
			v, err := d.Ensure(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			ensure = append(ensure, time.Since(t0))
			spec.CHAPSecret = v.CHAPSecret
			t0 = time.Now()
			if _, err := d.Ensure(ctx, spec); err != nil {
				t.Fatal(err)
			}
			again = append(again, time.Since(t0))
			var st syscall.Stat_t
			if err := syscall.Stat(v.Path, &st); err != nil {
				t.Fatal(err)
			}
			used = st.Blocks * 512
		}
		for i := range c.n {
			t0 := time.Now()
			if err := d.Remove(ctx, fmt.Sprintf("fig/n%d", i)); err != nil {
				t.Fatal(err)
			}
			remove = append(remove, time.Since(t0))
		}
		t.Logf("%s, %d volumes: Ensure (clone+export) median %v max %v; repeated Ensure median %v; Remove median %v; clone allocates %d MiB",
			c.name, c.n, median(ensure), slices.Max(ensure), median(again), median(remove), used>>20)
	}
	if left := h.leftovers(t); len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(10 * time.Microsecond)
}
