package ovs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"antrea.io/libOpenflow/common"
	of13 "antrea.io/libOpenflow/openflow13"
	"antrea.io/libOpenflow/util"
)

// writeTimeout bounds one write to the switch.
const writeTimeout = 10 * time.Second

// call is an outstanding request: a reply (possibly several multipart
// parts), or errors from the switch for it or for the flow-mods of its batch.
type call struct {
	done   chan struct{}
	closed bool
	body   []byte
	errs   []error
}

// pending says what to do with messages for one xid.
type pending struct {
	c *call
	// member: an error for this xid is recorded in c but does not finish
	// it (flow-mods of a batch; the batch's barrier reply finishes it).
	member bool
}

// ofConn is one OpenFlow connection from the switch: a reader and a writer
// goroutine, joined by close.
type ofConn struct {
	nc  net.Conn
	log *slog.Logger
	xid atomic.Uint32

	out  chan []byte   // to the writer
	stop chan struct{} // closed by close: the writer exits
	wg   sync.WaitGroup

	hello chan error // the switch's HELLO verdict (buffered 1)

	mu      sync.Mutex
	calls   map[uint32]pending
	ports   map[uint32]ofPort
	dpid    uint64
	done    chan struct{} // closed when the connection is dead
	doneErr error
	closing bool
}

func newOFConn(nc net.Conn, log *slog.Logger) *ofConn {
	c := &ofConn{
		nc:    nc,
		log:   log,
		out:   make(chan []byte, 64),
		stop:  make(chan struct{}),
		hello: make(chan error, 1),
		calls: map[uint32]pending{},
		ports: map[uint32]ofPort{},
		done:  make(chan struct{}),
	}
	c.xid.Store(uint32(time.Now().UnixNano()) & 0x7fffffff)
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	return c
}

func (c *ofConn) nextXid() uint32 { return c.xid.Add(1) }

// fail marks the connection dead and finishes every outstanding call.
func (c *ofConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return
	default:
	}
	c.doneErr = err
	close(c.done)
	for _, p := range c.calls {
		if !p.c.closed {
			p.c.errs = append(p.c.errs, err)
			p.c.closed = true
			close(p.c.done)
		}
	}
	c.calls = map[uint32]pending{}
}

// close shuts the connection and joins its goroutines.
func (c *ofConn) close() {
	c.mu.Lock()
	already := c.closing
	c.closing = true
	c.mu.Unlock()
	if !already {
		close(c.stop)
		_ = c.nc.Close()
	}
	c.wg.Wait()
	c.fail(fmt.Errorf("%w: OpenFlow connection closed", ErrNoSwitch))
}

func (c *ofConn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func (c *ofConn) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case b := <-c.out:
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.nc.Write(b); err != nil {
				c.fail(fmt.Errorf("%w: write: %v", ErrNoSwitch, err))
				_ = c.nc.Close()
				return
			}
		}
	}
}

// send queues encoded bytes for the writer.
func (c *ofConn) send(ctx context.Context, b []byte) error {
	select {
	case c.out <- b:
		return nil
	case <-c.done:
		return c.deadErr()
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNoSwitch, ctx.Err())
	}
}

func (c *ofConn) deadErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.doneErr != nil {
		return c.doneErr
	}
	return ErrNoSwitch
}

func (c *ofConn) readLoop() {
	defer c.wg.Done()
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(c.nc, hdr); err != nil {
			c.fail(fmt.Errorf("%w: read: %v", ErrNoSwitch, err))
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[2:]))
		if n < 8 {
			c.fail(fmt.Errorf("%w: message length %d", ErrProtocol, n))
			_ = c.nc.Close()
			return
		}
		msg := make([]byte, n)
		copy(msg, hdr)
		if _, err := io.ReadFull(c.nc, msg[8:]); err != nil {
			c.fail(fmt.Errorf("%w: read: %v", ErrNoSwitch, err))
			return
		}
		if err := recovered(func() error { return c.handle(msg) }); err != nil {
			c.log.Warn("OpenFlow message dropped", "type", msg[1], "err", err)
		}
	}
}

// register records an outstanding xid.
func (c *ofConn) register(xid uint32, p pending) {
	c.mu.Lock()
	c.calls[xid] = p
	c.mu.Unlock()
}

func (c *ofConn) unregister(xids ...uint32) {
	c.mu.Lock()
	for _, x := range xids {
		delete(c.calls, x)
	}
	c.mu.Unlock()
}

