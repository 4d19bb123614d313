package lifecycle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/musubi-fabric/musubi/node/provision"
	"github.com/musubi-fabric/musubi/node/provision/vm"
)

// AttachSpec is a volume to attach to a node: the iSCSI logical unit and
// the credentials to log in to it.
type AttachSpec struct {
	// VC and Node name the node ("<vc>/<node>" is the attachment's name).
	VC, Node string
	// Portal ("host:port"), Target (IQN) and LUN locate the volume.
	Portal string
	Target string
	LUN    int
	// Initiator is the IQN presented (the target's ACL admits only it).
	Initiator string
	// User and Secret are the CHAP account; the secret is never logged,
	// stored in the attachment's state or put on a command line.
	User   string
	Secret string `json:"-"`
}

// Name is "<vc>/<node>".
func (s AttachSpec) Name() string { return s.VC + "/" + s.Node }

// Validate checks the spec.
func (s AttachSpec) Validate() error {
	if _, _, err := vm.ParseName(s.Name()); err != nil {
		return err
	}
	if _, err := netip.ParseAddrPort(s.Portal); err != nil {
		return fmt.Errorf("%w: %s: portal %q", ErrAttach, s.Name(), s.Portal)
	}
	if !provision.ValidIQN(s.Target) || !provision.ValidIQN(s.Initiator) {
		return fmt.Errorf("%w: %s: target %q or initiator %q is not an IQN", ErrAttach, s.Name(), s.Target, s.Initiator)
	}
	if s.LUN < 0 || s.LUN > 255 {
		return fmt.Errorf("%w: %s: LUN %d", ErrAttach, s.Name(), s.LUN)
	}
	for _, c := range []byte(s.User) {
		if c <= ' ' || c == ',' || c == '"' || c == '\'' || c == '\\' || c == '=' {
			return fmt.Errorf("%w: %s: CHAP user %q", ErrAttach, s.Name(), s.User)
		}
	}
	if (s.User == "") != (s.Secret == "") || (s.Secret != "" && !provision.ValidSecret(s.Secret)) {
		return fmt.Errorf("%w: %s: CHAP user and a well-formed secret go together", ErrAttach, s.Name())
	}
	return nil
}

// Hash identifies the spec (the secret only through its own hash).
func (s AttachSpec) Hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%s\x00%s\x00", s.Name(), s.Portal, s.Target, s.LUN, s.Initiator, s.User)
	sec := sha256.Sum256([]byte("musubi-attach-chap\x00" + s.Secret))
	h.Write(sec[:])
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Attachment is an attached volume as the Attacher finds it.
type Attachment struct {
	Name, VC, Node string
	// URL is where the node reaches its disk (for NBDAttacher an
	// nbd+unix URL: qemu-io and qemu-img open it as is).
	URL string
	// PID is the process serving it; Running whether it is alive.
	PID     int
	Running bool
	// SpecHash is the Hash of the spec it was made from.
	SpecHash string
	// Problems lists what is wrong (process gone, no state).
	Problems []string
}

// Attacher attaches volumes to nodes whose backend cannot open them
// itself. Like the drivers of package provision it is declarative and
// idempotent, and List reports what really exists on the host.
type Attacher interface {
	// Ensure makes the attachment exist as spec says and returns it once
	// the disk can be opened.
	Ensure(ctx context.Context, spec AttachSpec) (Attachment, error)
	// Remove deletes the attachment of "<vc>/<node>" and everything it
	// holds; a missing one is not an error.
	Remove(ctx context.Context, name string) error
	// List returns every attachment on the host, sorted by name.
	List(ctx context.Context) ([]Attachment, error)
}

// MemAttacher is an in-memory Attacher for tests: a restarted reconciler
// given the same value sees what the previous one attached. FailNext makes
// the next call of an operation fail.
type MemAttacher struct {
	mu   sync.Mutex
	m    map[string]Attachment
	fail map[string]error
	pid  int
}

var _ Attacher = (*MemAttacher)(nil)

// NewMemAttacher returns an empty in-memory attacher.
func NewMemAttacher() *MemAttacher {
	return &MemAttacher{m: map[string]Attachment{}, fail: map[string]error{}, pid: 1000}
}

// FailNext makes the next call of op ("ensure", "remove", "list") fail
// with err.
func (a *MemAttacher) FailNext(op string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail[op] = err
}

func (a *MemAttacher) failed(op string) error {
	err := a.fail[op]
	delete(a.fail, op)
	return err
}

// Ensure implements Attacher.
func (a *MemAttacher) Ensure(ctx context.Context, spec AttachSpec) (Attachment, error) {
	if err := spec.Validate(); err != nil {
		return Attachment{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.failed("ensure"); err != nil {
		return Attachment{}, err
	}
	if at, ok := a.m[spec.Name()]; ok && at.SpecHash == spec.Hash() {
		return at, nil
	}
	a.pid++
	at := Attachment{Name: spec.Name(), VC: spec.VC, Node: spec.Node, URL: "mem://" + spec.Name(),
		PID: a.pid, Running: true, SpecHash: spec.Hash()}
	a.m[spec.Name()] = at
	return at, nil
}

// Remove implements Attacher.
func (a *MemAttacher) Remove(ctx context.Context, name string) error {
	if _, _, err := vm.ParseName(name); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.failed("remove"); err != nil {
		return err
	}
	delete(a.m, name)
	return nil
}

// List implements Attacher.
func (a *MemAttacher) List(ctx context.Context) ([]Attachment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.failed("list"); err != nil {
		return nil, err
	}
	out := make([]Attachment, 0, len(a.m))
	for _, at := range a.m {
		out = append(out, at)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
