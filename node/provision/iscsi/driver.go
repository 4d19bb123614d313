package iscsi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/provision"
)

// Config configures a Driver.
type Config struct {
	// Dir holds the driver's state: <vc>/<node>.json (the secret's digest)
	// and, with the file backend, the clones <vc>/<node>.img. It must be on
	// a filesystem with sparse files.
	Dir string
	// Portal is the "host:port" initiators reach tgtd at, reported in every
	// Volume.
	Portal string
	// Mgmt executes tgt requests: normally Socket{Path: <tgtd's socket>}
	// (see Daemon.Mgmt), which keeps secrets off command lines.
	Mgmt Mgmt
	// Runner runs cp, dmsetup and the LVM commands (default ExecRunner).
	Runner Runner
	// Backend is "file", "lvm", "qcow2" or "" (auto: lvm when VolumeGroup
	// is set and device-mapper works, file otherwise; qcow2 only when asked
	// for).
	Backend string
	// VolumeGroup is the LVM volume group holding the images and clones.
	VolumeGroup string
	// DMControl is device-mapper's control node (default DefaultDMControl).
	DMControl string
	// Rand is the secrets' randomness (default crypto/rand).
	Rand io.Reader
	// Logger receives the driver's logs; secrets never reach it.
	Logger *slog.Logger
}

// Driver provisions iSCSI volumes on one storage host's tgtd: per volume a
// copy-on-write clone of the application image, one target
// (TargetIQN(vc, node)) with the clone as LUN 1, one incoming CHAP account
// (CHAPUser(vc, node)) with a random secret, and an ACL admitting only the
// node's initiator. It implements provision.VolumeDriver.
type Driver struct {
	cfg Config
	be  backend
	log *slog.Logger

	tgtMu sync.Mutex // serialises tgt changes (target ids are chosen from a show)

	mu    sync.Mutex
	locks map[string]*volLock
}

type volLock struct {
	mu   sync.Mutex
	refs int
}

var _ provision.VolumeDriver = (*Driver)(nil)

// LUN is the logical unit number of every volume (LUN 0 is tgt's
// controller).
const LUN = 1

// New checks cfg, chooses the backend (detecting device-mapper for "auto")
// and returns a Driver.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.Dir == "" || !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("%w: state directory %q is not an absolute path", ErrConfig, cfg.Dir)
	}
	if cfg.Portal == "" {
		return nil, fmt.Errorf("%w: no portal", ErrConfig)
	}
	if _, err := netip.ParseAddrPort(cfg.Portal); err != nil {
		return nil, fmt.Errorf("%w: portal %q: %v", ErrConfig, cfg.Portal, err)
	}
	if cfg.Mgmt == nil {
		return nil, fmt.Errorf("%w: no tgt management transport", ErrConfig)
	}
	if cfg.Runner == nil {
		cfg.Runner = ExecRunner{}
	}
	if cfg.DMControl == "" {
		cfg.DMControl = DefaultDMControl
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Driver{cfg: cfg, log: cfg.Logger, locks: map[string]*volLock{}}
	switch cfg.Backend {
	case BackendFile:
	case BackendQcow2:
		if strings.Contains(cfg.Dir, ",") {
			return nil, fmt.Errorf("%w: qcow2 backend: state directory %q contains a comma (QEMU option syntax)", ErrConfig, cfg.Dir)
		}
		d.be = &qcow2Backend{dir: cfg.Dir, run: cfg.Runner, mounted: isMounted}
	case BackendLVM, "":
		if cfg.VolumeGroup == "" {
			if cfg.Backend == BackendLVM {
				return nil, fmt.Errorf("%w: LVM backend without a volume group", ErrConfig)
			}
			break
		}
		if err := DetectDeviceMapper(ctx, cfg.Runner, cfg.DMControl); err != nil {
			if cfg.Backend == BackendLVM {
				return nil, fmt.Errorf("%w: LVM backend: %v", ErrConfig, err)
			}
			d.log.Info("device-mapper not usable; volumes are sparse file clones", "reason", err)
			break
		}
		d.be = &lvmBackend{vg: cfg.VolumeGroup, run: cfg.Runner}
	default:
		return nil, fmt.Errorf("%w: backend %q", ErrConfig, cfg.Backend)
	}
	if d.be == nil {
		d.be = &fileBackend{dir: cfg.Dir, run: cfg.Runner}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return d, nil
}

// Backend is the storage backend in use ("file" or "lvm").
func (d *Driver) Backend() string { return d.be.name() }

func (d *Driver) lock(name string) func() {
	d.mu.Lock()
	l := d.locks[name]
	if l == nil {
		l = &volLock{}
		d.locks[name] = l
	}
	l.refs++
	d.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		d.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(d.locks, name)
		}
		d.mu.Unlock()
	}
}