// finish ends the call for xid with an optional body part and error.
func (c *ofConn) deliver(xid uint32, body []byte, more bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.calls[xid]
	if !ok {
		if err != nil {
			c.log.Warn("switch error for no outstanding request", "xid", xid, "err", err)
		}
		return
	}
	if p.c.closed {
		return
	}
	p.c.body = append(p.c.body, body...)
	if err != nil {
		p.c.errs = append(p.c.errs, err)
		if p.member {
			return
		}
	}
	if more {
		return
	}
	p.c.closed = true
	close(p.c.done)
	delete(c.calls, xid)
}

func (c *ofConn) handle(msg []byte) error {
	typ, xid := msg[1], binary.BigEndian.Uint32(msg[4:])
	if typ == ofptHello {
		err := checkHello(msg)
		select {
		case c.hello <- err:
		default:
		}
		return err
	}
	if msg[0] != ofpVersion13 {
		return fmt.Errorf("%w: message version %d", ErrProtocol, msg[0])
	}
	switch typ {
	case ofptEchoRequest:
		reply := append([]byte(nil), msg...)
		reply[1] = ofptEchoReply
		select {
		case c.out <- reply:
		default:
			c.log.Warn("echo reply dropped: write queue full")
		}
	case ofptError:
		c.deliver(xid, nil, false, decodeError(msg))
	case ofptFeaturesRep:
		if len(msg) < 16 {
			return fmt.Errorf("%w: short FEATURES_REPLY", ErrProtocol)
		}
		c.mu.Lock()
		c.dpid = binary.BigEndian.Uint64(msg[8:])
		c.mu.Unlock()
		c.deliver(xid, msg[8:], false, nil)
	case ofptMultipartRep:
		if len(msg) < 16 {
			return fmt.Errorf("%w: short MULTIPART_REPLY", ErrProtocol)
		}
		more := binary.BigEndian.Uint16(msg[10:])&ofpmpfMore != 0
		c.deliver(xid, msg[16:], more, nil)
	case ofptBarrierRep:
		c.deliver(xid, nil, false, nil)
	case ofptPortStatus:
		if len(msg) < 80 {
			return fmt.Errorf("%w: short PORT_STATUS", ErrProtocol)
		}
		p, err := parsePhyPort(msg[16:80])
		if err != nil {
			return err
		}
		c.mu.Lock()
		if msg[8] == of13.PR_DELETE {
			delete(c.ports, p.num)
		} else {
			c.ports[p.num] = p
		}
		c.mu.Unlock()
		c.log.Debug("port status", "reason", msg[8], "port", p.name, "ofport", p.num, "down", p.down)
	default:
		// PACKET_IN, FLOW_REMOVED, ...: the controller installs everything
		// proactively and asks for none of these.
	}
	return nil
}

// checkHello accepts a HELLO that offers OpenFlow 1.3: its version is at
// least 1.3 and, if it carries a version bitmap, the bitmap has 1.3.
func checkHello(msg []byte) error {
	if msg[0] < ofpVersion13 {
		return fmt.Errorf("%w: switch offers OpenFlow version %d only", ErrProtocol, msg[0])
	}
	for b := msg[8:]; len(b) >= 4; {
		t, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if n < 4 || n > len(b) {
			break
		}
		if t == 1 && n >= 8 { // OFPHET_VERSIONBITMAP
			if binary.BigEndian.Uint32(b[4:])&(1<<ofpVersion13) == 0 {
				return fmt.Errorf("%w: switch's version bitmap lacks OpenFlow 1.3", ErrProtocol)
			}
		}
		adv := (n + 7) / 8 * 8
		if adv > len(b) {
			break
		}
		b = b[adv:]
	}
	return nil
}

// decodeError describes an OFPT_ERROR.
func decodeError(msg []byte) error {
	if len(msg) < 12 {
		return fmt.Errorf("%w: short error message", ErrSwitch)
	}
	t, code := binary.BigEndian.Uint16(msg[8:]), binary.BigEndian.Uint16(msg[10:])
	return fmt.Errorf("%w: %s (type %d, code %d)", ErrSwitch, errorName(t, code), t, code)
}

func errorName(t, code uint16) string {
	switch t {
	case 1:
		return "bad request"
	case 2:
		return "bad action"
	case 3:
		return "bad instruction"
	case 4:
		return "bad match"
	case 5:
		switch code {
		case 1:
			return "flow-mod failed: table full"
		case 2:
			return "flow-mod failed: bad table id"
		case 3:
			return "flow-mod failed: overlap"
		}
		return "flow-mod failed"
	}
	return "error"
}

