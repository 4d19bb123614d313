//go:build linux

package executor

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// asUser runs fn on a dedicated OS thread whose current directory is private
// (unshare CLONE_FS) and, when cred is not nil, whose file-system identity
// (fsuid, fsgid, supplementary groups) is cred's, so that every path fn
// opens is checked with the job user's permissions and files it creates
// belong to the user. Linux keeps these credentials per thread; the thread
// is never unlocked and therefore exits with the goroutine, and the Go
// runtime creates no other thread from a locked one, so nothing else ever
// runs with them. asUser waits for fn.
func asUser(cred *syscall.Credential, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread is discarded when this goroutine ends.
		errc <- func() error {
			if err := syscall.Unshare(syscall.CLONE_FS); err != nil {
				return fmt.Errorf("unshare(CLONE_FS): %w", err)
			}
			if cred != nil {
				if err := setThreadFSCred(cred); err != nil {
					return err
				}
			}
			return fn()
		}()
	}()
	return <-errc
}

// setThreadFSCred sets the calling thread's supplementary groups, fsgid and
// fsuid (raw system calls: the libc and Go wrappers apply them to every
// thread of the process).
func setThreadFSCred(cred *syscall.Credential) error {
	groups := cred.Groups
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	if _, _, e := syscall.RawSyscall(sysSetgroups, uintptr(len(groups)), uintptr(p), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	syscall.RawSyscall(sysSetfsgid, uintptr(cred.Gid), 0, 0)
	// setfsgid/setfsuid return the previous id and no error: call again to
	// read back the current one.
	if cur, _, _ := syscall.RawSyscall(sysSetfsgid, uintptr(cred.Gid), 0, 0); uint32(cur) != cred.Gid {
		return fmt.Errorf("setfsgid(%d) failed", cred.Gid)
	}
	syscall.RawSyscall(sysSetfsuid, uintptr(cred.Uid), 0, 0)
	if cur, _, _ := syscall.RawSyscall(sysSetfsuid, uintptr(cred.Uid), 0, 0); uint32(cur) != cred.Uid {
		return fmt.Errorf("setfsuid(%d) failed", cred.Uid)
	}
	return nil
}

const (
	pPID    = 1         // waitid idtype P_PID
	wEXITED = 0x4       // waitid WEXITED
	wNOWAIT = 0x1000000 // waitid WNOWAIT
)

// waitExit blocks until the child pid has exited, without reaping it: its
// pid (and process group id) stays reserved, so the group can still be
// killed safely.
func waitExit(pid int) error {
	var info [128]byte // siginfo_t
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), wEXITED|wNOWAIT, 0, 0)
		switch e {
		case 0:
			return nil
		case syscall.EINTR:
			continue
		default:
			return fmt.Errorf("waitid(%d): %w", pid, e)
		}
	}
}

// killGroup sends sig to the process group pgid; a group that no longer
// exists is not an error.
func killGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pgid)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("kill(-%d, %s): %w", pgid, signalName(sig), err)
	}
	return nil
}

// procStat is what /proc/<pid>/stat tells of a process.
type procStat struct {
	state byte   // R, S, D, Z...
	pgrp  int    // process group id
	start uint64 // start time, in clock ticks after boot
}

func (p procStat) zombie() bool { return p.state == 'Z' || p.state == 'X' }

// readProcStat reads /proc/<pid>/stat; false if the process is gone.
func readProcStat(pid string) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// "pid (comm) state ppid pgrp ... starttime(22) ...": comm may contain
	// anything.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, false
	}
	pgrp, err1 := strconv.Atoi(f[2])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, true
}

// procPIDs lists the processes of the host, from /proc.
func procPIDs() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		name := e.Name()
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		if pid, err := strconv.Atoi(name); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// groupMembers lists the processes of process group pgid that are not
// zombies, from /proc.
func groupMembers(pgid int) []int {
	var pids []int
	for _, pid := range procPIDs() {
		st, ok := readProcStat(strconv.Itoa(pid))
		if ok && !st.zombie() && st.pgrp == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// groupGone reports whether process group pgid has no member left, not
// even a zombie: kill(-pgid, 0) fails with ESRCH. It is cheap (one system
// call), unlike groupMembers.
func groupGone(pgid int) bool {
	return pgid > 1 && syscall.Kill(-pgid, 0) == syscall.ESRCH
}

// waitGroupGone waits until no live process is left in process group pgid
// (they have been sent SIGKILL, which takes effect when each is next
// scheduled), up to timeout. It returns the processes still alive then.
//
// Call it once the group's leader is reaped: an unreaped leader is a
// member (a zombie) that kill(-pgid, 0) still finds. The group id cannot
// be reused while the group has a member, so the check cannot mistake
// another group for the job's; it only sends signal 0. The common case,
// an empty group, costs one system call; a group with members left is
// polled, and zombies that nobody reaps (orphans of an init that does not
// reap) are told from live processes by reading /proc.
func waitGroupGone(pgid int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	pause := 100 * time.Microsecond
	for i := 0; ; i++ {
		if groupGone(pgid) {
			return nil
		}
		if i >= 3 || time.Now().After(deadline) {
			left := groupMembers(pgid)
			if len(left) == 0 || time.Now().After(deadline) {
				return left
			}
		}
		time.Sleep(pause)
		pause = min(4*pause, 20*time.Millisecond)
	}
}
