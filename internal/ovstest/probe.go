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
	sends   []time.Time // by sequence number - 1
	echoed  []bool      // by sequence number - 1
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
		n, err := p.client.Read(buf)
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
		if n >= 8 {
			if seq := binary.BigEndian.Uint64(buf); seq >= 1 && seq <= uint64(len(p.echoed)) {
				p.echoed[seq-1] = true
			}
		}
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
		now := time.Now()
		binary.BigEndian.PutUint64(msg, seq)
		binary.BigEndian.PutUint64(msg[8:], uint64(now.UnixNano()))
		p.mu.Lock()
		p.sent++
		p.sends = append(p.sends, now)
		p.echoed = append(p.echoed, false)
		p.mu.Unlock()
		_, _ = p.client.Write(msg)
	}
}

// Snapshot returns the results so far without stopping the probe.
func (p *Probe) Snapshot() ProbeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return ProbeResult{Interval: p.interval, Start: p.start, Sent: p.sent, Replies: append([]time.Time(nil), p.replies...),
		Sends: append([]time.Time(nil), p.sends...), Echoed: append([]bool(nil), p.echoed...)}
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
	// Sends are the send times of the datagrams and Echoed says which came
	// back, both indexed by sequence number - 1.
	Sends  []time.Time
	Echoed []bool
}

// Lost counts the datagrams sent in [from, to) that never came back.
func (r ProbeResult) Lost(from, to time.Time) int {
	n := 0
	for i, at := range r.Sends {
		if !at.Before(from) && at.Before(to) && !r.Echoed[i] {
			n++
		}
	}
	return n
}

// SentIn counts the datagrams sent in [from, to).
func (r ProbeResult) SentIn(from, to time.Time) int {
	n := 0
	for _, at := range r.Sends {
		if !at.Before(from) && at.Before(to) {
			n++
		}
	}
	return n
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

// Window returns the result restricted to the echoes that arrived in
// [from, to), with the last echo before from kept as the first, so gaps
// that straddle from count.
func (r ProbeResult) Window(from, to time.Time) ProbeResult {
	w := ProbeResult{Interval: r.Interval, Start: from, Sends: r.Sends, Echoed: r.Echoed}
	for i, at := range r.Replies {
		if at.Before(from) {
			if i+1 < len(r.Replies) && !r.Replies[i+1].Before(from) {
				w.Replies = append(w.Replies, at)
			}
			continue
		}
		if !at.Before(to) {
			// The first echo after the window closes the last gap.
			w.Replies = append(w.Replies, at)
			break
		}
		w.Replies = append(w.Replies, at)
	}
	return w
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