func (d *Driver) do(ctx context.Context, r Request) (string, error) {
	out, err := d.cfg.Mgmt.Do(ctx, r)
	if err != nil {
		d.log.Debug("tgt request failed", "request", r.String(), "err", err)
		return "", fmt.Errorf("%s: %w", r.String(), err)
	}
	if r.Op != OpShow {
		d.log.Debug("tgt request", "request", r.String())
	}
	return out, nil
}

func (d *Driver) targets(ctx context.Context) ([]TargetState, error) {
	out, err := d.do(ctx, Request{Mode: ModeTarget, Op: OpShow})
	if err != nil {
		return nil, err
	}
	return ParseTargets(out)
}

func (d *Driver) accounts(ctx context.Context) ([]string, error) {
	out, err := d.do(ctx, Request{Mode: ModeAccount, Op: OpShow})
	if err != nil {
		return nil, err
	}
	return ParseAccounts(out)
}

// Ensure implements provision.VolumeDriver. The order keeps the target
// closed until it is complete: tgt refuses every login to a target whose
// ACL is empty, and the ACL is bound last, after the LUN and the CHAP
// account; replacing a secret first unbinds the ACL.
func (d *Driver) Ensure(ctx context.Context, spec provision.VolumeSpec) (provision.Volume, error) {
	if err := spec.Validate(); err != nil {
		return provision.Volume{}, err
	}
	if err := checkNames(spec.VC, spec.Node); err != nil {
		return provision.Volume{}, err
	}
	unlock := d.lock(spec.Name())
	defer unlock()
	size, fresh, err := d.be.ensure(ctx, spec.Image, spec.VC, spec.Node, spec.Size)
	if err != nil {
		return provision.Volume{}, fmt.Errorf("volume %s: %w", spec.Name(), err)
	}
	if spec.Size != 0 && size != spec.Size {
		return provision.Volume{}, fmt.Errorf("%w: volume %s exists with %d bytes, spec asks %d", provision.ErrInvalid, spec.Name(), size, spec.Size)
	}
	m, err := readMeta(d.cfg.Dir, spec.VC, spec.Node)
	if err != nil {
		return provision.Volume{}, err
	}
	if m.Image != spec.Image {
		m.Image = spec.Image
		if err := writeMeta(d.cfg.Dir, spec.VC, spec.Node, m); err != nil {
			return provision.Volume{}, err
		}
	}
	d.tgtMu.Lock()
	defer d.tgtMu.Unlock()
	secret, err := d.ensureTarget(ctx, spec, m, fresh)
	if err != nil {
		return provision.Volume{}, fmt.Errorf("volume %s: %w", spec.Name(), err)
	}
	v := d.volume(spec.VC, spec.Node, size)
	v.CHAPSecret = secret
	v.InitiatorName, v.InitiatorAddress = spec.InitiatorName, spec.InitiatorAddress
	return v, nil
}

func (d *Driver) volume(vc, node string, size int64) provision.Volume {
	return provision.Volume{
		Name: provision.VolumeName(vc, node), VC: vc, Node: node,
		Target: TargetIQN(vc, node), LUN: LUN, Portal: d.cfg.Portal, CHAPUser: CHAPUser(vc, node),
		Backend: d.be.name(), Path: d.be.path(vc, node), Size: size,
	}
}

func findTarget(ts []TargetState, iqn string) *TargetState {
	for i := range ts {
		if ts[i].Name == iqn {
			return &ts[i]
		}
	}
	return nil
}

func freeTID(ts []TargetState) int {
	used := map[int]bool{}
	for _, t := range ts {
		used[t.TID] = true
	}
	for tid := 1; ; tid++ {
		if !used[tid] {
			return tid
		}
	}
}

