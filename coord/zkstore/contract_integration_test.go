//go:build integration

package zkstore

import (
	"sync"
	"testing"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/coordtest"
)

// TestContract runs the coord.Store contract suite against the shared
// ensemble; every subtest gets a fresh chroot.
//
// The stores use coord.DefaultACL for nodes created with a nil ACL, as
// memstore does.
func TestContract(t *testing.T) {
	e := sharedEnsemble(t)
	var sniffers sync.Map // *Store -> *sessionSniffer
	coordtest.Run(t, coordtest.Harness{
		NewCluster: func(t *testing.T) coordtest.Cluster {
			root := uniqueRoot(t)
			// The chroot (and its ancestors) must be open to every session
			// of the namespace: create it anonymously first, as a federation
			// is set up before sessions with credentials use it.
			anon, _ := openTest(t, e, Config{Root: root})
			anon.Close()
			return coordtest.Cluster{
				Connect: func(t *testing.T, creds ...coord.Credential) coord.Store {
					s, sn := openTest(t, e, Config{Root: root, Credentials: creds})
					sniffers.Store(s, sn)
					return s
				},
				Expire: func(t *testing.T, cs coord.Store) {
					s := cs.(*Store)
					sn, ok := sniffers.Load(s)
					if !ok {
						t.Fatalf("Expire: store not from this cluster")
					}
					expire(t, e, s, sn.(*sessionSniffer))
				},
			}
		},
	})
}
