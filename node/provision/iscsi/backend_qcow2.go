package iscsi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/provision"
)

// qcow2Backend keeps each clone as a qcow2 overlay <dir>/<vc>/<node>.qcow2
// whose backing file is the (raw) application image, so a clone costs a few
// hundred KiB whatever the image's size and the filesystem. tgt cannot
// serve qcow2 (its qcow2 backing-store type is refused), so one
// qemu-storage-daemon per volume exports the overlay as a raw file through
// FUSE at <node>.fuse, and tgt serves that file. The daemon runs detached
// (--daemonize, pid in <node>.qsd.pid), so it outlives a peer restart like
// tgtd does; a volume whose export is gone (host reboot, daemon killed) is
// exported again by the next Ensure, which also re-adds its LUN.
//
// The FUSE mount lives in the mount namespace qemu-storage-daemon runs in:
// tgtd must share it (Daemon enters only the network namespace of a site).
type qcow2Backend struct {
	dir string
	run Runner
	// mounted reports whether a path is a mount point (isMounted; tests
	// replace it).
	mounted func(path string) (bool, error)
}

const (
	qcowSuffix = ".qcow2"
	fuseSuffix = ".fuse"
	qsdPidSfx  = ".qsd.pid"
)

func (b *qcow2Backend) name() string { return BackendQcow2 }

func (b *qcow2Backend) file(vc, node, suffix string) string {
	return filepath.Join(b.dir, vc, node+suffix)
}

func (b *qcow2Backend) path(vc, node string) string { return b.file(vc, node, fuseSuffix) }

