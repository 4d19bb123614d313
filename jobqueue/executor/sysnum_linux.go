//go:build linux && !386 && !arm

package executor

import "syscall"

// System call numbers of the 32-bit id variants.
const (
	sysSetgroups = syscall.SYS_SETGROUPS
	sysSetfsuid  = syscall.SYS_SETFSUID
	sysSetfsgid  = syscall.SYS_SETFSGID
)
