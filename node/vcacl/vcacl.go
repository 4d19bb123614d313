package vcacl

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
)

// Sentinel errors.
var (
	// ErrInvalid: a name, credential or digest identity is malformed.
	ErrInvalid = errors.New("vcacl: invalid")
	// ErrSecret: an agent secret file is missing, unreadable, readable by
	// others, or malformed.
	ErrSecret = errors.New("vcacl: bad agent secret")
)

// Identities derived by Keys.
const (
	// AgentsUser is the user of the agents credential.
	AgentsUser = "musubi-agents"
	// VCUserPrefix prefixes the VC name in the user of a VC credential.
	VCUserPrefix = "musubi-vc-"
)

// PermVC is what a VC's credential may do where it may work (its job
// queue and host records): everything but changing ACLs.
const PermVC = coord.PermRead | coord.PermWrite | coord.PermCreate | coord.PermDelete

// Keys derives the VC and agents credentials from the federation
// credential: password = base64url(HMAC-SHA-256(federation password,
// label, federation user, name)). Any holder of the federation credential
// computes the same credentials; nothing secret is stored in ZooKeeper.
type Keys struct {
	fed coord.Credential
}

// NewKeys returns the Keys of the federation credential fed.
func NewKeys(fed coord.Credential) (*Keys, error) {
	if err := fed.Validate(); err != nil {
		return nil, fmt.Errorf("%w: federation credential: %w", ErrInvalid, err)
	}
	return &Keys{fed: fed}, nil
}

