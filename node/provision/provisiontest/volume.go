package provisiontest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/node/provision"
)

// VolumeHarness is one implementation under test, on a host of its own.
type VolumeHarness struct {
	// Driver is the driver under test.
	Driver provision.VolumeDriver
	// Image is an application image the driver can clone, of ImageSize
	// bytes.
	Image     string
	ImageSize int64
	// Reopen returns a new driver over the same host state, as a restarted
	// peer creates it.
	Reopen func(t *testing.T) provision.VolumeDriver
	// Leftovers lists what musubi still has on the host (targets,
	// accounts, files), in any form; it must be empty once every volume
	// is removed.
	Leftovers func(t *testing.T) []string
	// RestartTarget, if set, restarts the target daemon: every target and
	// account is lost, the clones stay.
	RestartTarget func(t *testing.T)
}

const initiator = "iqn.2026-11.org.musubi:test:initiator"

// TestVolumeDriver runs the contract; newHarness gives each subtest a
// fresh host.
func TestVolumeDriver(t *testing.T, newHarness func(t *testing.T) *VolumeHarness) {
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		t.Cleanup(cancel)
		return c
	}
	spec := func(h *VolumeHarness, vc, node string) provision.VolumeSpec {
		return provision.VolumeSpec{VC: vc, Node: node, Image: h.Image, InitiatorName: initiator}
	}
	clean := func(t *testing.T, h *VolumeHarness, d provision.VolumeDriver) {
		t.Helper()
		vs, err := d.List(ctx(t))
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, v := range vs {
			if err := d.Remove(ctx(t), v.Name); err != nil {
				t.Fatalf("Remove(%s): %v", v.Name, err)
			}
		}
		assertEmpty(t, h, d)
	}

	t.Run("InvalidSpecs", func(t *testing.T) {
		h := newHarness(t)
		good := spec(h, "vc1", "n1")
		cases := []struct {
			name string
			mod  func(*provision.VolumeSpec)
			want error
		}{
			{"empty VC", func(s *provision.VolumeSpec) { s.VC = "" }, provision.ErrInvalid},
			{"bad node", func(s *provision.VolumeSpec) { s.Node = "a/b" }, provision.ErrInvalid},
			{"relative image", func(s *provision.VolumeSpec) { s.Image = "img.raw" }, provision.ErrInvalid},
			{"no initiator", func(s *provision.VolumeSpec) { s.InitiatorName = "" }, provision.ErrInvalid},
			{"both initiators", func(s *provision.VolumeSpec) { s.InitiatorAddress = netip.MustParseAddr("10.1.2.3") }, provision.ErrInvalid},
			{"bad IQN", func(s *provision.VolumeSpec) { s.InitiatorName = "iqn.Bad Name" }, provision.ErrInvalid},
			{"short secret", func(s *provision.VolumeSpec) { s.CHAPSecret = "abc" }, provision.ErrInvalid},
			{"secret with comma", func(s *provision.VolumeSpec) { s.CHAPSecret = "abcdefghijkl,mnop" }, provision.ErrInvalid},
			{"negative size", func(s *provision.VolumeSpec) { s.Size = -1 }, provision.ErrInvalid},
			{"smaller than image", func(s *provision.VolumeSpec) { s.Size = h.ImageSize / 2 }, provision.ErrInvalid},
			{"missing image", func(s *provision.VolumeSpec) { s.Image = h.Image + ".missing" }, provision.ErrNotFound},
		}
		for _, c := range cases {
			s := good
			c.mod(&s)
			if _, err := h.Driver.Ensure(ctx(t), s); !errors.Is(err, c.want) {
				t.Errorf("%s: Ensure error %v, want %v", c.name, err, c.want)
			}
		}
		for _, name := range []string{"", "vc1", "vc1/", "/n1", "vc1/n1/x", "vc 1/n1"} {
			if err := h.Driver.Remove(ctx(t), name); !errors.Is(err, provision.ErrInvalid) {
				t.Errorf("Remove(%q) = %v, want ErrInvalid", name, err)
			}
		}
		assertEmpty(t, h, h.Driver)
	})

	t.Run("EnsureCreatesAndIsIdempotent", func(t *testing.T) {
		h := newHarness(t)
		s := spec(h, "vc1", "n1")
		v, err := h.Driver.Ensure(ctx(t), s)
		if err != nil {
			t.Fatalf("Ensure: %v", err)
		}
		if v.Name != "vc1/n1" || v.VC != "vc1" || v.Node != "n1" || !provision.ValidIQN(v.Target) || v.LUN <= 0 ||
			v.Portal == "" || v.CHAPUser == "" || v.Size != h.ImageSize || v.Path == "" || v.Backend == "" || v.InitiatorName != initiator {
			t.Fatalf("Ensure returned %+v", v)
		}
		if !provision.ValidSecret(v.CHAPSecret) {
			t.Fatalf("Ensure returned an unusable secret of %d characters", len(v.CHAPSecret))
		}
		listed := listOne(t, h.Driver, v)
		// Again with the stored secret: nothing changes.
		s.CHAPSecret = v.CHAPSecret
		for i := range 2 {
			v2, err := h.Driver.Ensure(ctx(t), s)
			if err != nil {
				t.Fatalf("Ensure again: %v", err)
			}
			if !reflect.DeepEqual(v2, v) {
				t.Fatalf("Ensure #%d returned %+v, first %+v", i+2, v2, v)
			}
			if again := listOne(t, h.Driver, v); !reflect.DeepEqual(again, listed) {
				t.Fatalf("List changed after a repeated Ensure:\n%+v\nwas\n%+v", again, listed)
			}
		}
		clean(t, h, h.Driver)
	})

	t.Run("SecretRotationAndCallerSecret", func(t *testing.T) {
		h := newHarness(t)
		s := spec(h, "vc1", "n1")
		v1, err := h.Driver.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		// Without the secret, Ensure cannot know the target's: it sets a
		// new one.
		v2, err := h.Driver.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		if v2.CHAPSecret == v1.CHAPSecret || !provision.ValidSecret(v2.CHAPSecret) {
			t.Fatalf("Ensure without a secret kept the old one or returned an unusable one")
		}
		listOne(t, h.Driver, v2)
		s.CHAPSecret = "CallerChosenSecret0123"
		v3, err := h.Driver.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		if v3.CHAPSecret != s.CHAPSecret {
			t.Fatalf("Ensure with a caller's secret returned another one")
		}
		listOne(t, h.Driver, v3)
		clean(t, h, h.Driver)
	})

	t.Run("InitiatorChanges", func(t *testing.T) {
		h := newHarness(t)
		s := spec(h, "vc1", "n1")
		v, err := h.Driver.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		s.CHAPSecret = v.CHAPSecret
		s.InitiatorName = "iqn.2026-11.org.musubi:test:other"
		if v, err = h.Driver.Ensure(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		if got := listOne(t, h.Driver, v); got.InitiatorName != s.InitiatorName || got.InitiatorAddress.IsValid() {
			t.Fatalf("listed initiator %q/%v, want %q", got.InitiatorName, got.InitiatorAddress, s.InitiatorName)
		}
		s.InitiatorName, s.InitiatorAddress = "", netip.MustParseAddr("127.0.0.1")
		if v, err = h.Driver.Ensure(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		if got := listOne(t, h.Driver, v); got.InitiatorName != "" || got.InitiatorAddress != s.InitiatorAddress {
			t.Fatalf("listed initiator %q/%v, want %v", got.InitiatorName, got.InitiatorAddress, s.InitiatorAddress)
		}
		if v.CHAPSecret != s.CHAPSecret {
			t.Fatal("changing the initiator changed the secret")
		}
		clean(t, h, h.Driver)
	})

	t.Run("SizeAndNames", func(t *testing.T) {
		h := newHarness(t)
		s := spec(h, "VC_Upper", "node.with.dots")
		s.Size = 2 * h.ImageSize
		v, err := h.Driver.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		if v.Size != s.Size || !provision.ValidIQN(v.Target) {
			t.Fatalf("Ensure returned size %d target %q", v.Size, v.Target)
		}
		listOne(t, h.Driver, v)
		s.CHAPSecret = v.CHAPSecret
		s.Size = 3 * h.ImageSize
		if _, err := h.Driver.Ensure(ctx(t), s); !errors.Is(err, provision.ErrInvalid) {
			t.Fatalf("Ensure with another size of an existing volume: %v, want ErrInvalid", err)
		}
		// "a.b"/"c" and "a"/"b.c" are different volumes.
		va, err := h.Driver.Ensure(ctx(t), spec(h, "a.b", "c"))
		if err != nil {
			t.Fatal(err)
		}
		vb, err := h.Driver.Ensure(ctx(t), spec(h, "a", "b.c"))
		if err != nil {
			t.Fatal(err)
		}
		if va.Target == vb.Target || va.CHAPUser == vb.CHAPUser || va.Path == vb.Path {
			t.Fatalf("a.b/c and a/b.c share a target, account or path: %+v %+v", va, vb)
		}
		clean(t, h, h.Driver)
	})

	t.Run("ManyVolumesConcurrently", func(t *testing.T) {
		h := newHarness(t)
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for _, vc := range []string{"vc1", "vc2"} {
			for _, n := range []string{"n1", "n2", "n3"} {
				wg.Go(func() {
					if _, err := h.Driver.Ensure(ctx(t), spec(h, vc, n)); err != nil {
						errs <- fmt.Errorf("ensure %s/%s: %w", vc, n, err)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		vs, err := h.Driver.List(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		targets, users := map[string]bool{}, map[string]bool{}
		for _, v := range vs {
			if !v.Complete() {
				t.Errorf("%s incomplete: %v", v.Name, v.Problems)
			}
			targets[v.Target], users[v.CHAPUser] = true, true
		}
		if len(vs) != 6 || len(targets) != 6 || len(users) != 6 {
			t.Fatalf("listed %d volumes, %d targets, %d accounts; want 6 each", len(vs), len(targets), len(users))
		}
		for _, n := range []string{"n1", "n2", "n3"} {
			if err := h.Driver.Remove(ctx(t), "vc1/"+n); err != nil {
				t.Fatal(err)
			}
		}
		if vs, err = h.Driver.List(ctx(t)); err != nil || len(vs) != 3 || vs[0].VC != "vc2" {
			t.Fatalf("after removing vc1: %d volumes (%v)", len(vs), err)
		}
		clean(t, h, h.Driver)
	})

	t.Run("RemoveIsIdempotent", func(t *testing.T) {
		h := newHarness(t)
		v, err := h.Driver.Ensure(ctx(t), spec(h, "vc1", "n1"))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := h.Driver.Remove(ctx(t), v.Name); err != nil {
				t.Fatalf("Remove: %v", err)
			}
		}
		if err := h.Driver.Remove(ctx(t), "never/existed"); err != nil {
			t.Fatalf("Remove of a missing volume: %v", err)
		}
		assertEmpty(t, h, h.Driver)
	})

	t.Run("RestartedPeerReconciles", func(t *testing.T) {
		h := newHarness(t)
		v1, err := h.Driver.Ensure(ctx(t), spec(h, "vc1", "n1"))
		if err != nil {
			t.Fatal(err)
		}
		v2, err := h.Driver.Ensure(ctx(t), spec(h, "vc1", "n2"))
		if err != nil {
			t.Fatal(err)
		}
		before, err := h.Driver.List(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		d := h.Reopen(t)
		after, err := d.List(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(after, before) {
			t.Fatalf("a new driver lists\n%+v\nthe old one\n%+v", after, before)
		}
		s := spec(h, "vc1", "n1")
		s.CHAPSecret = v1.CHAPSecret
		if again, err := d.Ensure(ctx(t), s); err != nil || again.CHAPSecret != v1.CHAPSecret {
			t.Fatalf("Ensure on the new driver: %v (secret kept: %v)", err, again.CHAPSecret == v1.CHAPSecret)
		}
		if err := d.Remove(ctx(t), v2.Name); err != nil {
			t.Fatal(err)
		}
		clean(t, h, d)
	})

	t.Run("TargetDaemonRestart", func(t *testing.T) {
		h := newHarness(t)
		if h.RestartTarget == nil {
			t.Skip("the harness cannot restart its target daemon")
		}
		s := spec(h, "vc1", "n1")
		v, err := h.Driver.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		h.RestartTarget(t)
		vs, err := h.Driver.List(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 1 || vs[0].Complete() {
			t.Fatalf("after the target daemon's restart List = %+v, want one incomplete volume", vs)
		}
		s.CHAPSecret = v.CHAPSecret
		again, err := h.Driver.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		if again.CHAPSecret != v.CHAPSecret {
			t.Fatal("the restored target has another secret")
		}
		listOne(t, h.Driver, again)
		clean(t, h, h.Driver)
	})
}

// listOne checks that List holds exactly v, complete and without secret,
// and returns the listed entry.
func listOne(t *testing.T, d provision.VolumeDriver, v provision.Volume) provision.Volume {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vs, err := d.List(c)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(vs) != 1 {
		t.Fatalf("List = %+v, want only %s", vs, v.Name)
	}
	got := vs[0]
	if got.CHAPSecret != "" {
		t.Fatal("List reported a secret")
	}
	if !got.Complete() {
		t.Fatalf("%s listed with problems %v", got.Name, got.Problems)
	}
	want := v
	want.CHAPSecret = ""
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List reports\n%+v\nEnsure returned\n%+v", got, want)
	}
	return got
}

func assertEmpty(t *testing.T, h *VolumeHarness, d provision.VolumeDriver) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vs, err := d.List(c)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(vs) != 0 {
		t.Fatalf("volumes left: %+v", vs)
	}
	if h.Leftovers != nil {
		if left := h.Leftovers(t); len(left) != 0 {
			t.Fatalf("left on the host: %v", left)
		}
	}
}