// request sends one message with a fresh xid and waits for its reply (all
// parts of a multipart reply, concatenated).
func (c *ofConn) request(ctx context.Context, build func(xid uint32) (util.Message, error)) ([]byte, error) {
	xid := c.nextXid()
	m, err := build(xid)
	if err != nil {
		return nil, err
	}
	b, err := marshal(m)
	if err != nil {
		return nil, err
	}
	cl := &call{done: make(chan struct{})}
	c.register(xid, pending{c: cl})
	defer c.unregister(xid)
	if err := c.send(ctx, b); err != nil {
		return nil, err
	}
	select {
	case <-cl.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for the switch: %w", ErrNoSwitch, ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return cl.body, errors.Join(cl.errs...)
}

// batch sends messages (each already carrying its xid from xids) in one
// write followed by a barrier, and returns the switch's errors for them.
func (c *ofConn) batch(ctx context.Context, msgs []util.Message, xids []uint32) error {
	if len(msgs) == 0 {
		return nil
	}
	cl := &call{done: make(chan struct{})}
	var buf []byte
	for i, m := range msgs {
		b, err := marshal(m)
		if err != nil {
			return err
		}
		buf = append(buf, b...)
		c.register(xids[i], pending{c: cl, member: true})
	}
	bx := c.nextXid()
	barrier := of13.NewOfp13Header()
	barrier.Type = of13.Type_BarrierRequest
	barrier.Xid = bx
	b, err := marshal(&barrier)
	if err != nil {
		return err
	}
	buf = append(buf, b...)
	c.register(bx, pending{c: cl})
	defer c.unregister(append(xids, bx)...)
	if err := c.send(ctx, buf); err != nil {
		return err
	}
	select {
	case <-cl.done:
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for the barrier: %w", ErrNoSwitch, ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return errors.Join(cl.errs...)
}

// handshake: HELLO (OpenFlow 1.3 only), FEATURES, PORT_DESC.
func (c *ofConn) handshake(ctx context.Context) error {
	var hello *common.Hello
	if err := recovered(func() error {
		h, err := common.NewHello(ofpVersion13)
		if err != nil {
			return err
		}
		// libOpenflow's NewHello advertises {1.0, 1.5}: OVS would settle on
		// 1.0. Offer 1.3 alone.
		bm, ok := h.Elements[0].(*common.HelloElemVersionBitmap)
		if !ok {
			return fmt.Errorf("%w: unexpected HELLO element %T", ErrProtocol, h.Elements[0])
		}
		bm.Bitmaps = []uint32{1 << ofpVersion13}
		hello = h
		return nil
	}); err != nil {
		return err
	}
	b, err := marshal(hello)
	if err != nil {
		return err
	}
	if err := c.send(ctx, b); err != nil {
		return err
	}
	select {
	case err := <-c.hello:
		if err != nil {
			return err
		}
	case <-c.done:
		return c.deadErr()
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for HELLO: %w", ErrNoSwitch, ctx.Err())
	}
	if _, err := c.request(ctx, func(xid uint32) (util.Message, error) {
		h := of13.NewFeaturesRequest()
		h.Xid = xid
		return h, nil
	}); err != nil {
		return fmt.Errorf("features: %w", err)
	}
	body, err := c.request(ctx, func(xid uint32) (util.Message, error) { return portDescRequest(xid), nil })
	if err != nil {
		return fmt.Errorf("port desc: %w", err)
	}
	ports, err := parsePortDesc(body)
	if err != nil {
		return err
	}
	c.mu.Lock()
	for _, p := range ports {
		c.ports[p.num] = p
	}
	c.mu.Unlock()
	return nil
}

// dumpFlows reads every flow of the switch.
func (c *ofConn) dumpFlows(ctx context.Context) ([]rawFlow, error) {
	body, err := c.request(ctx, func(xid uint32) (util.Message, error) { return flowStatsRequest(xid), nil })
	if err != nil {
		return nil, err
	}
	return parseFlowStats(body)
}

// portList returns the switch's ports as PORT_DESC and PORT_STATUS told.
func (c *ofConn) portList() map[uint32]ofPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[uint32]ofPort, len(c.ports))
	for k, v := range c.ports {
		m[k] = v
	}
	return m
}
