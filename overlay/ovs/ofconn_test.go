package ovs

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	of13 "antrea.io/libOpenflow/openflow13"
	"antrea.io/libOpenflow/util"

	"github.com/musubi-fabric/musubi/overlay"
)

// fakeSwitch is the switch end of a controller connection, driven by the
// test message by message.
type fakeSwitch struct {
	t    *testing.T
	c    net.Conn
	msgs chan []byte
	done chan struct{}
}

// newPair connects an ofConn (controller side) to a fakeSwitch over
// loopback TCP.
func newPair(t *testing.T) (*ofConn, *fakeSwitch) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeSwitch{t: t, c: sw, msgs: make(chan []byte, 64), done: make(chan struct{})}
	go func() {
		defer close(fs.done)
		defer close(fs.msgs)
		for {
			h := make([]byte, 8)
			if _, err := io.ReadFull(sw, h); err != nil {
				return
			}
			m := make([]byte, binary.BigEndian.Uint16(h[2:]))
			copy(m, h)
			if _, err := io.ReadFull(sw, m[8:]); err != nil {
				return
			}
			fs.msgs <- m
		}
	}()
	oc := newOFConn(ctl, slog.New(slog.DiscardHandler))
	t.Cleanup(func() {
		oc.close()
		_ = sw.Close()
		<-fs.done
	})
	return oc, fs
}

// expect returns the next message from the controller, which must have
// the given type.
func (fs *fakeSwitch) expect(typ uint8) []byte {
	fs.t.Helper()
	select {
	case m, ok := <-fs.msgs:
		if !ok {
			fs.t.Fatalf("connection closed while waiting for message type %d", typ)
		}
		if m[1] != typ {
			fs.t.Fatalf("got message type %d, want %d", m[1], typ)
		}
		return m
	case <-time.After(10 * time.Second):
		fs.t.Fatalf("no message type %d within 10 s", typ)
	}
	return nil
}

func (fs *fakeSwitch) send(version, typ uint8, xid uint32, body []byte) {
	fs.t.Helper()
	m := make([]byte, 8, 8+len(body))
	m[0], m[1] = version, typ
	binary.BigEndian.PutUint16(m[2:], uint16(8+len(body)))
	binary.BigEndian.PutUint32(m[4:], xid)
	if _, err := fs.c.Write(append(m, body...)); err != nil {
		fs.t.Fatal(err)
	}
}

func xidOf(m []byte) uint32 { return binary.BigEndian.Uint32(m[4:]) }

func helloBody(bitmap uint32) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b, 1) // OFPHET_VERSIONBITMAP
	binary.BigEndian.PutUint16(b[2:], 8)
	binary.BigEndian.PutUint32(b[4:], bitmap)
	return b
}

func phyPort(t *testing.T, num uint32, name string) []byte {
	t.Helper()
	p := of13.NewPhyPort()
	p.PortNo = num
	p.Name = make([]byte, 16)
	copy(p.Name, name)
	b, err := p.MarshalBinary()
	if err != nil || len(b) != 64 {
		t.Fatalf("marshal ofp_port: %v (%d bytes)", err, len(b))
	}
	return b
}

func multipartBody(typ uint16, more bool, body []byte) []byte {
	b := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint16(b, typ)
	if more {
		binary.BigEndian.PutUint16(b[2:], ofpmpfMore)
	}
	return append(b, body...)
}

// handshake plays the switch's side of a successful handshake.
func (fs *fakeSwitch) handshake(t *testing.T) {
	h := fs.expect(ofptHello)
	if h[0] != ofpVersion13 {
		t.Errorf("controller HELLO version %d", h[0])
	}
	if bm := binary.BigEndian.Uint32(h[12:]); bm != 1<<ofpVersion13 {
		t.Errorf("controller HELLO bitmap %#x, want OpenFlow 1.3 only", bm)
	}
	fs.send(ofpVersion13, ofptHello, 1, helloBody(1<<ofpVersion13|1<<1))
	fr := fs.expect(of13.Type_FeaturesRequest)
	feat := make([]byte, 24)
	binary.BigEndian.PutUint64(feat, 0xabcdef)
	fs.send(ofpVersion13, ofptFeaturesRep, xidOf(fr), feat)
	pd := fs.expect(of13.Type_MultiPartRequest)
	if binary.BigEndian.Uint16(pd[8:]) != ofpmpPortDesc {
		t.Fatalf("expected a PORT_DESC request")
	}
	// Two parts: OFPMPF_REPLY_MORE on the first.
	fs.send(ofpVersion13, ofptMultipartRep, xidOf(pd), multipartBody(ofpmpPortDesc, true, phyPort(t, 1, "vm1")))
	fs.send(ofpVersion13, ofptMultipartRep, xidOf(pd), multipartBody(ofpmpPortDesc, false, phyPort(t, 2, "gre-s2")))
}

func TestHandshakeEchoAndPorts(t *testing.T) {
	oc, fs := newPair(t)
	errc := make(chan error, 1)
	go func() { errc <- oc.handshake(t.Context()) }()
	fs.handshake(t)
	if err := <-errc; err != nil {
		t.Fatalf("handshake: %v", err)
	}
	ports := oc.portList()
	if len(ports) != 2 || ports[1].name != "vm1" || ports[2].name != "gre-s2" {
		t.Errorf("ports %+v", ports)
	}
	if oc.dpid != 0xabcdef {
		t.Errorf("dpid %#x", oc.dpid)
	}
	fs.send(ofpVersion13, ofptEchoRequest, 77, []byte("ping"))
	r := fs.expect(ofptEchoReply)
	if xidOf(r) != 77 || string(r[8:]) != "ping" {
		t.Errorf("echo reply xid %d body %q", xidOf(r), r[8:])
	}
	// A port added later arrives as PORT_STATUS.
	ps := append([]byte{of13.PR_ADD, 0, 0, 0, 0, 0, 0, 0}, phyPort(t, 3, "vm2")...)
	fs.send(ofpVersion13, ofptPortStatus, 0, ps)
	fs.send(ofpVersion13, ofptEchoRequest, 78, nil) // ordered after the status
	fs.expect(ofptEchoReply)
	if p := oc.portList()[3]; p.name != "vm2" {
		t.Errorf("port 3 after PORT_STATUS: %+v", p)
	}
}

