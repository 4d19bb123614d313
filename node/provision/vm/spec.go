package vm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/overlay"
)

// Backend runs the virtual nodes of one host.
type Backend interface {
	// Kind names the backend ("qemu", "netns", "fake").
	Kind() string
	// Ensure makes the node run as spec says and waits until it is ready.
	// A node already running with the same spec is left alone (only its
	// readiness is checked again); one whose process died is started
	// again; one running with another spec is an ErrConflict.
	Ensure(ctx context.Context, spec NodeSpec) (NodeState, error)
	// Remove stops the node called name ("<vc>/<node>") and deletes
	// everything it holds on the host. A missing node is not an error.
	Remove(ctx context.Context, name string) error
	// List returns every node of this backend found on the host, running
	// or not, sorted by name.
	List(ctx context.Context) ([]NodeState, error)
}

// ReadyFunc blocks until the node is ready (its agent has registered) or
// ctx ends, and returns nil when it is. Backends cancel ctx when the node's
// process exits.
type ReadyFunc func(ctx context.Context, st NodeState) error

// NodeSpec describes one virtual node.
type NodeSpec struct {
	// VC and Node name the virtual cluster and the node (coord names). The
	// node's name on the host is "<vc>/<node>".
	VC   string
	Node string
	// VLAN is the VC's tag on the integration bridge (1-4094).
	VLAN uint16
	// MAC and Addr are the node's address on the VC network (Addr with its
	// prefix length, for example 10.1.0.11/24); Gateway is optional.
	MAC     overlay.MAC
	Addr    netip.Prefix
	Gateway netip.Addr
	// MTU of the node's interface (0: DefaultMTU).
	MTU int

	// MemoryMiB and VCPUs size a QEMU guest (0: the backend's defaults).
	MemoryMiB int
	VCPUs     int
	// Boot is what a QEMU guest boots (kernel and initramfs of an image).
	Boot Boot
	// Disk is a QEMU guest's root disk (nil: diskless).
	Disk *Disk

	// Agent is the node's agent: for netns, the command run inside the
	// namespace (Args[0] is the program) with Env as its environment; for
	// qemu, only Env is used: the image's init starts the agent inside the
	// guest with it (keys MUSUBI_*, passed on the kernel command line, so
	// values must not contain spaces or quotes and must not be secrets).
	Agent Agent

	// Control is a QEMU guest's channel to the ZooKeeper ensemble (nil:
	// none; netns nodes reach it through their agent's environment).
	Control *Control
}

// Control is a QEMU guest's way to the ensemble without a route: its
// second NIC is QEMU user networking restricted to explicit forwards (the
// guest reaches nothing else), where a TCP connection to Forwards[i].Guest
// runs Pipe with Forwards[i].Socket appended, its standard input and
// output being the connection (QEMU's guestfwd cmd:) - Pipe relays them to
// the ZooKeeper relay's unix socket (node/zkrelay). The agent's
// credentials go to the guest as the fw_cfg file ControlSecretName, read
// from SecretFile (never on a command line).
type Control struct {
	Forwards   []Forward
	Pipe       []string
	SecretFile string
}

// Forward is one guest address forwarded to a unix socket.
type Forward struct {
	Guest  netip.AddrPort
	Socket string
}

// ControlSecretName is the fw_cfg name of the agent's credentials.
const ControlSecretName = "opt/org.musubi/agent"

// ControlNet is the guest side of the control NIC: the guest's address,
// and the subnet its forwards' addresses are in.
var ControlNet = netip.MustParsePrefix("10.0.2.15/24")

// Boot is a direct kernel boot.
type Boot struct {
	// Kernel and Initrd are absolute paths on the host.
	Kernel string
	Initrd string
	// Append holds extra kernel arguments.
	Append []string
}

// Disk is a guest's root disk: an iSCSI LUN (QEMU's libiscsi logs in with
// CHAP) or, when ISCSI is nil, a local raw file.
type Disk struct {
	ISCSI *ISCSIDisk
	// File is a raw image on the host (tests, hosts without a target).
	File string
}

// ISCSIDisk is an iSCSI logical unit and the credentials to reach it.
type ISCSIDisk struct {
	// Portal is "host:port" of the target.
	Portal string
	// Target is the target's IQN, LUN the logical unit (tgt's first is 1).
	Target string
	LUN    int
	// Initiator is the IQN the guest presents (the target's ACL admits it).
	Initiator string
	// User and Secret are the CHAP account. The secret is handed to QEMU
	// in a 0600 file read by a secret object, never on a command line, and
	// never logged or stored in the node's state.
	User   string
	Secret string `json:"-"`
}

