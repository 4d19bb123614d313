package iscsitest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/musubi-fabric/musubi/node/provision/iscsi"
)

// FakeTgt emulates one tgtd's management interface (iscsi.Mgmt): targets,
// logical units, accounts and ACLs, the status codes tgt 1.0.85 returns,
// and its show output. A logical unit's backing store must exist, as tgtd
// opens it. Requests are recorded, with passwords redacted.
type FakeTgt struct {
	mu       sync.Mutex
	targets  map[int]*fakeTarget
	accounts map[string]string
	log      []string
	// Fail, if set, is consulted before each request: a non-nil error is
	// returned instead of executing it.
	Fail func(r iscsi.Request) error
}

type fakeTarget struct {
	tid      int
	name     string
	luns     map[int]string // lun -> backing store
	incoming []string
	outgoing []string
	acl      []string
}

var _ iscsi.Mgmt = (*FakeTgt)(nil)

// NewFakeTgt returns a tgtd with nothing configured.
func NewFakeTgt() *FakeTgt {
	return &FakeTgt{targets: map[int]*fakeTarget{}, accounts: map[string]string{}}
}

// Requests returns the requests executed so far (String form, passwords
// redacted) and forgets them.
func (f *FakeTgt) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.log
	f.log = nil
	return out
}

// Password returns the secret of account user, for tests that check what
// the driver set.
func (f *FakeTgt) Password(user string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.accounts[user]
	return p, ok
}

// Restart forgets everything, as a restarted tgtd has.
func (f *FakeTgt) Restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets = map[int]*fakeTarget{}
	f.accounts = map[string]string{}
}

func tgtErr(code int) error { return &iscsi.TgtError{Code: code} }

