package iscsi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/provision"
)

// Backend names.
const (
	BackendFile  = "file"
	BackendLVM   = "lvm"
	BackendQcow2 = "qcow2"
)

// clone is one volume's backing store as a backend sees it.
type clone struct {
	vc, node string
	path     string
	size     int64 // -1: a partial copy
	// problem says what is wrong with a clone that exists ("" if nothing).
	problem string
}

// backend stores the copy-on-write clones tgt serves.
type backend interface {
	name() string
	// path is where vc/node's clone is (or would be).
	path(vc, node string) string
	// ensure creates the clone of image unless it exists and returns its
	// size and whether it made it now. size 0 means the image's size.
	ensure(ctx context.Context, image, vc, node string, size int64) (int64, bool, error)
	// remove deletes the clone (and any half-made one); missing is fine.
	remove(ctx context.Context, vc, node string) error
	// list returns every clone, including half-made ones (size -1).
	list(ctx context.Context) ([]clone, error)
}

// fileBackend keeps each clone as a sparse raw file
// <dir>/<vc>/<node>.img, copied from the image with
// `cp --reflink=auto --sparse=always` (a reflink on filesystems that share
// extents, a hole-preserving copy elsewhere), then grown with truncate.
// A clone is made under <node>.img.part and renamed when complete, so a
// crash never leaves a half-copied volume under the final name.
type fileBackend struct {
	dir string
	run Runner
}

const (
	imgSuffix  = ".img"
	partSuffix = ".img.part"
)

func (b *fileBackend) name() string { return BackendFile }

func (b *fileBackend) path(vc, node string) string {
	return filepath.Join(b.dir, vc, node+imgSuffix)
}

