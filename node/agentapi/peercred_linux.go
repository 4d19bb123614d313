//go:build linux

package agentapi

import (
	"fmt"
	"net"
	"syscall"
)

// peerCred returns the credentials of the process at the other end of a
// unix socket connection (SO_PEERCRED: its pid, uid and gid when it
// connected).
func peerCred(c net.Conn) (pid int32, uid, gid uint32, err error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, 0, 0, fmt.Errorf("agentapi: %T is not a unix socket connection", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, 0, 0, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, 0, 0, err
	}
	if serr != nil {
		return 0, 0, 0, fmt.Errorf("agentapi: SO_PEERCRED: %w", serr)
	}
	return cred.Pid, cred.Uid, cred.Gid, nil
}
