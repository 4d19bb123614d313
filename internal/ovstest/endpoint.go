package ovstest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// EndpointIface is the endpoint's interface name inside its namespace.
const EndpointIface = "eth0"

// Endpoint is a virtual-cluster node: a namespace whose eth0 is one end of
// a veth; the other end, Port, is in the site namespace.
type Endpoint struct {
	// Name is the endpoint's name within the fabric.
	Name string
	// NS is its network namespace.
	NS string
	// Port is the veth end in the site namespace (to become an OVS port).
	Port string
	// MAC and Addr are eth0's.
	MAC  net.HardwareAddr
	Addr netip.Prefix
	// Site is the site the endpoint is attached to.
	Site *Site

	f *Fabric
}

// IP is the endpoint's address without prefix length.
func (e *Endpoint) IP() netip.Addr { return e.Addr.Addr() }

func (e *Endpoint) create(ctx context.Context, mtu int) error {
	if err := run(ctx, "ip", "netns", "add", e.NS); err != nil {
		return err
	}
	if err := run(ctx, "ip", "link", "add", e.Port, "netns", e.Site.NS, "type", "veth", "peer", "name", EndpointIface, "netns", e.NS); err != nil {
		return err
	}
	for _, c := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		// No IPv6: no router solicitations or DAD frames muddying the
		// "zero packets across VCs" counters.
		{"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
		{"sysctl", "-qw", "net.ipv6.conf." + EndpointIface + ".disable_ipv6=1"},
		{"ip", "link", "set", EndpointIface, "address", e.MAC.String(), "mtu", strconv.Itoa(mtu)},
		{"ip", "addr", "add", e.Addr.String(), "dev", EndpointIface},
		// The userspace datapath forwards CHECKSUM_PARTIAL frames without
		// filling the checksum in: TCP breaks unless the sender computes it.
		{"ethtool", "-K", EndpointIface, "tx", "off"},
		{"ip", "link", "set", EndpointIface, "up"},
	} {
		if err := runIn(ctx, e.NS, c[0], c[1:]...); err != nil {
			return err
		}
	}
	for _, c := range [][]string{
		{"sysctl", "-qw", "net.ipv6.conf." + e.Port + ".disable_ipv6=1"},
		{"ip", "link", "set", e.Port, "up"},
	} {
		if err := runIn(ctx, e.Site.NS, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// Exec runs a program in the endpoint namespace and returns its output.
func (e *Endpoint) Exec(ctx context.Context, name string, args ...string) (string, error) {
	return output(ctx, nil, "ip", append([]string{"netns", "exec", e.NS, name}, args...)...)
}

// Do runs fn on an OS thread switched into the endpoint namespace.
func (e *Endpoint) Do(fn func() error) error { return InNetns(e.NS, fn) }

// Listen opens a listener in the endpoint namespace.
func (e *Endpoint) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := e.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a packet socket in the endpoint namespace.
func (e *Endpoint) ListenPacket(network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := e.Do(func() (err error) {
		c, err = net.ListenPacket(network, addr)
		return err
	})
	return c, err
}

// Dial connects from the endpoint namespace.
func (e *Endpoint) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := e.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Attach makes the endpoint's port an access port of bridge with VLAN tag
// (0: untagged) using ovs-vsctl, for NORMAL-action baselines; a dataplane
// under test attaches ports itself.
func (e *Endpoint) Attach(ctx context.Context, bridge string, tag int) error {
	args := []string{"--may-exist", "add-port", bridge, e.Port}
	if tag > 0 {
		args = append(args, "tag="+strconv.Itoa(tag))
	}
	_, err := e.Site.Vsctl(ctx, args...)
	return err
}

// SetNeighbor adds a permanent ARP entry on eth0, so the endpoint sends to
// ip without asking (used to prove isolation: frames are really sent).
func (e *Endpoint) SetNeighbor(ctx context.Context, ip netip.Addr, mac net.HardwareAddr) error {
	return runIn(ctx, e.NS, "ip", "neigh", "replace", ip.String(), "lladdr", mac.String(), "dev", EndpointIface, "nud", "permanent")
}

// FlushNeighbors empties eth0's ARP cache.
func (e *Endpoint) FlushNeighbors(ctx context.Context) error {
	return runIn(ctx, e.NS, "ip", "neigh", "flush", "dev", EndpointIface)
}

var receivedRE = regexp.MustCompile(`(\d+) received`)

// Ping sends count ICMP echo requests 50 ms apart to dst (each waiting at
// most 1 s) and returns how many replies came back. No reply is not an
// error.
func (e *Endpoint) Ping(ctx context.Context, dst netip.Addr, count int) (int, error) {
	out, err := e.Exec(ctx, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.05", "-W", "1", dst.String())
	m := receivedRE.FindStringSubmatch(out)
	if m == nil {
		if err == nil {
			err = fmt.Errorf("%w: ping: unexpected output %q", ErrCommand, out)
		}
		return 0, err
	}
	n, _ := strconv.Atoi(m[1])
	return n, nil
}

// WaitPing pings dst once per attempt until a reply comes back or ctx ends
// (the first packets may be lost while tunnels and ARP settle).
func (e *Endpoint) WaitPing(ctx context.Context, dst netip.Addr) error {
	for {
		n, err := e.Ping(ctx, dst, 1)
		if err == nil && n > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("ovstest: %s cannot reach %s: %w", e.Name, dst, ctx.Err())
		}
	}
}

// Counters are eth0's packet counters.
type Counters struct {
	RxPackets, TxPackets uint64
}

// Counters reads eth0's packet counters.
func (e *Endpoint) Counters(ctx context.Context) (Counters, error) {
	out, err := output(ctx, nil, "ip", "-n", e.NS, "-s", "-j", "link", "show", "dev", EndpointIface)
	if err != nil {
		return Counters{}, err
	}
	var links []struct {
		Stats64 struct {
			Rx struct {
				Packets uint64 `json:"packets"`
			} `json:"rx"`
			Tx struct {
				Packets uint64 `json:"packets"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return Counters{}, fmt.Errorf("%w: ip -s -j link: %q", ErrCommand, strings.TrimSpace(out))
	}
	return Counters{RxPackets: links[0].Stats64.Rx.Packets, TxPackets: links[0].Stats64.Tx.Packets}, nil
}

// Throughput sends TCP data from one endpoint to another for d and returns
// the bits per second the receiver got.
func Throughput(ctx context.Context, from, to *Endpoint, d time.Duration) (float64, error) {
	l, err := to.Listen("tcp", netip.AddrPortFrom(to.IP(), 0).String())
	if err != nil {
		return 0, err
	}
	defer l.Close()
	type result struct {
		n   int64
		dur time.Duration
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		var n int64
		var t0 time.Time
		for {
			k, err := c.Read(buf)
			if k > 0 && t0.IsZero() {
				t0 = time.Now()
			}
			n += int64(k)
			if err != nil {
				res <- result{n: n, dur: time.Since(t0)}
				return
			}
		}
	}()
	c, err := from.Dial(ctx, "tcp", l.Addr().String())
	if err != nil {
		_ = l.Close()
		<-res
		return 0, err
	}
	buf := make([]byte, 256<<10)
	deadline := time.Now().Add(d)
	_ = c.SetWriteDeadline(deadline.Add(5 * time.Second))
	var werr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, werr = c.Write(buf); werr != nil {
			break
		}
	}
	_ = c.Close()
	r := <-res
	if werr != nil {
		return 0, fmt.Errorf("ovstest: tcp write: %w", werr)
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.dur <= 0 {
		return 0, fmt.Errorf("ovstest: no data received")
	}
	return float64(r.n*8) / r.dur.Seconds(), nil
}