// Do implements iscsi.Mgmt.
func (f *FakeTgt) Do(ctx context.Context, r iscsi.Request) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%w: %v", iscsi.ErrUnavailable, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		if err := f.Fail(r); err != nil {
			return "", err
		}
	}
	if r.Op != iscsi.OpShow {
		f.log = append(f.log, r.String())
	}
	t := f.targets[r.TID]
	switch r.Mode {
	case iscsi.ModeSystem:
		if r.Op == iscsi.OpShow {
			return "System:\n    State: ready\n    debug: off\n", nil
		}
		return "", nil
	case iscsi.ModePortal:
		return "Portal: 127.0.0.1:3260,1\n", nil
	case iscsi.ModeTarget:
		switch r.Op {
		case iscsi.OpShow:
			return f.show(), nil
		case iscsi.OpNew:
			if t != nil || r.TID <= 0 {
				return "", tgtErr(iscsi.CodeTargetUsed)
			}
			for _, o := range f.targets {
				if o.name == r.TargetName {
					return "", tgtErr(iscsi.CodeTargetUsed)
				}
			}
			f.targets[r.TID] = &fakeTarget{tid: r.TID, name: r.TargetName, luns: map[int]string{}}
			return "", nil
		}
		if t == nil {
			return "", tgtErr(iscsi.CodeNoTarget)
		}
		entry := r.InitiatorName + r.InitiatorAddress
		switch r.Op {
		case iscsi.OpDelete:
			delete(f.targets, r.TID)
		case iscsi.OpBind:
			if slices.Contains(t.acl, entry) {
				return "", tgtErr(iscsi.CodeACLExists)
			}
			t.acl = append(t.acl, entry)
		case iscsi.OpUnbind:
			i := slices.Index(t.acl, entry)
			if i < 0 {
				return "", tgtErr(iscsi.CodeNoACL)
			}
			t.acl = slices.Delete(t.acl, i, i+1)
		default:
			return "", tgtErr(iscsi.CodeInvalid)
		}
		return "", nil
	case iscsi.ModeLU:
		if t == nil {
			return "", tgtErr(iscsi.CodeNoTarget)
		}
		switch r.Op {
		case iscsi.OpNew:
			if _, ok := t.luns[r.LUN]; ok {
				return "", tgtErr(iscsi.CodeLUNExists)
			}
			if _, err := os.Stat(r.BackingStore); err != nil {
				return "", tgtErr(iscsi.CodeInvalid)
			}
			t.luns[r.LUN] = r.BackingStore
		case iscsi.OpDelete:
			if _, ok := t.luns[r.LUN]; !ok {
				return "", tgtErr(iscsi.CodeNoLUN)
			}
			delete(t.luns, r.LUN)
		default:
			return "", tgtErr(iscsi.CodeInvalid)
		}
		return "", nil
	case iscsi.ModeAccount:
		_, exists := f.accounts[r.User]
		switch r.Op {
		case iscsi.OpShow:
			var b strings.Builder
			b.WriteString("Account list:\n")
			for _, u := range sortedKeys(f.accounts) {
				fmt.Fprintf(&b, "    %s\n", u)
			}
			return b.String(), nil
		case iscsi.OpNew:
			if exists {
				return "", tgtErr(iscsi.CodeUserExists)
			}
			f.accounts[r.User] = r.Password
		case iscsi.OpDelete:
			if !exists {
				return "", tgtErr(iscsi.CodeNoUser)
			}
			delete(f.accounts, r.User)
			for _, t := range f.targets {
				t.incoming = slices.DeleteFunc(t.incoming, func(u string) bool { return u == r.User })
				t.outgoing = slices.DeleteFunc(t.outgoing, func(u string) bool { return u == r.User })
			}
		case iscsi.OpBind, iscsi.OpUnbind:
			if t == nil {
				return "", tgtErr(iscsi.CodeNoTarget)
			}
			if !exists {
				return "", tgtErr(iscsi.CodeNoUser)
			}
			list := &t.incoming
			if r.Outgoing {
				list = &t.outgoing
			}
			i := slices.Index(*list, r.User)
			switch {
			case r.Op == iscsi.OpBind && i < 0:
				*list = append(*list, r.User)
			case r.Op == iscsi.OpUnbind && i < 0:
				return "", tgtErr(iscsi.CodeNoUser)
			case r.Op == iscsi.OpUnbind:
				*list = slices.Delete(*list, i, i+1)
			}
		default:
			return "", tgtErr(iscsi.CodeInvalid)
		}
		return "", nil
	}
	return "", tgtErr(iscsi.CodeInvalid)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// show renders the targets as tgtd 1.0.85 does (abridged to the lines the
// driver reads, with the same indentation).
func (f *FakeTgt) show() string {
	var b strings.Builder
	tids := make([]int, 0, len(f.targets))
	for tid := range f.targets {
		tids = append(tids, tid)
	}
	slices.Sort(tids)
	for _, tid := range tids {
		t := f.targets[tid]
		fmt.Fprintf(&b, "Target %d: %s\n", t.tid, t.name)
		b.WriteString("    System information:\n        Driver: iscsi\n        State: ready\n")
		b.WriteString("    I_T nexus information:\n")
		b.WriteString("    LUN information:\n")
		b.WriteString("        LUN: 0\n            Type: controller\n            Backing store type: null\n            Backing store path: None\n            Backing store flags: \n")
		luns := make([]int, 0, len(t.luns))
		for l := range t.luns {
			luns = append(luns, l)
		}
		slices.Sort(luns)
		for _, l := range luns {
			fmt.Fprintf(&b, "        LUN: %d\n            Type: disk\n            Backing store type: rdwr\n            Backing store path: %s\n            Backing store flags: \n", l, t.luns[l])
		}
		b.WriteString("    Account information:\n")
		for _, u := range t.incoming {
			fmt.Fprintf(&b, "        %s\n", u)
		}
		for _, u := range t.outgoing {
			fmt.Fprintf(&b, "        %s (outgoing)\n", u)
		}
		b.WriteString("    ACL information:\n")
		for _, a := range t.acl {
			fmt.Fprintf(&b, "        %s\n", a)
		}
	}
	return b.String()
}
