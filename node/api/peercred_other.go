//go:build !linux

package api

import (
	"errors"
	"net"
)

// peerUID is only implemented on Linux: elsewhere a socket caller is not
// identified and needs a token like any other.
func peerUID(net.Conn) (uint32, error) {
	return 0, errors.New("api: peer credentials are only supported on Linux")
}
