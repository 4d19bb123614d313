//go:build integration || bench

package ovs_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/ovstest"
	"github.com/musubi-fabric/musubi/overlay"
	"github.com/musubi-fabric/musubi/overlay/ovs"
)

// testLog is an io.Writer into t.Log that goes quiet once the test is
// over (libraries may log while shutting down).
type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) stop() {
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
}

// switchDP is a running Dataplane on a site of an ovstest fabric, with the
// test-only capabilities of the contract suite.
type switchDP struct {
	*ovs.Dataplane
	site   *ovstest.Site
	cancel context.CancelFunc
	done   chan error
	log    *testLog
}

// AddForeignFlow installs a flow with ovs-ofctl, as another controller
// would (dataplanetest.ForeignFlowAdder).
func (s *switchDP) AddForeignFlow(ctx context.Context, f overlay.Flow) error {
	if err := s.Ready(ctx); err != nil {
		return err
	}
	m := f.Match.String()
	if m != "" {
		m += ","
	}
	spec := fmt.Sprintf("table=%d,priority=%d,cookie=%#x,%sactions=%s", f.Table, f.Priority, uint64(f.Cookie), m, f.ActionsString())
	_, err := s.site.Ofctl(ctx, "-O", "OpenFlow13", "add-flow", "br-int", spec)
	return err
}

type dpOptions struct {
	onLink func(ovs.LinkEvent)
	quiet  bool // log warnings only
	// keep: no Teardown at cleanup (the switch state stays for the next
	// controller on the same site).
	keep bool
}

// startDP starts a Dataplane for site name on fabric site s; the test's
// cleanup tears it down (unless keep) and stops it.
func startDP(t testing.TB, s *ovstest.Site, name string, o dpOptions) *switchDP {
	t.Helper()
	ln, err := s.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lw := &testLog{t: t}
	level := slog.LevelInfo
	if o.quiet {
		level = slog.LevelWarn
	}
	dp, err := ovs.New(ovs.Config{
		Site: name, OVSDB: s.OVSDBEndpoint(), Listener: ln, OnLink: o.onLink,
		Logger: slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sd := &switchDP{Dataplane: dp, site: s, cancel: cancel, done: make(chan error, 1), log: lw}
	go func() { sd.done <- dp.Run(ctx) }()
	t.Cleanup(func() {
		if !o.keep {
			tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := dp.Teardown(tctx); err != nil {
				t.Errorf("Teardown %s: %v", name, err)
			}
			tcancel()
		}
		sd.stop(t)
	})
	return sd
}

// stop ends Run and waits for it (idempotent).
func (s *switchDP) stop(t testing.TB) {
	s.cancel()
	select {
	case err, ok := <-s.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(s.done)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("Run did not return within 30 s of cancel")
	}
	s.log.stop()
}
