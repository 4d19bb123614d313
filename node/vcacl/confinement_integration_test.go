//go:build integration

package vcacl_test

import (
	"context"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/internal/zktest"
)

// TestConfinementZooKeeper runs the layout's test on a real 3-server
// ensemble: every refusal comes from ZooKeeper itself (coord.ErrNoAuth).
// The first session (the peer's) creates the federation's chroot, so the
// chroot belongs to the federation.
func TestConfinementZooKeeper(t *testing.T) {
	ens := zktest.StartT(t, 3)
	servers := ens.Servers()
	n := 0
	connect := func(t *testing.T, creds []coord.Credential, defACL []coord.ACL) coord.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Spread the sessions over the servers, as agents at different
		// sites would be.
		n++
		st, err := zkstore.Open(ctx, zkstore.Config{
			Servers: append(servers[n%len(servers):], servers[:n%len(servers)]...), Root: coord.FederationRoot("acl"),
			Credentials: creds, DefaultACL: defACL, SessionTimeout: 4 * time.Second,
		})
		if err != nil {
			t.Fatalf("open session: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	confinement(t, connect, true)
}
