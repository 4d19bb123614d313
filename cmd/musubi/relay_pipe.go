package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

func init() {
	register(&command{name: "relay-pipe", short: "connect stdin/stdout to a unix socket (QEMU guests' ZooKeeper relay)", run: runRelayPipe})
}

const relayPipeSynopsis = `relay-pipe SOCKET

Copies standard input to the unix socket SOCKET and the socket's data to
standard output until either side closes. The provisioner gives it to QEMU
as the command of a guest forward (guestfwd ... cmd:), so that a guest's
agent reaches the ZooKeeper relay (node/zkrelay) over its control NIC.

Flags:`

func runRelayPipe(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "relay-pipe", relayPipeSynopsis)
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() != 1 {
		return usageFail(env, "relay-pipe", "give the socket path")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", fs.Arg(0))
	if err != nil {
		return fail(env, "relay-pipe", err, "Is the peer's provisioner (and its ZooKeeper relay) running?")
	}
	defer c.Close()
	in := env.stdin
	if in == nil {
		in = os.Stdin
	}
	// Guest to relay: at the guest's end of input, half-close, so the
	// relay ends the connection and the copy below returns.
	go func() {
		_, _ = io.Copy(c, in)
		if uc, ok := c.(*net.UnixConn); ok {
			_ = uc.CloseWrite()
		}
	}()
	// Relay to guest: its end is the pipe's end. The copy above may still
	// wait on a read of standard input; the process exits with it.
	_, err = io.Copy(env.stdout, c)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintf(env.stderr, "musubi relay-pipe: %v\n", err)
		return exitFailure
	}
	return exitOK
}
