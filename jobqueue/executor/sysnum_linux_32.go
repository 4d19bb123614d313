//go:build linux && (386 || arm)

package executor

import "syscall"

// System call numbers of the 32-bit id variants (the plain ones take 16-bit
// ids on these architectures).
const (
	sysSetgroups = syscall.SYS_SETGROUPS32
	sysSetfsuid  = syscall.SYS_SETFSUID32
	sysSetfsgid  = syscall.SYS_SETFSGID32
)
