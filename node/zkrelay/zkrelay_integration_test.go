//go:build integration

package zkrelay_test

import (
	"context"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/internal/zktest"
	"github.com/musubi-fabric/musubi/node/zkrelay"
)

// A session opened only through the relay's sockets works like a direct
// one, including an ephemeral node, and fails over to another server's
// socket when its server dies.
func TestSessionThroughRelay(t *testing.T) {
	ens := zktest.StartT(t, 3)
	r, err := zkrelay.New(zkrelay.Config{Dir: t.TempDir(), Servers: ens.Servers()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rctx, stop := context.WithCancel(ctx)
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- r.Run(rctx, func() { close(ready) }) }()
	defer func() {
		stop()
		if err := <-errc; err != nil {
			t.Errorf("relay: %v", err)
		}
	}()
	<-ready
	st, err := zkstore.Open(ctx, zkstore.Config{Servers: r.Addrs(), SessionTimeout: 4 * time.Second})
	if err != nil {
		t.Fatalf("open through the relay: %v", err)
	}
	defer st.Close()
	if _, err := st.Create(ctx, "/via-relay", []byte("x"), coord.Ephemeral, nil); err != nil {
		t.Fatal(err)
	}
	sid := st.SessionID()
	// The first socket relays to server 1: kill it; the session moves to
	// another server's socket and keeps its ephemeral node.
	if err := ens.Kill(1); err != nil {
		t.Fatal(err)
	}
	var data []byte
	for i := 0; i < 200; i++ {
		if data, _, err = st.Get(ctx, "/via-relay"); err == nil || !coord.Retryable(err) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || string(data) != "x" {
		t.Fatalf("after killing server 1: %q, %v", data, err)
	}
	if st.SessionID() != sid {
		t.Errorf("session %x replaced by %x: want the same session after failover", sid, st.SessionID())
	}
}