// Agent is the agent command of a node.
type Agent struct {
	Args []string
	Env  map[string]string
}

// DefaultMTU leaves room for GRE and a VLAN tag on a 1500-byte underlay.
const DefaultMTU = 1400

// Name is "<vc>/<node>", the node's name on its host.
func (s NodeSpec) Name() string { return NodeName(s.VC, s.Node) }

// NodeName is "<vc>/<node>".
func NodeName(vc, node string) string { return vc + "/" + node }

// ParseName splits "<vc>/<node>".
func ParseName(name string) (vc, node string, err error) {
	vc, node, ok := strings.Cut(name, "/")
	if !ok {
		return "", "", fmt.Errorf("%w: node name %q: want <vc>/<node>", ErrInvalid, name)
	}
	if err := coord.ValidName(vc); err != nil {
		return "", "", fmt.Errorf("%w: node name %q: %v", ErrInvalid, name, err)
	}
	if err := coord.ValidName(node); err != nil {
		return "", "", fmt.Errorf("%w: node name %q: %v", ErrInvalid, name, err)
	}
	return vc, node, nil
}

// envKey is what agent environment keys may look like on the kernel
// command line.
var envKey = regexp.MustCompile(`^MUSUBI_[A-Z0-9_]{1,40}$`)

// Validate checks the fields every backend needs; backends check their own
// (Boot for qemu, Agent.Args for netns) on top.
func (s NodeSpec) Validate() error {
	if _, _, err := ParseName(s.Name()); err != nil {
		return err
	}
	if s.VLAN < 1 || s.VLAN > 4094 {
		return fmt.Errorf("%w: %s: VLAN %d not in 1-4094", ErrInvalid, s.Name(), s.VLAN)
	}
	if s.MAC.IsZero() || s.MAC.IsMulticast() {
		return fmt.Errorf("%w: %s: MAC %s", ErrInvalid, s.Name(), s.MAC)
	}
	if !s.Addr.IsValid() || !s.Addr.Addr().Is4() || s.Addr.Bits() < 8 || s.Addr.Bits() > 30 {
		return fmt.Errorf("%w: %s: address %s (want IPv4 with a /8-/30 prefix)", ErrInvalid, s.Name(), s.Addr)
	}
	if s.Gateway.IsValid() && (!s.Gateway.Is4() || !s.Addr.Masked().Contains(s.Gateway)) {
		return fmt.Errorf("%w: %s: gateway %s not in %s", ErrInvalid, s.Name(), s.Gateway, s.Addr.Masked())
	}
	if s.MTU != 0 && (s.MTU < 576 || s.MTU > 9000) {
		return fmt.Errorf("%w: %s: MTU %d", ErrInvalid, s.Name(), s.MTU)
	}
	if s.MemoryMiB < 0 || s.VCPUs < 0 {
		return fmt.Errorf("%w: %s: negative size", ErrInvalid, s.Name())
	}
	if c := s.Control; c != nil {
		if len(c.Forwards) == 0 || len(c.Pipe) == 0 || !strings.HasPrefix(c.Pipe[0], "/") {
			return fmt.Errorf("%w: %s: control channel needs forwards and an absolute pipe command", ErrInvalid, s.Name())
		}
		for _, f := range c.Forwards {
			if !f.Guest.IsValid() || !ControlNet.Masked().Contains(f.Guest.Addr()) || f.Guest.Addr() == ControlNet.Addr() ||
				!strings.HasPrefix(f.Socket, "/") || strings.ContainsAny(f.Socket, ", ") {
				return fmt.Errorf("%w: %s: control forward %s -> %s (want an address in %s, an absolute socket path without commas or spaces)",
					ErrInvalid, s.Name(), f.Guest, f.Socket, ControlNet.Masked())
			}
		}
		for _, a := range c.Pipe {
			if strings.ContainsAny(a, ", '\"\\") {
				return fmt.Errorf("%w: %s: control pipe argument %q (no commas, spaces or quotes)", ErrInvalid, s.Name(), a)
			}
		}
		if c.SecretFile != "" && (!strings.HasPrefix(c.SecretFile, "/") || strings.Contains(c.SecretFile, ",")) {
			return fmt.Errorf("%w: %s: control secret file %q", ErrInvalid, s.Name(), c.SecretFile)
		}
	}
	for k, v := range s.Agent.Env {
		if !envKey.MatchString(k) {
			return fmt.Errorf("%w: %s: agent environment key %q (want MUSUBI_[A-Z0-9_]+)", ErrInvalid, s.Name(), k)
		}
		if strings.ContainsAny(v, " \t\n\"'\\\x00") {
			return fmt.Errorf("%w: %s: agent environment %s: value has spaces, quotes or NULs", ErrInvalid, s.Name(), k)
		}
	}
	if d := s.Disk; d != nil {
		if (d.ISCSI == nil) == (d.File == "") {
			return fmt.Errorf("%w: %s: disk: give an iSCSI LUN or a file, exactly one", ErrInvalid, s.Name())
		}
		if d.File != "" && !strings.HasPrefix(d.File, "/") {
			return fmt.Errorf("%w: %s: disk file %q is not absolute", ErrInvalid, s.Name(), d.File)
		}
		if i := d.ISCSI; i != nil {
			if _, err := netip.ParseAddrPort(i.Portal); err != nil {
				return fmt.Errorf("%w: %s: iSCSI portal %q: %v", ErrInvalid, s.Name(), i.Portal, err)
			}
			if !provision.ValidIQN(i.Target) || !provision.ValidIQN(i.Initiator) {
				return fmt.Errorf("%w: %s: iSCSI target %q or initiator %q is not an IQN", ErrInvalid, s.Name(), i.Target, i.Initiator)
			}
			if i.LUN < 0 || i.LUN > 255 {
				return fmt.Errorf("%w: %s: LUN %d", ErrInvalid, s.Name(), i.LUN)
			}
			if (i.User == "") != (i.Secret == "") || strings.ContainsAny(i.User, " ,=\"'\\") {
				return fmt.Errorf("%w: %s: CHAP user and secret go together (user without spaces, commas or quotes)", ErrInvalid, s.Name())
			}
			if i.Secret != "" && !provision.ValidSecret(i.Secret) {
				return fmt.Errorf("%w: %s: CHAP secret has %d characters; want %d-%d letters and digits",
					ErrInvalid, s.Name(), len(i.Secret), provision.MinSecretLen, provision.MaxSecretLen)
			}
		}
	}
	return nil
}

