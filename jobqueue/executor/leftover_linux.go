//go:build linux

package executor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// groupRecord is the symlink, in a job's per-run spool directory, that
// records the job's process group while it runs: its target is
// "<pgid>:<leader start time>:<boot id>:<TMPDIR>". A runner that dies
// (SIGKILL) leaves it behind; KillLeftovers reads it.
const groupRecord = "pgid"

// recordGroup writes the group record of a job whose main process (and
// process group leader) is pid; the process is not reaped yet.
func recordGroup(dir string, pid int, tmpDir string) error {
	st, ok := readProcStat(strconv.Itoa(pid))
	if !ok {
		return fmt.Errorf("reading /proc/%d/stat", pid)
	}
	boot := bootID()
	if boot == "" {
		return errors.New("no boot id")
	}
	target := strconv.Itoa(pid) + ":" + strconv.FormatUint(st.start, 10) + ":" + boot + ":" + tmpDir
	return os.Symlink(target, filepath.Join(dir, groupRecord))
}

// bootID is the kernel's boot id: process start times are comparable only
// within one boot.
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})

// KillLeftovers cleans up after a runner that died without cleaning up
// (its agent was killed): for every per-run directory left in spool, it
// kills what is left of that job's process group, then removes the
// directory. Call it before running any job on spool, with no other
// runner using it. It returns how many processes it killed.
//
// The job's main process died with the runner (its parent-death signal),
// but what it started lives on in its process group. A member is killed
// when its group id and start time fit the record and, unless the
// recorded leader itself is still there, when its environment holds the
// job's TMPDIR: process ids are reused, so a group id alone might name
// someone else's processes by now.
func KillLeftovers(spool string, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ents, err := os.ReadDir(spool)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: spool directory: %v", ErrHost, err)
	}
	killed := 0
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !runDirName(e.Name()) {
			continue
		}
		dir := filepath.Join(spool, e.Name())
		if target, err := os.Readlink(filepath.Join(dir, groupRecord)); err == nil {
			pids := leftoverMembers(target)
			for _, pid := range pids {
				if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
					killed++
				}
			}
			if len(pids) > 0 {
				log.Warn("killed processes left by a job of a runner that died", "dir", dir, "pids", pids)
				waitGone(pids, groupKillTimeout)
			}
		}
		if err := removeAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("%w: removing %s: %v", ErrHost, dir, err))
		}
	}
	return killed, errors.Join(errs...)
}

// runDirName reports whether name is a per-run directory's:
// "<job>.<task>.<random digits>" (see makeDirs).
func runDirName(name string) bool {
	parts := strings.Split(name, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// leftoverMembers returns the live processes of the job a group record
// describes (see KillLeftovers).
func leftoverMembers(target string) []int {
	f := strings.SplitN(target, ":", 4)
	if len(f) != 4 || f[2] != bootID() {
		return nil // malformed, or from an earlier boot: nothing of it lives
	}
	pgid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pgid <= 1 {
		return nil
	}
	tmpMark := []byte("TMPDIR=" + f[3] + "\x00")
	leader, ok := readProcStat(f[0])
	leaderAlive := ok && leader.start == start && leader.pgrp == pgid
	var out []int
	for _, pid := range procPIDs() {
		st, ok := readProcStat(strconv.Itoa(pid))
		if !ok || st.zombie() || st.pgrp != pgid || st.start < start {
			continue
		}
		if !leaderAlive {
			env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
			if err != nil || !(bytes.HasPrefix(env, tmpMark) || bytes.Contains(env, append([]byte{0}, tmpMark...))) {
				continue
			}
		}
		out = append(out, pid)
	}
	return out
}

// waitGone waits until none of pids is a live process, up to timeout.
func waitGone(pids []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		alive := false
		for _, pid := range pids {
			if st, ok := readProcStat(strconv.Itoa(pid)); ok && !st.zombie() {
				alive = true
				break
			}
		}
		if !alive || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
