// Package zkrelay lets virtual nodes that have no route to the ZooKeeper
// ensemble reach it: the peer serves one unix socket per server, in a
// directory the nodes' agents can open (network-namespace nodes share the
// host's file system), and relays each connection to its server over TCP
// from the peer's own network namespace. Agents list the sockets as
// "unix:/path" servers (coord/zkstore dials them), so their sessions fail
// over between servers as usual, and a node's VC network stays isolated:
// it gains no route anywhere.
//
// The relay carries bytes; it grants nothing. ZooKeeper's ACLs still
// decide what an agent's credentials may read and write (node/vcacl), and
// the sockets are the peer's (mode 0600 under a 0700 directory), so only
// root processes of the host - the agents the peer starts - can use them.
package zkrelay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("zkrelay: invalid configuration")

// DialTimeout bounds the relay's connect to a server.
const DialTimeout = 5 * time.Second

// Config configures a Relay.
type Config struct {
	// Dir holds the sockets (absolute; created with mode 0700). Keep it
	// short: a unix socket path has at most 107 bytes.
	Dir string
	// Servers are the ensemble's client addresses (host:port), in the
	// order agents should try them (this site's first).
	Servers []string
	// Logger receives listener errors and connection counts (default:
	// discard).
	Logger *slog.Logger
}

// Relay serves the sockets.
type Relay struct {
	cfg   Config
	socks []string // socket path per server, in Servers order
	log   *slog.Logger
}

// New validates cfg; it does no I/O.
func New(cfg Config) (*Relay, error) {
	if !filepath.IsAbs(cfg.Dir) || filepath.Clean(cfg.Dir) != cfg.Dir {
		return nil, fmt.Errorf("%w: socket directory %q: want a clean absolute path", ErrConfig, cfg.Dir)
	}
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("%w: no servers", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Relay{cfg: cfg, log: cfg.Logger.With("subsystem", "zkrelay")}
	seen := map[string]bool{}
	for _, s := range cfg.Servers {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			return nil, fmt.Errorf("%w: server %q: want host:port", ErrConfig, s)
		}
		p := filepath.Join(cfg.Dir, SocketName(s))
		if len(p) > 107 {
			return nil, fmt.Errorf("%w: socket path %s is longer than 107 bytes: choose a shorter directory", ErrConfig, p)
		}
		if seen[p] {
			return nil, fmt.Errorf("%w: server %s given twice", ErrConfig, s)
		}
		seen[p] = true
		r.socks = append(r.socks, p)
	}
	return r, nil
}

// SocketName is the file name of a server's socket: stable for an
// address, so a restarted peer serves the same paths its running agents
// already use.
func SocketName(server string) string {
	h := sha256.Sum256([]byte(server))
	return "zk-" + hex.EncodeToString(h[:4]) + ".sock"
}

// Addrs are the servers as agents name them ("unix:/dir/zk-….sock"), in
// Servers order.
func (r *Relay) Addrs() []string {
	out := make([]string, len(r.socks))
	for i, p := range r.socks {
		out[i] = "unix:" + p
	}
	return out
}

// Sockets are the sockets' paths, in Servers order (for QEMU's forwards).
func (r *Relay) Sockets() []string { return append([]string(nil), r.socks...) }

// Run serves every socket until ctx ends, then closes the listeners and
// every relayed connection, removes the sockets and returns once all its
// goroutines have ended. ready, if not nil, is called once every socket
// listens.
func (r *Relay) Run(ctx context.Context, ready func()) error {
	if err := os.MkdirAll(r.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("zkrelay: %w", err)
	}
	if err := os.Chmod(r.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("zkrelay: %w", err)
	}
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	for _, p := range r.socks {
		// A socket left by a killed peer would make Listen fail.
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			closeAll()
			return fmt.Errorf("zkrelay: %w", err)
		}
		ln, err := net.Listen("unix", p)
		if err != nil {
			closeAll()
			return fmt.Errorf("zkrelay: %w", err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(true)
		if err := os.Chmod(p, 0o600); err != nil {
			ln.Close()
			closeAll()
			return fmt.Errorf("zkrelay: %w", err)
		}
		lns = append(lns, ln)
	}
	r.log.Info("relaying ZooKeeper for nodes", "dir", r.cfg.Dir, "servers", len(lns))
	if ready != nil {
		ready()
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			return false
		}
		conns[c] = struct{}{}
		return true
	}
	untrack := func(c net.Conn) {
		mu.Lock()
		delete(conns, c)
		mu.Unlock()
		c.Close()
	}
	for i, ln := range lns {
		server := r.cfg.Servers[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					if ctx.Err() == nil {
						r.log.Warn("relay stopped accepting", "server", server, "err", err)
					}
					return
				}
				if !track(c) {
					c.Close()
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer untrack(c)
					r.relay(ctx, c, server, track, untrack)
				}()
			}
		}()
	}
	<-ctx.Done()
	closeAll()
	mu.Lock()
	for c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	return nil
}

// relay copies between the node's connection c and a new connection to
// server until either side closes.
func (r *Relay) relay(ctx context.Context, c net.Conn, server string, track func(net.Conn) bool, untrack func(net.Conn)) {
	d := net.Dialer{Timeout: DialTimeout}
	up, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		// The agent sees its connection closed and tries the next server.
		r.log.Debug("relay: server unreachable", "server", server, "err", err)
		return
	}
	if !track(up) {
		up.Close()
		return
	}
	defer untrack(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Closing both ends unblocks the other copy at once.
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}