// MTUOrDefault is the node's MTU.
func (s NodeSpec) MTUOrDefault() int {
	if s.MTU == 0 {
		return DefaultMTU
	}
	return s.MTU
}

// Hash identifies the spec: two specs with the same hash run the same node.
// The CHAP secret counts only through its own hash.
func (s NodeSpec) Hash() string {
	type hashed struct {
		NodeSpec
		EnvSorted  []string
		SecretHash string
	}
	h := hashed{NodeSpec: s}
	h.Agent.Env = nil
	for k, v := range s.Agent.Env {
		h.EnvSorted = append(h.EnvSorted, k+"="+v)
	}
	sort.Strings(h.EnvSorted)
	if s.Disk != nil && s.Disk.ISCSI != nil && s.Disk.ISCSI.Secret != "" {
		sum := sha256.Sum256([]byte("musubi-chap\x00" + s.Disk.ISCSI.Secret))
		h.SecretHash = hex.EncodeToString(sum[:8])
	}
	b, err := json.Marshal(h)
	if err != nil { // cannot happen: plain data
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// NodeState is a node as a backend finds it on the host.
type NodeState struct {
	// Name is "<vc>/<node>".
	Name string
	VC   string
	Node string
	// Backend is the backend's Kind.
	Backend string
	// Running: the node's process (QEMU or the agent) is alive.
	Running bool
	// PID of that process (0 when unknown).
	PID int
	// Port is the node's port on the integration bridge (tap or veth end),
	// VLAN its tag.
	Port string
	VLAN uint16
	// Netns is the node's namespace (netns backend) or the namespace QEMU
	// runs in ("" for the peer's own).
	Netns string
	// Log is the serial console log (qemu) or the agent's output (netns).
	Log string
	// Accel is QEMU's accelerator ("kvm" or "tcg").
	Accel string
	// Status is QEMU's run state from QMP (for example "running").
	Status string
	// StartedAt is when the backend started the process.
	StartedAt time.Time
	// SpecHash is the Hash of the spec the node was started with.
	SpecHash string
	// Problems lists what List found wrong (process gone, namespace or
	// port missing, leftovers without state). Ensure repairs a node with
	// problems; Remove deletes it.
	Problems []string
}

// Healthy reports whether the node runs and nothing is missing.
func (s NodeState) Healthy() bool { return s.Running && len(s.Problems) == 0 }

// PortName is the name of a node's port on the integration bridge: prefix
// (one or two letters telling the kind) and a hash of the node's name, so
// that it fits Linux's 15 bytes and is the same after a restart.
func PortName(prefix, name string) string {
	sum := sha256.Sum256([]byte(name))
	return prefix + hex.EncodeToString(sum[:])[:15-len(prefix)]
}
