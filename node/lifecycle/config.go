package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/image"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/netns"
	"github.com/musubi-fabric/musubi/node/provision/vm/qemu"
	"github.com/musubi-fabric/musubi/node/reserve"
)

// Clock is the reconciler's time: window boundaries, retries and resyncs
// are all measured on it, so tests drive them with a fake.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed, and a
	// function that releases the timer early.
	After(d time.Duration) (<-chan time.Time, func())
}

// SystemClock is the real time.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// After implements Clock.
func (SystemClock) After(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// Image is what a VC's application image gives its nodes.
type Image struct {
	// RootDisk is the raw image the nodes' volumes are cloned from
	// (absolute path on the storage host).
	RootDisk string
	// Kernel and Initrd boot a QEMU node (absolute paths).
	Kernel, Initrd string
}

// ImageFunc resolves the image a reservation names.
type ImageFunc func(ctx context.Context, name string) (Image, error)

// ImagesFromStore resolves image names against a site's image store (an
// image id, or a unique prefix of at least 8 hex digits of one). An
// absolute path names a raw disk image directly (no kernel: netns nodes
// only).
func ImagesFromStore(st image.Store) ImageFunc {
	return func(ctx context.Context, name string) (Image, error) {
		if filepath.IsAbs(name) {
			if _, err := os.Stat(name); err != nil {
				return Image{}, fmt.Errorf("%w: %v", ErrImage, err)
			}
			return Image{RootDisk: name}, nil
		}
		id := name
		if !image.ValidID(name) {
			if len(name) < 8 {
				return Image{}, fmt.Errorf("%w: %q is not an image id", ErrImage, name)
			}
			all, err := st.List()
			if err != nil {
				return Image{}, fmt.Errorf("%w: %v", ErrImage, err)
			}
			id = ""
			for _, im := range all {
				if strings.HasPrefix(im.ID, name) {
					if id != "" {
						return Image{}, fmt.Errorf("%w: %q names several images", ErrImage, name)
					}
					id = im.ID
				}
			}
			if id == "" {
				return Image{}, fmt.Errorf("%w: no image %q in %s", ErrImage, name, st.Dir)
			}
		}
		im, err := st.Get(id)
		if err != nil {
			return Image{}, fmt.Errorf("%w: %v", ErrImage, err)
		}
		return Image{RootDisk: im.RootDisk, Kernel: im.Kernel, Initrd: im.Initrd}, nil
	}
}

// Config configures a Reconciler.
type Config struct {
	// Site is this peer's site; only its share of each VC is built here.
	Site string
	// Store is the peer's coordination session (not closed by the
	// reconciler).
	Store coord.Store
	// Reserver purges ended reservations (default: one over Store).
	Reserver *reserve.Reserver
	// Backends are the node backends by compute host name (this site's
	// hosts).
	Backends map[string]vm.Backend
	// Volumes are the volume drivers by storage host name.
	Volumes map[string]provision.VolumeDriver
	// Attacher attaches volumes to the nodes of backends that do not open
	// disks themselves (netns). Nil: such nodes cannot have a disk.
	Attacher Attacher
	// Ports, when set, is this site's VC port driver: teardown removes
	// any port of the VC the backends left.
	Ports provision.PortDriver
	// PortGuard, when set, is the guarded port driver the backends were
	// given (NewPortGuard over Ports): the reconciler tells it which node
	// records are published.
	PortGuard *PortGuard
	// Images resolves the VCs' application images.
	Images ImageFunc
	// Agent is the agent command of a netns node (its Env is merged with
	// the reconciler's MUSUBI_* variables). Nil: DefaultAgent.
	Agent func(n NodePlan) vm.Agent
	// AgentSecret returns the credentials file (vcacl.AgentSecret's file
	// form) for the agents of a VC's netns nodes: written per node under
	// the secrets directory (mode 0600), passed as MUSUBI_AGENT_SECRET and
	// removed with the node. Nil: agents get no credentials.
	AgentSecret func(vc string) ([]byte, error)
	// GuestControl gives QEMU guests a control channel to the ensemble
	// (vm.Control) so that their agents register; nil: guests have none
	// and their readiness must come from the console (LogReady).
	GuestControl *GuestControl
	// StateDir holds the reconciler's files: the CHAP secrets
	// (<StateDir>/secrets, mode 0700, files 0600).
	StateDir string
	// Network addresses the nodes.
	Network Network
	// Clock is the time (default SystemClock).
	Clock Clock
	// Parallel bounds the nodes built or removed at once (default 4).
	Parallel int
	// Resync is how often a ready share is checked again (crashed nodes
	// restarted; default 30 s).
	Resync time.Duration
	// RetryMin and RetryMax bound the backoff after a failed build or
	// teardown, measured from the failed attempt's start (defaults 1 s and
	// 1 min).
	RetryMin, RetryMax time.Duration
	// FailAfter is how many failed builds in a row turn the site's status
	// to "failed" (default 3; it is retried all the same).
	FailAfter int
	// Logger receives the reconciler's logs (default: discard). Secrets
	// never reach it.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultParallel  = 4
	DefaultResync    = 30 * time.Second
	DefaultRetryMin  = time.Second
	DefaultRetryMax  = time.Minute
	DefaultFailAfter = 3
)

// GuestControl is how QEMU guests reach the ZooKeeper relay.
type GuestControl struct {
	// Sockets are the relay's sockets (node/zkrelay), this site's server's
	// first.
	Sockets []string
	// Pipe is the command QEMU runs per guest connection with the socket
	// appended (e.g. ["/usr/bin/musubi", "relay-pipe"]).
	Pipe []string
	// Env is more of the guest agent's settings (e.g. MUSUBI_ROOT): passed
	// on the kernel command line, so never secrets.
	Env map[string]string
}

// DefaultAgent runs "musubi agent" (the running binary's path), which
// takes its settings from the MUSUBI_* environment.
func DefaultAgent(n NodePlan) vm.Agent {
	exe, err := os.Executable()
	if err != nil {
		exe = "musubi"
	}
	return vm.Agent{Args: []string{exe, "agent"}}
}

func (c *Config) setDefaults() error {
	if c.Store == nil {
		return fmt.Errorf("%w: no store", ErrConfig)
	}
	if err := coord.ValidName(c.Site); err != nil {
		return fmt.Errorf("%w: site: %v", ErrConfig, err)
	}
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("%w: state directory %q is not an absolute path", ErrConfig, c.StateDir)
	}
	c.Network = c.Network.withDefaults()
	if err := c.Network.validate(); err != nil {
		return err
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Reserver == nil {
		r, err := reserve.New(reserve.Config{Store: c.Store, Logger: c.Logger, Now: c.Clock.Now, Owner: c.Site})
		if err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
		c.Reserver = r
	}
	if c.Agent == nil {
		c.Agent = DefaultAgent
	}
	if c.Parallel <= 0 {
		c.Parallel = DefaultParallel
	}
	if c.Resync <= 0 {
		c.Resync = DefaultResync
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	if c.FailAfter <= 0 {
		c.FailAfter = DefaultFailAfter
	}
	for h, b := range c.Backends {
		if b == nil {
			return fmt.Errorf("%w: host %s has a nil backend", ErrConfig, h)
		}
	}
	for h, v := range c.Volumes {
		if v == nil {
			return fmt.Errorf("%w: storage host %s has a nil driver", ErrConfig, h)
		}
	}
	return nil
}

// opensDisks reports whether a backend opens iSCSI disks itself (QEMU);
// the others get their volume through the Attacher.
func opensDisks(b vm.Backend) bool { return b.Kind() == qemu.Kind }

// portName is the port the backend gives node name, known before the node
// exists so that the node record can precede the port.
func portName(b vm.Backend, name string) string {
	switch b.Kind() {
	case qemu.Kind:
		return vm.PortName(qemu.TapPrefix, name)
	case netns.Kind:
		return vm.PortName(netns.PortPrefix, name)
	}
	return vm.PortName("mf", name) // fakevm's
}
