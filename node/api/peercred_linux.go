//go:build linux

package api

import (
	"fmt"
	"net"
	"syscall"
)

// peerUID returns the uid of the process at the other end of a unix
// socket connection (SO_PEERCRED, as of when it connected).
func peerUID(c net.Conn) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("api: %T is not a unix socket connection", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("api: SO_PEERCRED: %w", serr)
	}
	return cred.Uid, nil
}
