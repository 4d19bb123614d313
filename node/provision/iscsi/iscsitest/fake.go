package iscsitest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/iscsi"
)

// Fake is an in-memory volume driver. Its "host" is the Fake itself: a
// restarted peer keeps using the same value. It reads the image's size from
// the file system, like the file backend, and stores nothing.
type Fake struct {
	portal string

	mu      sync.Mutex
	vols    map[string]*fakeVol
	ensures int
}

type fakeVol struct {
	spec      provision.VolumeSpec
	size      int64
	secret    string
	hasTarget bool // false after RestartTarget, until the next Ensure
}

var _ provision.VolumeDriver = (*Fake)(nil)

// NewFake returns an empty fake whose volumes report portal.
func NewFake(portal string) *Fake {
	return &Fake{portal: portal, vols: map[string]*fakeVol{}}
}

// Secret returns the secret the fake target of name requires ("" if none).
func (f *Fake) Secret(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v := f.vols[name]; v != nil && v.hasTarget {
		return v.secret
	}
	return ""
}

// Ensures counts the successful Ensure calls.
func (f *Fake) Ensures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ensures
}

// RestartTarget forgets every target and account, keeping the clones, as
// a restart of tgtd does.
func (f *Fake) RestartTarget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.vols {
		v.hasTarget = false
	}
}

// Ensure implements provision.VolumeDriver.
func (f *Fake) Ensure(_ context.Context, spec provision.VolumeSpec) (provision.Volume, error) {
	if err := spec.Validate(); err != nil {
		return provision.Volume{}, err
	}
	if iqn := iscsi.TargetIQN(spec.VC, spec.Node); !provision.ValidIQN(iqn) {
		return provision.Volume{}, fmt.Errorf("%w: target name %q", provision.ErrInvalid, iqn)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.vols[spec.Name()]
	if v == nil {
		fi, err := os.Stat(spec.Image)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return provision.Volume{}, fmt.Errorf("%w: image %s", provision.ErrNotFound, spec.Image)
		case err != nil:
			return provision.Volume{}, fmt.Errorf("%w: %v", iscsi.ErrBackend, err)
		case !fi.Mode().IsRegular():
			return provision.Volume{}, fmt.Errorf("%w: image %s is not a regular file", provision.ErrInvalid, spec.Image)
		}
		size := spec.Size
		if size == 0 {
			size = fi.Size()
		}
		if size < fi.Size() {
			return provision.Volume{}, fmt.Errorf("%w: size %d is smaller than the image", provision.ErrInvalid, size)
		}
		v = &fakeVol{size: size}
		f.vols[spec.Name()] = v
	}
	if spec.Size != 0 && spec.Size != v.size {
		return provision.Volume{}, fmt.Errorf("%w: volume %s exists with %d bytes", provision.ErrInvalid, spec.Name(), v.size)
	}
	if spec.CHAPSecret == "" || spec.CHAPSecret != v.secret || !v.hasTarget {
		secret := spec.CHAPSecret
		if secret == "" {
			var err error
			if secret, err = iscsi.NewSecret(nil); err != nil {
				return provision.Volume{}, err
			}
		}
		v.secret = secret
	}
	v.spec, v.hasTarget = spec, true
	f.ensures++
	out := f.volume(spec.VC, spec.Node, v)
	out.CHAPSecret = v.secret
	return out, nil
}

func (f *Fake) volume(vc, node string, v *fakeVol) provision.Volume {
	out := provision.Volume{
		Name: provision.VolumeName(vc, node), VC: vc, Node: node,
		Target: iscsi.TargetIQN(vc, node), LUN: iscsi.LUN, Portal: f.portal, CHAPUser: iscsi.CHAPUser(vc, node),
		Backend: "fake", Path: "fake:" + provision.VolumeName(vc, node), Size: v.size,
	}
	if v.hasTarget {
		out.InitiatorName, out.InitiatorAddress = v.spec.InitiatorName, v.spec.InitiatorAddress
	} else {
		out.InitiatorAddress = netip.Addr{}
		out.Problems = []string{"no CHAP account", "no target"}
	}
	return out
}

// Remove implements provision.VolumeDriver.
func (f *Fake) Remove(_ context.Context, name string) error {
	if _, _, err := provision.ParseVolumeName(name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.vols, name)
	return nil
}

// List implements provision.VolumeDriver.
func (f *Fake) List(context.Context) ([]provision.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]provision.Volume, 0, len(f.vols))
	for name, v := range f.vols {
		vc, node, _ := strings.Cut(name, "/")
		out = append(out, f.volume(vc, node, v))
	}
	slices.SortFunc(out, func(a, b provision.Volume) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
