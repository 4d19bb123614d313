package ovs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// ErrProbe: an RTT probe got no answer in time.
var ErrProbe = errors.New("ovs: RTT probe unanswered")

// RTTProber measures round-trip times to other sites' underlay addresses
// (their tunnel endpoints) with ICMP echo, for the link costs the peer
// writes to links/. BFD says whether a tunnel is alive; the RTT says how
// good it is. Probe calls are serialised.
type RTTProber struct {
	mu   sync.Mutex
	conn net.PacketConn
	id   int
	seq  int
}

// NewRTTProber uses conn, an "ip4:icmp" packet connection (for example
// net.ListenPacket("ip4:icmp", "0.0.0.0"), which needs CAP_NET_RAW) opened
// in the network namespace the tunnels leave from. Close closes it.
func NewRTTProber(conn net.PacketConn) *RTTProber {
	return &RTTProber{conn: conn, id: os.Getpid() & 0xffff}
}

// Close closes the connection.
func (p *RTTProber) Close() error { return p.conn.Close() }

// Probe sends one echo request to dst and waits for its reply until ctx
// ends (or 2 s without a deadline).
func (p *RTTProber) Probe(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	if !dst.Is4() {
		return 0, fmt.Errorf("%w: RTT probe to %v: IPv4 only", ErrConfig, dst)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq = (p.seq + 1) & 0xffff
	seq := p.seq
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: p.id, Seq: seq, Data: []byte("musubi-rtt")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return 0, fmt.Errorf("ovs: RTT probe: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Second)
	}
	if err := p.conn.SetReadDeadline(deadline); err != nil {
		return 0, fmt.Errorf("ovs: RTT probe: %w", err)
	}
	t0 := time.Now()
	if _, err := p.conn.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return 0, fmt.Errorf("ovs: RTT probe to %v: %w", dst, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, fmt.Errorf("%w: %v", ErrProbe, dst)
			}
			return 0, fmt.Errorf("ovs: RTT probe to %v: %w", dst, err)
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%w: %v: %w", ErrProbe, dst, ctx.Err())
		}
		ip, ok := from.(*net.IPAddr)
		if !ok || !ip.IP.Equal(dst.AsSlice()) {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == p.id && e.Seq == seq {
			return time.Since(t0), nil
		}
	}
}