// ensureTarget brings the target, LUN, account and ACL of spec in line and
// returns the CHAP secret the target requires. Called with tgtMu held.
//
// freshClone says the clone was just made: a LUN that already exists then
// serves an older file (tgtd keeps it open even after it is deleted) and is
// replaced.
func (d *Driver) ensureTarget(ctx context.Context, spec provision.VolumeSpec, m meta, freshClone bool) (string, error) {
	iqn := TargetIQN(spec.VC, spec.Node)
	ts, err := d.targets(ctx)
	if err != nil {
		return "", err
	}
	t := findTarget(ts, iqn)
	if t == nil {
		tid := freeTID(ts)
		if _, err := d.do(ctx, Request{Mode: ModeTarget, Op: OpNew, TID: tid, TargetName: iqn}); err != nil {
			return "", err
		}
		d.log.Info("created target", "target", iqn, "tid", tid)
		t = &TargetState{TID: tid, Name: iqn}
	}
	path := d.be.path(spec.VC, spec.Node)
	if l, ok := t.LUN(LUN); ok && (l.BackingStore != path || freshClone) {
		if _, err := d.do(ctx, Request{Mode: ModeLU, Op: OpDelete, TID: t.TID, LUN: LUN}); err != nil {
			return "", err
		}
		t.LUNs = nil
	}
	if _, ok := t.LUN(LUN); !ok {
		if _, err := d.do(ctx, Request{Mode: ModeLU, Op: OpNew, TID: t.TID, LUN: LUN, BackingStore: path, BSType: "rdwr"}); err != nil {
			return "", err
		}
	}
	secret, err := d.ensureAccount(ctx, spec, t, m)
	if err != nil {
		return "", err
	}
	want := spec.InitiatorName
	if want == "" {
		want = spec.InitiatorAddress.String()
	}
	for _, a := range t.ACL {
		if a != want {
			if err := d.unbindACL(ctx, t.TID, a); err != nil {
				return "", err
			}
		}
	}
	if !slices.Contains(t.ACL, want) {
		r := Request{Mode: ModeTarget, Op: OpBind, TID: t.TID, InitiatorName: spec.InitiatorName}
		if spec.InitiatorName == "" {
			r.InitiatorAddress = want
		}
		if _, err := d.do(ctx, r); err != nil && !IsCode(err, CodeACLExists) {
			return "", err
		}
	}
	return secret, nil
}

func (d *Driver) unbindACL(ctx context.Context, tid int, entry string) error {
	r := Request{Mode: ModeTarget, Op: OpUnbind, TID: tid, InitiatorName: entry}
	if isAddressACL(entry) {
		r = Request{Mode: ModeTarget, Op: OpUnbind, TID: tid, InitiatorAddress: entry}
	}
	if _, err := d.do(ctx, r); err != nil && !IsCode(err, CodeNoACL) {
		return err
	}
	return nil
}

// isAddressACL tells address entries of a target's ACL ("ALL", an address,
// a prefix) from initiator names.
func isAddressACL(entry string) bool {
	if entry == "ALL" {
		return true
	}
	if _, err := netip.ParseAddr(entry); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(entry)
	return err == nil
}

// ensureAccount makes the target's one incoming account CHAPUser with the
// caller's secret (or a new one) and returns the secret.
func (d *Driver) ensureAccount(ctx context.Context, spec provision.VolumeSpec, t *TargetState, m meta) (string, error) {
	user := CHAPUser(spec.VC, spec.Node)
	accts, err := d.accounts(ctx)
	if err != nil {
		return "", err
	}
	exists := slices.Contains(accts, user)
	if !exists || !m.secretIs(spec.CHAPSecret) {
		secret := spec.CHAPSecret
		if secret == "" {
			if secret, err = NewSecret(d.cfg.Rand); err != nil {
				return "", err
			}
		}
		// Close the target while its secret changes.
		for _, a := range t.ACL {
			if err := d.unbindACL(ctx, t.TID, a); err != nil {
				return "", err
			}
		}
		t.ACL = nil
		t.Incoming = slices.DeleteFunc(t.Incoming, func(u string) bool { return u == user })
		// Record the digest first: after a crash between here and the
		// account's creation the digest no longer matches what the caller
		// stored, so the next Ensure sets the secret again.
		m.SecretSHA256 = digest(secret)
		if err := writeMeta(d.cfg.Dir, spec.VC, spec.Node, m); err != nil {
			return "", err
		}
		if exists {
			if _, err := d.do(ctx, Request{Mode: ModeAccount, Op: OpDelete, User: user}); err != nil && !IsCode(err, CodeNoUser) {
				return "", err
			}
		}
		if _, err := d.do(ctx, Request{Mode: ModeAccount, Op: OpNew, User: user, Password: secret}); err != nil {
			return "", err
		}
		d.log.Info("set CHAP account", "target", t.Name, "user", user, "replaced", exists)
		spec.CHAPSecret = secret
	}
	for _, u := range t.Incoming {
		if u != user {
			if _, err := d.do(ctx, Request{Mode: ModeAccount, Op: OpUnbind, TID: t.TID, User: u}); err != nil && !IsCode(err, CodeNoUser) {
				return "", err
			}
		}
	}
	if !slices.Contains(t.Incoming, user) {
		if _, err := d.do(ctx, Request{Mode: ModeAccount, Op: OpBind, TID: t.TID, User: user}); err != nil {
			return "", err
		}
	}
	return spec.CHAPSecret, nil
}

