//go:build !linux

package agentapi

import (
	"errors"
	"net"
)

// peerCred is only implemented on Linux: elsewhere every connection is
// refused, since the caller cannot be identified.
func peerCred(net.Conn) (pid int32, uid, gid uint32, err error) {
	return 0, 0, 0, errors.New("agentapi: peer credentials are only supported on Linux")
}
