package ovstest

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Probe sends a small UDP datagram from one endpoint to an echo socket in
// another every interval and records when each echo comes back. It measures
// outages (for example a reroute) to within about one interval.
type Probe struct {
	interval time.Duration
	server   net.PacketConn
	client   net.Conn
	stop     chan struct{}
	wg       sync.WaitGroup

	mu      sync.Mutex
	sent    int
	replies []time.Time
	start   time.Time
}

// StartProbe starts a probe from one endpoint to another. Stop it with Stop.
func StartProbe(from, to *Endpoint, interval time.Duration) (*Probe, error) {
	srv, err := to.ListenPacket("udp4", netip.AddrPortFrom(to.IP(), 0).String())
	if err != nil {
		return nil, err
	}
	var cl net.Conn
	err = from.Do(func() (err error) {
		cl, err = net.Dial("udp4", srv.LocalAddr().String())
		return err
	})
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	p := &Probe{interval: interval, server: srv, client: cl, stop: make(chan struct{}), start: time.Now()}
	p.wg.Add(3)
	go p.echo()
	go p.receive()
	go p.send()
	return p, nil
}

func (p *Probe) echo() {
	defer p.wg.Done()
	buf := make([]byte, 64)
	for {
		n, addr, err := p.server.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = p.server.WriteTo(buf[:n], addr)
	}
}

func (p *Probe) receive() {
	defer p.wg.Done()
	buf := make([]byte, 64)
	for {
		_, err := p.client.Read(buf)
		now := time.Now()
		if err != nil {
			// Closed by Stop: done. Anything else (ICMP errors surface as
			// read errors on a connected UDP socket while a path flaps):
			// keep reading.
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		p.replies = append(p.replies, now)
		p.mu.Unlock()
	}
}

func (p *Probe) send() {
	defer p.wg.Done()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	var seq uint64
	msg := make([]byte, 16)
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		seq++
		binary.BigEndian.PutUint64(msg, seq)
		binary.BigEndian.PutUint64(msg[8:], uint64(time.Now().UnixNano()))
		_, _ = p.client.Write(msg)
		p.mu.Lock()
		p.sent++
		p.mu.Unlock()
	}
}

// Snapshot returns the results so far without stopping the probe.
func (p *Probe) Snapshot() ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ProbeResult{Interval: p.interval, Start: p.start, Sent: p.sent, Replies: append([]time.Time(nil), p.replies...)}
}

// Stop stops the probe, joins its goroutines and returns the results.
func (p *Probe) Stop() ProbeResult {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	_ = p.client.Close()
	_ = p.server.Close()
	p.wg.Wait()
	return p.Snapshot()
}

// ProbeResult is what a probe saw.
type ProbeResult struct {
	Interval time.Duration
	Start    time.Time
	Sent     int
	// Replies are the arrival times of the echoes, in order.
	Replies []time.Time
}

// Received is the number of echoes.
func (r ProbeResult) Received() int { return len(r.Replies) }

// MaxGap is the longest time between two consecutive echoes.
func (r ProbeResult) MaxGap() time.Duration { return r.OutageAfter(time.Time{}) }

// OutageAfter is the longest time between two consecutive echoes where the
// later one arrived after t: with t the moment a link was cut, it is the
// time from the last packet through the old path to the first through the
// new one. It is zero when fewer than two echoes arrived.
func (r ProbeResult) OutageAfter(t time.Time) time.Duration {
	var max time.Duration
	for i := 1; i < len(r.Replies); i++ {
		if !r.Replies[i].After(t) {
			continue
		}
		if g := r.Replies[i].Sub(r.Replies[i-1]); g > max {
			max = g
		}
	}
	return max
}

// RepliesAfter counts the echoes that arrived after t.
func (r ProbeResult) RepliesAfter(t time.Time) int {
	n := 0
	for _, at := range r.Replies {
		if at.After(t) {
			n++
		}
	}
	return n
}
