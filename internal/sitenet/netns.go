package sitenet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// NetnsDir is where iproute2 keeps named network namespaces.
const NetnsDir = "/run/netns"

// AddNetns creates a named network namespace with its loopback up.
func AddNetns(ctx context.Context, name string) error {
	if err := Run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	return Run(ctx, "ip", "-n", name, "link", "set", "lo", "up")
}

// NetnsExists reports whether a named network namespace exists.
func NetnsExists(name string) bool {
	_, err := os.Stat(filepath.Join(NetnsDir, name))
	return err == nil
}

// DeleteNetns deletes a namespace; a missing one is not an error.
func DeleteNetns(ctx context.Context, name string) error {
	if !NetnsExists(name) {
		return nil
	}
	return Run(ctx, "ip", "netns", "delete", name)
}

// ListNetns lists the named network namespaces, sorted.
func ListNetns() ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sitenet: %w", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// NetnsPIDs lists the processes whose network namespace is the named one
// (as `ip netns pids` does: by comparing /proc/<pid>/ns/net with the
// namespace's file).
func NetnsPIDs(name string) ([]int, error) {
	var want unix.Stat_t
	if err := unix.Stat(filepath.Join(NetnsDir, name), &want); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("sitenet: netns %s: %w", name, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("sitenet: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil {
			continue
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// LinkNetns returns, for every interface of namespace ns that is one end
// of a pair (veth), the name of the namespace holding the other end, as
// iproute2 reports it ("link-netns"); ends whose namespace has no name are
// left out.
func LinkNetns(ctx context.Context, ns string) ([]string, error) {
	out, err := Output(ctx, nil, "ip", "-n", ns, "-o", "link", "show")
	if err != nil {
		return nil, err
	}
	var peers []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "link-netns" {
				peers = append(peers, f[i+1])
			}
		}
	}
	return peers, nil
}

// InNetns runs fn on a locked OS thread that has joined the named network
// namespace (/run/netns/<ns>). Sockets opened by fn stay in that namespace.
// The calling goroutine's thread is never switched.
func InNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is returned to the runtime only after it has been
		// switched back; otherwise it dies with this goroutine.
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("sitenet: open own netns: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(filepath.Join(NetnsDir, ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("sitenet: open netns %s: %w", ns, err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("sitenet: setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
