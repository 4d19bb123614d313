package ovstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Forwarder relays TCP connections accepted on a loopback address of the
// test process's own network namespace to a target address, dialled from
// inside a fabric namespace. It lets clients running in the test process
// (a ZooKeeper session, say) reach a server in a site namespace as if they
// ran in a given site: the relayed connection leaves from that site and
// crosses the fabric's WAN like the site's own traffic, so CutLink cuts
// it too. Close stops it and joins every goroutine it started.
type Forwarder struct {
	ns     string
	target string
	ln     net.Listener

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// forwardDialTimeout bounds the dial to the target: an unreachable target
// (a cut link) closes the accepted connection after it.
const forwardDialTimeout = 2 * time.Second

// Forward starts a Forwarder from 127.0.0.1:<free port> to target, dialled
// from the site's namespace.
func (s *Site) Forward(target string) (*Forwarder, error) { return NewForwarder(s.NS, target) }

// NewForwarder starts a Forwarder from 127.0.0.1:<free port> to target,
// dialled from network namespace ns.
func NewForwarder(ns, target string) (*Forwarder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ovstest: forwarder: %w", err)
	}
	f := &Forwarder{ns: ns, target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// Addr is the local address clients connect to (host:port).
func (f *Forwarder) Addr() string { return f.ln.Addr().String() }

// Target is the address connections are relayed to.
func (f *Forwarder) Target() string { return f.target }

func (f *Forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return // closed
		}
		if !f.track(c) {
			_ = c.Close()
			return
		}
		f.wg.Add(1)
		go f.relay(c)
	}
}

// track registers a connection so that Close closes it; false once closed.
func (f *Forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	_ = c.Close()
}

func (f *Forwarder) relay(c net.Conn) {
	defer f.wg.Done()
	defer f.untrack(c)
	var up net.Conn
	err := InNetns(f.ns, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), forwardDialTimeout)
		defer cancel()
		var d net.Dialer
		up, err = d.DialContext(ctx, "tcp", f.target)
		return err
	})
	if err != nil {
		return
	}
	if !f.track(up) {
		_ = up.Close()
		return
	}
	defer f.untrack(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// One direction ended: end both, as a proxy that vanished would.
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	f.wg.Add(2)
	go func() { defer f.wg.Done(); pipe(up, c) }()
	go func() { defer f.wg.Done(); pipe(c, up) }()
	<-done
	<-done
}

// Close stops accepting, closes every relayed connection and waits for
// the Forwarder's goroutines. It is idempotent.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	conns := make([]net.Conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	err := f.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	f.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