// Remove implements provision.VolumeDriver: it closes the target (ACL
// unbound), deletes it even with sessions logged in, deletes the account,
// the clone and the state file.
func (d *Driver) Remove(ctx context.Context, name string) error {
	vc, node, err := provision.ParseVolumeName(name)
	if err != nil {
		return err
	}
	unlock := d.lock(name)
	defer unlock()
	if err := d.removeTarget(ctx, vc, node); err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if err := d.be.remove(ctx, vc, node); err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	if err := removeMeta(d.cfg.Dir, vc, node); err != nil {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	return nil
}

func (d *Driver) removeTarget(ctx context.Context, vc, node string) error {
	d.tgtMu.Lock()
	defer d.tgtMu.Unlock()
	ts, err := d.targets(ctx)
	if err != nil {
		return err
	}
	if t := findTarget(ts, TargetIQN(vc, node)); t != nil {
		for _, a := range t.ACL {
			if err := d.unbindACL(ctx, t.TID, a); err != nil {
				return err
			}
		}
		if _, err := d.do(ctx, Request{Mode: ModeTarget, Op: OpDelete, TID: t.TID, Force: true}); err != nil && !IsCode(err, CodeNoTarget) {
			return err
		}
		d.log.Info("deleted target", "target", t.Name, "tid", t.TID, "sessions", t.Sessions)
	}
	user := CHAPUser(vc, node)
	if _, err := d.do(ctx, Request{Mode: ModeAccount, Op: OpDelete, User: user}); err != nil && !IsCode(err, CodeNoUser) {
		return err
	}
	return nil
}

// List implements provision.VolumeDriver: it reads tgtd's targets and
// accounts, the backend's clones and the state files, and reports every
// musubi volume any of them mentions, with what is missing in Problems.
func (d *Driver) List(ctx context.Context) ([]provision.Volume, error) {
	ts, err := d.targets(ctx)
	if err != nil {
		return nil, err
	}
	accts, err := d.accounts(ctx)
	if err != nil {
		return nil, err
	}
	clones, err := d.be.list(ctx)
	if err != nil {
		return nil, err
	}
	metas, err := listMeta(d.cfg.Dir)
	if err != nil {
		return nil, err
	}
	type seen struct {
		t              *TargetState
		account, meta  bool
		clone          *clone
		vc, node, name string
	}
	all := map[string]*seen{}
	get := func(vc, node string) *seen {
		n := provision.VolumeName(vc, node)
		s := all[n]
		if s == nil {
			s = &seen{vc: vc, node: node, name: n}
			all[n] = s
		}
		return s
	}
	for i := range ts {
		if vc, node, ok := ParseTargetIQN(ts[i].Name); ok {
			get(vc, node).t = &ts[i]
		}
	}
	for _, a := range accts {
		if vc, node, ok := ParseCHAPUser(a); ok {
			get(vc, node).account = true
		}
	}
	for i := range clones {
		// A complete clone wins over a leftover partial copy.
		if s := get(clones[i].vc, clones[i].node); s.clone == nil || s.clone.size < 0 {
			s.clone = &clones[i]
		}
	}
	for _, m := range metas {
		get(m[0], m[1]).meta = true
	}
	out := make([]provision.Volume, 0, len(all))
	for _, s := range all {
		v := d.volume(s.vc, s.node, 0)
		var probs []string
		switch {
		case s.clone == nil:
			probs = append(probs, "no clone")
		case s.clone.size < 0:
			probs = append(probs, "clone incomplete")
		default:
			v.Size = s.clone.size
			if s.clone.problem != "" {
				probs = append(probs, s.clone.problem)
			}
		}
		if !s.meta {
			probs = append(probs, "no state file")
		}
		if !s.account {
			probs = append(probs, "no CHAP account")
		}
		if s.t == nil {
			probs = append(probs, "no target")
		} else {
			t := s.t
			if l, ok := t.LUN(LUN); !ok {
				probs = append(probs, "no LUN")
			} else if l.BackingStore != v.Path {
				probs = append(probs, "LUN backed by "+l.BackingStore)
			}
			if !slices.Equal(t.Incoming, []string{v.CHAPUser}) {
				probs = append(probs, fmt.Sprintf("incoming accounts %v", t.Incoming))
			}
			switch len(t.ACL) {
			case 0:
				probs = append(probs, "no ACL (closed)")
			case 1:
				if a, err := netip.ParseAddr(t.ACL[0]); err == nil {
					v.InitiatorAddress = a
				} else {
					v.InitiatorName = t.ACL[0]
				}
			default:
				probs = append(probs, fmt.Sprintf("ACL %v", t.ACL))
			}
		}
		v.Problems = probs
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b provision.Volume) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// listMeta returns the (vc, node) of every state file.
func listMeta(dir string) ([][2]string, error) {
	vcs, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	var out [][2]string
	for _, v := range vcs {
		if !v.IsDir() || coord.ValidName(v.Name()) != nil {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, v.Name()))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBackend, err)
		}
		for _, f := range files {
			if node, ok := strings.CutSuffix(f.Name(), ".json"); ok && coord.ValidName(node) == nil {
				out = append(out, [2]string{v.Name(), node})
			}
		}
	}
	return out, nil
}
