package qmp_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/node/provision/vm/qmp"
	"github.com/musubi-fabric/musubi/node/provision/vm/qmp/qmptest"
)

func start(t *testing.T) *qmptest.Server {
	t.Helper()
	s, err := qmptest.Start(filepath.Join(t.TempDir(), "qmp.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCommands(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	c, err := qmp.Dial(ctx, s.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := c.Version(); v.String() != "7.2.0" || v.Package != "fake" {
		t.Fatalf("version %+v", v)
	}
	st, err := c.QueryStatus(ctx)
	if err != nil || !st.Running || st.Status != "running" {
		t.Fatalf("status %+v %v", st, err)
	}
	s.SetStatus("paused")
	if st, err := c.QueryStatus(ctx); err != nil || st.Running || st.Status != "paused" {
		t.Fatalf("status %+v %v", st, err)
	}
	if err := c.SystemPowerdown(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := c.Events(); len(ev) != 1 || ev[0].Name != "POWERDOWN" {
		t.Fatalf("events %+v", ev)
	}
	err = c.Execute(ctx, "no-such-command", nil, nil)
	var qe *qmp.Error
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" || !errors.Is(err, qmp.ErrCommand) {
		t.Fatalf("unknown command: %v", err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Execute(ctx, "query-status", nil, nil); err == nil {
		t.Fatal("command after quit succeeded")
	}
	if got, want := s.Calls(), []string{"qmp_capabilities", "query-status", "query-status", "system_powerdown", "no-such-command", "quit"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

func TestNegotiationFailure(t *testing.T) {
	s := start(t)
	s.Fail["qmp_capabilities"] = "GenericError"
	if _, err := qmp.Dial(context.Background(), s.Path); !errors.Is(err, qmp.ErrCommand) {
		t.Fatalf("Dial: %v", err)
	}
}

// A peer that is not QMP, or says nothing, fails within the deadline.
func TestBadPeer(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if i == 0 {
				c.Write([]byte("hello, not qmp\n"))
			}
			// the second one stays silent until the client gives up
			defer c.Close()
		}
	}()
	if _, err := qmp.Dial(context.Background(), filepath.Join(dir, "s")); !errors.Is(err, qmp.ErrProtocol) {
		t.Fatalf("Dial of a non-QMP peer: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if _, err := qmp.Dial(ctx, filepath.Join(dir, "s")); err == nil {
		t.Fatal("Dial of a silent peer succeeded")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("silent peer held the client %v", d)
	}
	ln.Close()
	<-done
}