func (b *fileBackend) ensure(ctx context.Context, image, vc, node string, size int64) (int64, bool, error) {
	dst := b.path(vc, node)
	if fi, err := os.Stat(dst); err == nil {
		return fi.Size(), false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, false, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	fi, err := os.Stat(image)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, fmt.Errorf("%w: image %s", provision.ErrNotFound, image)
	} else if err != nil {
		return 0, false, fmt.Errorf("%w: image: %v", ErrBackend, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, false, fmt.Errorf("%w: image %s is not a regular file", provision.ErrInvalid, image)
	}
	if size == 0 {
		size = fi.Size()
	}
	if size < fi.Size() {
		return 0, false, fmt.Errorf("%w: size %d is smaller than the image (%d bytes)", provision.ErrInvalid, size, fi.Size())
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return 0, false, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	part := filepath.Join(filepath.Dir(dst), node+partSuffix)
	_ = os.Remove(part) // a previous attempt's leftover
	if _, err := b.run.Run(ctx, nil, "cp", "--reflink=auto", "--sparse=always", "--", image, part); err != nil {
		_ = os.Remove(part)
		return 0, false, fmt.Errorf("%w: clone %s: %w", ErrBackend, image, err)
	}
	err = os.Chmod(part, 0o600)
	if err == nil && size > fi.Size() {
		err = os.Truncate(part, size)
	}
	if err == nil {
		err = syncFile(part)
	}
	if err == nil {
		err = os.Rename(part, dst)
	}
	if err != nil {
		_ = os.Remove(part)
		return 0, false, fmt.Errorf("%w: clone %s: %v", ErrBackend, image, err)
	}
	return size, true, nil
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (b *fileBackend) remove(_ context.Context, vc, node string) error {
	dir := filepath.Join(b.dir, vc)
	var errs []error
	for _, p := range []string{b.path(vc, node), filepath.Join(dir, node+partSuffix)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrBackend, err)
	}
	return nil
}

func (b *fileBackend) list(_ context.Context) ([]clone, error) {
	vcs, err := os.ReadDir(b.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	var out []clone
	for _, d := range vcs {
		if !d.IsDir() || coord.ValidName(d.Name()) != nil {
			continue
		}
		files, err := os.ReadDir(filepath.Join(b.dir, d.Name()))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		for _, f := range files {
			n := f.Name()
			size := int64(-1)
			node, ok := strings.CutSuffix(n, partSuffix)
			if !ok {
				if node, ok = strings.CutSuffix(n, imgSuffix); !ok {
					continue
				}
				fi, err := f.Info()
				if err != nil {
					continue // removed meanwhile
				}
				size = fi.Size()
			}
			if coord.ValidName(node) != nil {
				continue
			}
			out = append(out, clone{vc: d.Name(), node: node, path: filepath.Join(b.dir, d.Name(), n), size: size})
		}
	}
	return out, nil
}

// lvmBackend keeps each clone as an LVM snapshot of the image's logical
// volume, named "musubi-<hash>" and tagged "musubi-vol=<vc>/<node>". It is
// chosen only where device-mapper works (DetectDeviceMapper); the
// development host has no device-mapper, so this code is exercised only
// against recorded commands, never against a real volume group.
type lvmBackend struct {
	vg  string
	run Runner
}

func (b *lvmBackend) name() string { return BackendLVM }

func lvName(vc, node string) string { return "musubi-" + shortHash(vc+"/"+node) }

func (b *lvmBackend) path(vc, node string) string { return "/dev/" + b.vg + "/" + lvName(vc, node) }

const lvTag = "musubi-vol="

type lv struct {
	name string
	tags []string
	size int64
}

func (b *lvmBackend) lvs(ctx context.Context) ([]lv, error) {
	out, err := b.run.Run(ctx, nil, "lvs", "--noheadings", "--nosuffix", "--units", "b", "--separator", "|",
		"-o", "lv_name,lv_tags,lv_size", b.vg)
	if err != nil {
		return nil, fmt.Errorf("%w: lvs: %w", ErrBackend, err)
	}
	var lvs []lv
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 3 {
			continue
		}
		size, err := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: lvs: size %q", ErrBackend, f[2])
		}
		var tags []string
		if t := strings.TrimSpace(f[1]); t != "" {
			tags = strings.Split(t, ",")
		}
		lvs = append(lvs, lv{name: strings.TrimSpace(f[0]), tags: tags, size: size})
	}
	return lvs, nil
}

func (b *lvmBackend) ensure(ctx context.Context, image, vc, node string, size int64) (int64, bool, error) {
	if sz, ok, err := b.stat(ctx, vc, node); err != nil || ok {
		return sz, false, err
	}
	origin, ok := strings.CutPrefix(image, "/dev/")
	if !ok || strings.Count(origin, "/") != 1 {
		return 0, false, fmt.Errorf("%w: LVM image %q: want /dev/<vg>/<lv>", provision.ErrInvalid, image)
	}
	if vg, _, _ := strings.Cut(origin, "/"); vg != b.vg {
		return 0, false, fmt.Errorf("%w: LVM image %q is not in volume group %s", provision.ErrInvalid, image, b.vg)
	}
	lvs, err := b.lvs(ctx)
	if err != nil {
		return 0, false, err
	}
	_, originLV, _ := strings.Cut(origin, "/")
	i := slices.IndexFunc(lvs, func(l lv) bool { return l.name == originLV })
	if i < 0 {
		return 0, false, fmt.Errorf("%w: image %s", provision.ErrNotFound, image)
	}
	if size == 0 {
		size = lvs[i].size
	}
	if size != lvs[i].size {
		return 0, false, fmt.Errorf("%w: the LVM backend clones at the image's size (%d bytes), not %d", provision.ErrInvalid, lvs[i].size, size)
	}
	// A classic snapshot whose copy-on-write area can hold a full rewrite.
	if _, err := b.run.Run(ctx, nil, "lvcreate", "--snapshot", "--name", lvName(vc, node), "--size", strconv.FormatInt(size, 10)+"b",
		"--addtag", lvTag+vc+"/"+node, "--yes", origin); err != nil {
		return 0, false, fmt.Errorf("%w: lvcreate: %w", ErrBackend, err)
	}
	return size, true, nil
}

func (b *lvmBackend) stat(ctx context.Context, vc, node string) (int64, bool, error) {
	lvs, err := b.lvs(ctx)
	if err != nil {
		return 0, false, err
	}
	for _, l := range lvs {
		if l.name == lvName(vc, node) {
			return l.size, true, nil
		}
	}
	return 0, false, nil
}

func (b *lvmBackend) remove(ctx context.Context, vc, node string) error {
	_, ok, err := b.stat(ctx, vc, node)
	if err != nil || !ok {
		return err
	}
	if _, err := b.run.Run(ctx, nil, "lvremove", "--yes", b.vg+"/"+lvName(vc, node)); err != nil {
		return fmt.Errorf("%w: lvremove: %w", ErrBackend, err)
	}
	return nil
}

func (b *lvmBackend) list(ctx context.Context) ([]clone, error) {
	lvs, err := b.lvs(ctx)
	if err != nil {
		return nil, err
	}
	var out []clone
	for _, l := range lvs {
		for _, t := range l.tags {
			name, ok := strings.CutPrefix(t, lvTag)
			if !ok {
				continue
			}
			vc, node, err := provision.ParseVolumeName(name)
			if err == nil && l.name == lvName(vc, node) {
				out = append(out, clone{vc: vc, node: node, path: b.path(vc, node), size: l.size})
			}
		}
	}
	return out, nil
}

// DefaultDMControl is device-mapper's control node.
const DefaultDMControl = "/dev/mapper/control"

// DetectDeviceMapper reports whether device-mapper is usable on this host:
// its control node exists and `dmsetup version` talks to the kernel. The
// error says why not. control is normally DefaultDMControl.
func DetectDeviceMapper(ctx context.Context, run Runner, control string) error {
	if _, err := os.Stat(control); err != nil {
		return fmt.Errorf("no device-mapper control node: %w", err)
	}
	out, err := run.Run(ctx, nil, "dmsetup", "version")
	if err != nil {
		return fmt.Errorf("dmsetup version failed: %w", err)
	}
	if !strings.Contains(string(out), "Driver version") {
		return fmt.Errorf("dmsetup version: no kernel driver version in %q", strings.TrimSpace(string(out)))
	}
	return nil
}
