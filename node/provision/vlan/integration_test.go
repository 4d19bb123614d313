//go:build integration

package vlan_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/ovstest"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/provisiontest"
	"github.com/musubi-fabric/musubi/node/provision/vlan"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/ovs"
)

// logTo is an io.Writer into t.Log that goes quiet once the test is over.
type logTo struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (l *logTo) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// runningDP is an ovs.Dataplane running on a fabric site.
type runningDP struct {
	*ovs.Dataplane
	cancel context.CancelFunc
	done   chan error
	log    *logTo
}

func startDP(t *testing.T, s *ovstest.Site) *runningDP {
	t.Helper()
	ln, err := s.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lw := &logTo{t: t}
	dp, err := ovs.New(ovs.Config{Site: "site-a", OVSDB: s.OVSDBEndpoint(), Listener: ln,
		Logger: slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningDP{Dataplane: dp, cancel: cancel, done: make(chan error, 1), log: lw}
	go func() { r.done <- dp.Run(ctx) }()
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if err := dp.Ready(rctx); err != nil {
		t.Fatal(err)
	}
	return r
}

// stop ends Run (without tearing the bridge down) and waits for it.
func (r *runningDP) stop(t *testing.T) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return within 30 s")
	}
	r.log.mu.Lock()
	r.log.done = true
	r.log.mu.Unlock()
}

func vsctl(t *testing.T, s *ovstest.Site, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.Vsctl(ctx, args...)
	if err != nil {
		t.Fatalf("ovs-vsctl %v: %v", args, err)
	}
	return out
}

// ownedPorts lists the musubi VC ports in OVSDB, read with ovs-vsctl (not
// through the code under test).
func ownedPorts(t *testing.T, s *ovstest.Site) []string {
	out := vsctl(t, s, "--bare", "--columns=name", "find", "Port", "external_ids:musubi-kind=port")
	return strings.Fields(out)
}

func TestIntegrationContract(t *testing.T) {
	f := ovstest.NewT(t, 1)
	s := f.Sites()[0]
	provisiontest.TestPortDriver(t, func(t *testing.T) *provisiontest.PortHarness {
		cur := startDP(t, s)
		var devices []string
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := cur.Teardown(ctx); err != nil {
				t.Errorf("Teardown: %v", err)
			}
			cur.stop(t)
			for _, d := range devices {
				if _, err := s.Exec(ctx, "ip", "link", "del", d); err != nil {
					t.Errorf("delete %s: %v", d, err)
				}
			}
		})
		return &provisiontest.PortHarness{
			Driver: vlan.New(cur, nil),
			AddDevice: func(t *testing.T, name string) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := s.Exec(ctx, "ip", "link", "add", name, "type", "veth", "peer", "name", "pr"+name); err != nil {
					t.Fatal(err)
				}
				devices = append(devices, name)
				if _, err := s.Exec(ctx, "ip", "link", "set", name, "up"); err != nil {
					t.Fatal(err)
				}
			},
			AddForeignPort: func(t *testing.T, name string) {
				vsctl(t, s, "add-port", "br-int", name, "--", "set", "interface", name, "type=internal")
			},
			Reopen: func(t *testing.T) provision.PortDriver {
				// A restarted peer: the old Dataplane stops (the bridge
				// stays), a new one connects to the same switch.
				cur.stop(t)
				cur = startDP(t, s)
				return vlan.New(cur, nil)
			},
			Leftovers: func(t *testing.T) []string { return ownedPorts(t, s) },
		}
	})
}

// TestIntegrationWithApply: a port the overlay controller's desired state
// holds is the same row EnsurePort writes (Apply then changes nothing), a
// port EnsurePort added survives the background reconcile its device's
// appearance triggers, and the tag is the VC's.
func TestIntegrationWithApply(t *testing.T) {
	f := ovstest.NewT(t, 1)
	s := f.Sites()[0]
	dp := startDP(t, s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := dp.Teardown(ctx); err != nil {
			t.Errorf("Teardown: %v", err)
		}
		dp.stop(t)
		_, _ = s.Exec(ctx, "ip", "link", "del", "vlate")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := vlan.New(dp, nil)
	a := provision.PortSpec{Name: "vna", VC: "vc1", VLAN: 321, MAC: overlay.MAC{2, 0, 0, 0, 0, 0xa}, IP: netip.MustParseAddr("10.9.0.10"), Internal: true}
	// The overlay controller applies a state with port a (its node record).
	want := overlay.Desired{Site: "site-a", Ports: []overlay.Port{{Name: a.Name, VC: a.VC, VLAN: a.VLAN, MAC: a.MAC, IP: a.IP, Internal: true}}}
	if err := dp.Apply(ctx, want); err != nil {
		t.Fatal(err)
	}
	before := dp.Changes()
	t0 := time.Now()
	p, err := d.Ensure(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Ensure of a port Apply already made: %v", time.Since(t0))
	if dp.Changes() != before || !p.Attached() {
		t.Fatalf("Ensure of the applied port changed the switch (%d changes) or is detached: %+v", dp.Changes()-before, p)
	}
	if tag := vsctl(t, s, "get", "port", a.Name, "tag"); tag != "321" {
		t.Fatalf("tag %q, want 321", tag)
	}
	// A port of a node whose device appears after Ensure: its ofport
	// change kicks the Dataplane's background reconcile, which must keep
	// it.
	late := provision.PortSpec{Name: "vlate", VC: "vc1", VLAN: 321, MAC: overlay.MAC{2, 0, 0, 0, 0, 0xb}}
	t0 = time.Now()
	p, err = d.Ensure(ctx, late)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Ensure of a new port (device missing): %v", time.Since(t0))
	if p.Attached() {
		t.Fatalf("attached without a device: %+v", p)
	}
	if _, err := s.Exec(ctx, "ip", "link", "add", "vlate", "type", "veth", "peer", "name", "prvlate"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ps, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 2 && ps[0].Name == "vlate" && ps[0].Attached() && ps[1].Name == "vna" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ports 20 s after the device appeared: %+v", ps)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Timing of a batch of internal ports, for the record.
	t0 = time.Now()
	for i := range 10 {
		if _, err := d.Ensure(ctx, provision.PortSpec{Name: fmt.Sprintf("vb%d", i), VC: "vc2", VLAN: 400, MAC: overlay.MAC{2, 0, 0, 0, 1, byte(i + 1)}, Internal: true}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("Ensure of 10 internal ports: %v per port", (time.Since(t0) / 10).Round(time.Microsecond))
	for _, p := range []string{"vna", "vlate"} {
		if err := d.Remove(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if err := d.Remove(ctx, fmt.Sprintf("vb%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if left := ownedPorts(t, s); len(left) != 0 {
		t.Fatalf("ports left: %v", left)
	}
	// The controller's next Apply of an empty state finds nothing to do
	// for ports.
	before = dp.Changes()
	if err := dp.Apply(ctx, overlay.Desired{Site: "site-a"}); err != nil {
		t.Fatal(err)
	}
	if dp.Changes() != before {
		t.Fatalf("Apply after Remove made %d changes", dp.Changes()-before)
	}
}