func (b *qcow2Backend) ensure(ctx context.Context, image, vc, node string, size int64) (int64, bool, error) {
	q, m := b.file(vc, node, qcowSuffix), b.path(vc, node)
	fresh := false
	if _, err := os.Stat(q); errors.Is(err, fs.ErrNotExist) {
		fi, err := os.Stat(image)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return 0, false, fmt.Errorf("%w: image %s", provision.ErrNotFound, image)
		case err != nil:
			return 0, false, fmt.Errorf("%w: image: %v", ErrBackend, err)
		case !fi.Mode().IsRegular():
			return 0, false, fmt.Errorf("%w: image %s is not a regular file", provision.ErrInvalid, image)
		}
		if size == 0 {
			size = fi.Size()
		}
		if size < fi.Size() {
			return 0, false, fmt.Errorf("%w: size %d is smaller than the image (%d bytes)", provision.ErrInvalid, size, fi.Size())
		}
		if err := os.MkdirAll(filepath.Dir(q), 0o700); err != nil {
			return 0, false, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		part := q + ".part"
		_ = os.Remove(part)
		if _, err := b.run.Run(ctx, nil, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", image, part, strconv.FormatInt(size, 10)); err != nil {
			_ = os.Remove(part)
			return 0, false, fmt.Errorf("%w: qemu-img create: %w", ErrBackend, err)
		}
		if err := os.Chmod(part, 0o600); err != nil {
			return 0, false, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		if err := os.Rename(part, q); err != nil {
			_ = os.Remove(part)
			return 0, false, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		fresh = true
	} else if err != nil {
		return 0, false, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	fi, up, err := b.exported(m)
	if err != nil {
		return 0, false, err
	}
	if !up {
		if err := b.export(ctx, vc, node); err != nil {
			return 0, false, err
		}
		fresh = true
		if fi, up, err = b.exported(m); err != nil {
			return 0, false, err
		} else if !up {
			return 0, false, fmt.Errorf("%w: %s not usable after exporting it again", ErrBackend, m)
		}
	}
	return fi.Size(), fresh, nil
}

// exported reports whether the FUSE export at m is mounted and answers
// (a killed daemon leaves a mount that fails with ENOTCONN).
func (b *qcow2Backend) exported(m string) (os.FileInfo, bool, error) {
	up, err := b.mounted(m)
	if err != nil || !up {
		return nil, false, err
	}
	fi, err := os.Stat(m)
	if err != nil {
		return nil, false, nil
	}
	return fi, true, nil
}

// export starts the volume's qemu-storage-daemon (after stopping a stale
// one) and checks that the FUSE file is mounted.
func (b *qcow2Backend) export(ctx context.Context, vc, node string) error {
	q, m, pidf := b.file(vc, node, qcowSuffix), b.path(vc, node), b.file(vc, node, qsdPidSfx)
	if err := b.stopDaemon(ctx, vc, node); err != nil {
		return err
	}
	f, err := os.OpenFile(m, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("%w: mount point: %v", ErrBackend, err)
	}
	_ = f.Close()
	if _, err := b.run.Run(ctx, nil, "qemu-storage-daemon", "--daemonize", "--pidfile", pidf,
		"--blockdev", "driver=file,node-name=f0,filename="+q,
		"--blockdev", "driver=qcow2,node-name=q0,file=f0",
		"--export", "type=fuse,id=e0,node-name=q0,mountpoint="+m+",writable=on"); err != nil {
		return fmt.Errorf("%w: qemu-storage-daemon: %w", ErrBackend, err)
	}
	if _, up, err := b.exported(m); err != nil {
		return err
	} else if !up {
		return fmt.Errorf("%w: qemu-storage-daemon started but %s is not mounted", ErrBackend, m)
	}
	return nil
}

// stopDaemon ends the volume's qemu-storage-daemon, if it runs, and makes
// sure its FUSE mount is gone.
func (b *qcow2Backend) stopDaemon(ctx context.Context, vc, node string) error {
	m, pidf := b.path(vc, node), b.file(vc, node, qsdPidSfx)
	if raw, err := os.ReadFile(pidf); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && isProc(pid, "qemu-storage") {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			deadline := time.Now().Add(5 * time.Second)
			for isProc(pid, "qemu-storage") {
				if time.Now().After(deadline) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					deadline = time.Now().Add(5 * time.Second)
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("%w: qemu-storage-daemon %d: %w", ErrBackend, pid, ctx.Err())
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}
	if err := os.Remove(pidf); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrBackend, err)
	}
	up, err := b.mounted(m)
	if err != nil {
		return err
	}
	if up {
		// The daemon died without unmounting (SIGKILL).
		if _, err := b.run.Run(ctx, nil, "umount", "-l", m); err != nil {
			return fmt.Errorf("%w: umount %s: %w", ErrBackend, m, err)
		}
	}
	return nil
}

func (b *qcow2Backend) remove(ctx context.Context, vc, node string) error {
	if err := b.stopDaemon(ctx, vc, node); err != nil {
		return err
	}
	var errs []error
	for _, sfx := range []string{qcowSuffix, qcowSuffix + ".part", fuseSuffix} {
		if err := os.Remove(b.file(vc, node, sfx)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrBackend, err)
	}
	return nil
}

func (b *qcow2Backend) list(_ context.Context) ([]clone, error) {
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
		seen := map[string]bool{}
		for _, f := range files {
			n := f.Name()
			var node string
			var ok bool
			for _, sfx := range []string{qcowSuffix + ".part", qcowSuffix, fuseSuffix, qsdPidSfx} {
				if node, ok = strings.CutSuffix(n, sfx); ok {
					break
				}
			}
			if !ok || seen[node] || coord.ValidName(node) != nil {
				continue
			}
			seen[node] = true
			c := clone{vc: d.Name(), node: node, path: b.path(d.Name(), node)}
			if _, err := os.Stat(b.file(d.Name(), node, qcowSuffix)); err != nil {
				c.size = -1 // only leftovers of a clone
			} else if up, err := b.mounted(c.path); err != nil {
				return nil, err
			} else if !up {
				c.problem = "overlay not exported"
			} else if fi, err := os.Stat(c.path); err == nil {
				c.size = fi.Size()
			} else {
				c.problem = "overlay export unreadable: " + err.Error()
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// isMounted reports whether path is a mount point in this process's mount
// namespace (from /proc/self/mountinfo).
func isMounted(path string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == path {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("%w: mountinfo: %v", ErrBackend, err)
	}
	return false, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isProc reports whether pid is a live (not zombie) process whose command
// name starts with comm.
func isProc(pid int, comm string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i || len(s) < j+3 {
		return false
	}
	return strings.HasPrefix(s[i+1:j], comm) && s[j+2] != 'Z'
}