func (k *Keys) derive(label, name string) string {
	m := hmac.New(sha256.New, []byte(k.fed.Password))
	m.Write([]byte("musubi/" + label + "/v1\x00" + k.fed.User + "\x00" + name))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Federation is the federation credential.
func (k *Keys) Federation() coord.Credential { return k.fed }

// VC is the credential of the agents of vc.
func (k *Keys) VC(vc string) (coord.Credential, error) {
	if err := coord.ValidName(vc); err != nil {
		return coord.Credential{}, fmt.Errorf("%w: VC: %w", ErrInvalid, err)
	}
	return coord.Credential{User: VCUserPrefix + vc, Password: k.derive("vc", vc)}, nil
}

// Agents is the credential shared by every agent: read-only access to
// hosts/ and accounts/.
func (k *Keys) Agents() coord.Credential {
	return coord.Credential{User: AgentsUser, Password: k.derive("agents", "")}
}

// Policy is the layout of the package doc for this federation.
func (k *Keys) Policy() Policy {
	return Policy{
		Federation: k.fed.DigestID(),
		Agents:     k.Agents().DigestID(),
		VC: func(vc string) (string, error) {
			c, err := k.VC(vc)
			if err != nil {
				return "", err
			}
			return c.DigestID(), nil
		},
	}
}

// AgentSecret is what the agents of vc need: their credentials and the
// federation's digest identity (for the ACL of the nodes they create).
func (k *Keys) AgentSecret(vc string) (AgentSecret, error) {
	c, err := k.VC(vc)
	if err != nil {
		return AgentSecret{}, err
	}
	return AgentSecret{VC: c, Agents: k.Agents(), Federation: k.fed.DigestID()}, nil
}

// Policy maps a node's path to its ACL. Identities are digest ids
// ("user:base64(sha1(user:password))", coord.Credential.DigestID).
type Policy struct {
	// Federation is the peers' identity; empty: no ACLs at all (ACL
	// returns nil, i.e. the store's default).
	Federation string
	// Agents may read hosts/ and accounts/; empty: only the federation
	// may.
	Agents string
	// VC returns the identity of a VC's agents; nil: only the federation
	// may use VC subtrees.
	VC func(vc string) (string, error)
}

func digest(perms int32, id string) coord.ACL {
	return coord.ACL{Perms: perms, Scheme: "digest", ID: id}
}

// validID checks a digest id: user:base64 of a SHA-1 sum.
func validID(id string) error {
	user, sum, ok := strings.Cut(id, ":")
	b, err := base64.StdEncoding.DecodeString(sum)
	if !ok || user == "" || err != nil || len(b) != 20 {
		return fmt.Errorf("%w: digest identity %q: want user:base64(sha1)", ErrInvalid, id)
	}
	return nil
}

// Top-level directories and VC subdirectories the layout names.
var (
	hostsTop     = coord.Base(coord.HostsDir)
	accountsTop  = coord.Base(coord.AccountsDir)
	vcTop        = coord.Base(coord.VCDir)
	vcJobsName   = coord.Base(coord.VCJobsDir("x"))
	vcHostsName  = coord.Base(coord.VCHostsDir("x"))
	vcWritable   = []string{vcJobsName, vcHostsName}
	agentsReadOn = []string{hostsTop, accountsTop}
)

// ACL returns the ACL of the node at path (see the package doc). A nil
// result (Federation empty) means the store's default.
func (p Policy) ACL(path string) ([]coord.ACL, error) {
	if p.Federation == "" {
		return nil, nil
	}
	if err := coord.ValidPath(path); err != nil {
		return nil, err
	}
	fed := digest(coord.PermAll, p.Federation)
	els := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case contains(agentsReadOn, els[0]) && p.Agents != "":
		return []coord.ACL{fed, digest(coord.PermRead, p.Agents)}, nil
	case els[0] == vcTop && len(els) >= 2 && p.VC != nil:
		id, err := p.VC(els[1])
		if err != nil {
			return nil, fmt.Errorf("vcacl: identity of VC %q: %w", els[1], err)
		}
		if err := validID(id); err != nil {
			return nil, err
		}
		perms := coord.PermRead
		if len(els) >= 3 && contains(vcWritable, els[2]) {
			perms = PermVC
		}
		return []coord.ACL{fed, digest(perms, id)}, nil
	}
	return []coord.ACL{fed}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// AgentDefaultACL is the ACL of the nodes a VC's agent creates (in its job
// queue or host records): all permissions for the federation, PermVC for
// the VC's credential.
func AgentDefaultACL(federationID string, vcCred coord.Credential) []coord.ACL {
	return []coord.ACL{digest(coord.PermAll, federationID), digest(PermVC, vcCred.DigestID())}
}

// Wrap returns st with the policy applied: every Create, and every
// CreateOp of a Multi, given a nil ACL gets p.ACL of its path. Explicit
// ACLs are kept. With an empty p.Federation, st is returned unchanged.
func Wrap(st coord.Store, p Policy) coord.Store {
	if p.Federation == "" {
		return st
	}
	return &wrapped{Store: st, p: p}
}

type wrapped struct {
	coord.Store
	p Policy
}

func (w *wrapped) Create(ctx context.Context, path string, data []byte, mode coord.CreateMode, acl []coord.ACL) (string, error) {
	if acl == nil {
		var err error
		if acl, err = w.p.ACL(path); err != nil {
			return "", fmt.Errorf("vcacl: create %s: %w", path, err)
		}
	}
	return w.Store.Create(ctx, path, data, mode, acl)
}

func (w *wrapped) Multi(ctx context.Context, ops ...coord.Op) ([]coord.OpResult, error) {
	out, copied := ops, false
	for i, op := range ops {
		c, ok := op.(*coord.CreateOp)
		if !ok || c.ACL != nil {
			continue
		}
		acl, err := w.p.ACL(c.Path)
		if err != nil {
			return nil, fmt.Errorf("vcacl: multi op %d: create %s: %w", i, c.Path, err)
		}
		if !copied {
			out, copied = append([]coord.Op(nil), ops...), true
		}
		cc := *c
		cc.ACL = acl
		out[i] = &cc
	}
	return w.Store.Multi(ctx, out...)
}

// InitFederation creates the schema's top-level directories with the
// policy's ACLs (existing ones are left as they are). It is idempotent.
func (p Policy) InitFederation(ctx context.Context, st coord.Store) error {
	for _, d := range coord.TopLevelDirs {
		if err := p.create(ctx, st, d); err != nil {
			return err
		}
	}
	return nil
}

// CreateVC creates the subtree of vc (coord.VCSubdirs) with the policy's
// ACLs: the federation may do everything; the VC's credential may read
// its specification, status, node records and accounts and work in its
// job queue and host records. Existing nodes are left as they are, so it
// is idempotent.
func (p Policy) CreateVC(ctx context.Context, st coord.Store, vc string) error {
	if err := coord.ValidName(vc); err != nil {
		return fmt.Errorf("%w: VC: %w", ErrInvalid, err)
	}
	if err := p.create(ctx, st, coord.VCDir); err != nil {
		return err
	}
	for _, d := range coord.VCSubdirs(vc) {
		if err := p.create(ctx, st, d); err != nil {
			return err
		}
	}
	return nil
}

func (p Policy) create(ctx context.Context, st coord.Store, path string) error {
	acl, err := p.ACL(path)
	if err != nil {
		return err
	}
	if _, err := st.Create(ctx, path, nil, coord.Persistent, acl); err != nil && !errors.Is(err, coord.ErrExists) {
		return fmt.Errorf("vcacl: create %s: %w", path, err)
	}
	return nil
}
