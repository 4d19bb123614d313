package lifecycle

import (
	"context"
	"sync"

	"github.com/musubi-fabric/musubi/node/provision"
)

// PortGuard is the port driver to give the node backends: it passes
// everything to the site's driver, except that it does not remove a port
// whose node record the reconciler has published and not yet withdrawn.
//
// The overlay's switch keeps a port in its desired state (with the flows
// that use it) as long as the node's record exists, and the record must
// therefore be deleted before the port is removed. A backend that rebuilds
// a crashed node inside Ensure (the netns backend clears what is left
// first) would remove the port while its record still exists: the switch's
// remembered state then has flows for a port it lacks, and ensuring any
// other port of the bridge fails until the overlay applies again. With the
// guard the row stays; the rebuilt device is attached to it when it
// appears, as the overlay would have it. The reconciler withdraws a
// record (and lifts the guard) before it removes a node for good.
type PortGuard struct {
	provision.PortDriver

	mu        sync.Mutex
	published map[string]bool
}

var _ provision.PortDriver = (*PortGuard)(nil)

// NewPortGuard guards inner.
func NewPortGuard(inner provision.PortDriver) *PortGuard {
	return &PortGuard{PortDriver: inner, published: map[string]bool{}}
}

// Remove implements provision.PortDriver: a published port is left alone.
func (g *PortGuard) Remove(ctx context.Context, name string) error {
	if g.Published(name) {
		return nil
	}
	return g.PortDriver.Remove(ctx, name)
}

// Published reports whether the port's record is published.
func (g *PortGuard) Published(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.published[name]
}

// publish marks a port whose record is written.
func (g *PortGuard) publish(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.published[name] = true
}

// withdraw unmarks a port whose record is deleted.
func (g *PortGuard) withdraw(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.published, name)
}
