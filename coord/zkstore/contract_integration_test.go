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
// The stores are configured as memstore's are by default: nodes created
// with a nil ACL are open to all (world:anyone, all permissions), also for
// sessions with credentials. zkstore's own default for such sessions is
// digest-only; with it, other sessions could neither read those nodes nor
// get watch events on them (ZooKeeper 3.8 fires a watch only for sessions
// that may read the node), and the suite's cross-session checks would
// fail for that reason alone.
func TestContract(t *testing.T) {
	e := sharedEnsemble(t)
	var sniffers sync.Map // *Store -> *sessionSniffer
	coordtest.Run(t, coordtest.Harness{
		NewCluster: func(t *testing.T) coordtest.Cluster {
			root := uniqueRoot(t)
			return coordtest.Cluster{
				Connect: func(t *testing.T, creds ...coord.Credential) coord.Store {
					s, sn := openTest(t, e, Config{Root: root, Credentials: creds, DefaultACL: coord.WorldACL(coord.PermAll)})
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