func TestHandshakeRejectsOldSwitch(t *testing.T) {
	oc, fs := newPair(t)
	errc := make(chan error, 1)
	go func() { errc <- oc.handshake(t.Context()) }()
	fs.expect(ofptHello)
	fs.send(1, ofptHello, 1, nil) // OpenFlow 1.0 only
	if err := <-errc; !errors.Is(err, ErrProtocol) {
		t.Fatalf("handshake with an OpenFlow 1.0 switch: %v, want ErrProtocol", err)
	}
}

func TestMalformedMessagesDoNotPanic(t *testing.T) {
	oc, fs := newPair(t)
	errc := make(chan error, 1)
	go func() { errc <- oc.handshake(t.Context()) }()
	fs.handshake(t)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	fs.send(ofpVersion13, ofptPortStatus, 0, []byte{1, 2, 3})  // short
	fs.send(ofpVersion13, ofptMultipartRep, 999, []byte{0, 1}) // short, unknown xid
	fs.send(ofpVersion13, ofptError, 5, nil)                   // short error
	fs.send(ofpVersion13, 200, 6, []byte("whatever"))          // unknown type
	fs.send(ofpVersion13, ofptFeaturesRep, 7, make([]byte, 2)) // short features
	fs.send(ofpVersion13, ofptEchoRequest, 79, nil)
	if r := fs.expect(ofptEchoReply); xidOf(r) != 79 {
		t.Errorf("echo after garbage: xid %d", xidOf(r))
	}
	if !oc.alive() {
		t.Error("connection died on malformed messages")
	}
}

func TestBatchReportsSwitchErrors(t *testing.T) {
	oc, fs := newPair(t)
	errc := make(chan error, 1)
	go func() { errc <- oc.handshake(t.Context()) }()
	fs.handshake(t)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	ports := testPorts{"vm1": 1}
	var msgs []util.Message
	var xids []uint32
	for i := 0; i < 2; i++ {
		fm, err := encodeFlow(overlay.Flow{Table: 0, Priority: uint16(i), Cookie: 1, Actions: []overlay.Action{overlay.Output("vm1")}}, ports)
		if err != nil {
			t.Fatal(err)
		}
		fm.Xid = oc.nextXid()
		msgs, xids = append(msgs, fm), append(xids, fm.Xid)
	}
	go func() { errc <- oc.batch(t.Context(), msgs, xids) }()
	fs.expect(of13.Type_FlowMod)
	second := fs.expect(of13.Type_FlowMod)
	b := fs.expect(of13.Type_BarrierRequest)
	// The switch refuses the second flow-mod, then confirms the barrier.
	errBody := make([]byte, 4)
	binary.BigEndian.PutUint16(errBody, 5) // OFPET_FLOW_MOD_FAILED
	binary.BigEndian.PutUint16(errBody[2:], 1)
	fs.send(ofpVersion13, ofptError, xidOf(second), errBody)
	fs.send(ofpVersion13, ofptBarrierRep, xidOf(b), nil)
	if err := <-errc; !errors.Is(err, ErrSwitch) {
		t.Fatalf("batch: %v, want ErrSwitch", err)
	}
}

func TestRequestFailsWhenSwitchGoes(t *testing.T) {
	oc, fs := newPair(t)
	errc := make(chan error, 1)
	go func() { errc <- oc.handshake(t.Context()) }()
	fs.handshake(t)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := oc.dumpFlows(t.Context())
		errc <- err
	}()
	fs.expect(of13.Type_MultiPartRequest)
	_ = fs.c.Close()
	if err := <-errc; !errors.Is(err, overlay.ErrUnavailable) {
		t.Fatalf("dumpFlows after the switch left: %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := oc.dumpFlows(ctx); !errors.Is(err, overlay.ErrUnavailable) {
		t.Errorf("dumpFlows on a dead connection: %v", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, c := range []Config{
		{OVSDB: "unix:/x", Listener: ln},
		{Site: "s1", Listener: ln},
		{Site: "s1", OVSDB: "unix:/x"},
		{Site: "s1", OVSDB: "unix:/x", Listener: ln, Bridge: "bad/name"},
		{Site: "s1", OVSDB: "unix:/x", Listener: ln, BridgeMAC: overlay.BroadcastMAC},
	} {
		if _, err := New(c); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v) = %v, want ErrConfig", c, err)
		}
	}
	d, err := New(Config{Site: "s1", OVSDB: "unix:/x", Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	if want := "tcp:" + ln.Addr().String(); d.ControllerTarget() != want {
		t.Errorf("target %q, want %q", d.ControllerTarget(), want)
	}
	if d.BridgeMAC().IsMulticast() || d.BridgeMAC().IsZero() {
		t.Errorf("derived bridge MAC %s", d.BridgeMAC())
	}
	// Apply with an invalid state fails before any I/O.
	if err := d.Apply(t.Context(), overlay.Desired{}); !errors.Is(err, overlay.ErrInvalid) {
		t.Errorf("Apply(invalid) = %v", err)
	}
	if err := d.Apply(t.Context(), overlay.Desired{Site: "other"}); !errors.Is(err, overlay.ErrInvalid) {
		t.Errorf("Apply(other site) = %v", err)
	}
}
