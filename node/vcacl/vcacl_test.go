package vcacl_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/memstore"
	"github.com/musubi-fabric/musubi/node/vcacl"
)

func memConnect(srv *memstore.Server) connectFunc {
	return func(t *testing.T, creds []coord.Credential, defACL []coord.ACL) coord.Store {
		opts := []memstore.Option{memstore.WithCredentials(creds...)}
		if defACL != nil {
			opts = append(opts, memstore.WithDefaultACL(defACL))
		} else {
			opts = append(opts, memstore.WithDefaultACL(coord.DefaultACL(creds)))
		}
		st := srv.Connect(opts...)
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
}

func TestConfinementMemstore(t *testing.T) {
	confinement(t, memConnect(memstore.New()), false)
}

func TestPolicyACL(t *testing.T) {
	keys, err := vcacl.NewKeys(fedCred)
	if err != nil {
		t.Fatal(err)
	}
	pol := keys.Policy()
	a, _ := keys.VC("a")
	fed := coord.DigestACL(coord.PermAll, fedCred)
	agents := coord.DigestACL(coord.PermRead, keys.Agents())
	for _, tc := range []struct {
		path string
		want []coord.ACL
	}{
		{"/", []coord.ACL{fed}},
		{"/sites", []coord.ACL{fed}},
		{"/sites/s1", []coord.ACL{fed}},
		{"/timetable/h/1", []coord.ACL{fed}},
		{"/hostsx", []coord.ACL{fed}},
		{"/hosts", []coord.ACL{fed, agents}},
		{"/hosts/h1", []coord.ACL{fed, agents}},
		{"/accounts/alice", []coord.ACL{fed, agents}},
		{"/vc", []coord.ACL{fed}},
		{"/vc/a", []coord.ACL{fed, coord.DigestACL(coord.PermRead, a)}},
		{"/vc/a/spec", []coord.ACL{fed, coord.DigestACL(coord.PermRead, a)}},
		{"/vc/a/nodes/n1", []coord.ACL{fed, coord.DigestACL(coord.PermRead, a)}},
		{"/vc/a/accounts/bob", []coord.ACL{fed, coord.DigestACL(coord.PermRead, a)}},
		{"/vc/a/jobs", []coord.ACL{fed, coord.DigestACL(vcacl.PermVC, a)}},
		{"/vc/a/jobs/q/x-", []coord.ACL{fed, coord.DigestACL(vcacl.PermVC, a)}},
		{"/vc/a/hosts/h", []coord.ACL{fed, coord.DigestACL(vcacl.PermVC, a)}},
	} {
		got, err := pol.ACL(tc.path)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ACL(%s) = %v, %v; want %v", tc.path, got, err, tc.want)
		}
	}
	if _, err := pol.ACL("/vc/a b/jobs"); !errors.Is(err, vcacl.ErrInvalid) {
		t.Errorf("ACL of a bad VC name: %v, want ErrInvalid", err)
	}
	if _, err := pol.ACL("relative"); !errors.Is(err, coord.ErrInvalidPath) {
		t.Errorf("ACL of a relative path: %v", err)
	}
	if got, err := (vcacl.Policy{}).ACL("/vc/a"); got != nil || err != nil {
		t.Errorf("empty policy: %v, %v; want nil (store default)", got, err)
	}
	// Without VC or agents identities, only the federation.
	only := vcacl.Policy{Federation: fedCred.DigestID()}
	for _, p := range []string{"/hosts/h", "/vc/a/jobs"} {
		if got, _ := only.ACL(p); !slices.Equal(got, []coord.ACL{fed}) {
			t.Errorf("federation-only policy: ACL(%s) = %v", p, got)
		}
	}
}

func TestKeysDerivation(t *testing.T) {
	k1, _ := vcacl.NewKeys(fedCred)
	k2, _ := vcacl.NewKeys(fedCred)
	other, _ := vcacl.NewKeys(coord.Credential{User: fedCred.User, Password: "another"})
	a1, err := k1.VC("a")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := k2.VC("a")
	b1, _ := k1.VC("b")
	ao, _ := other.VC("a")
	if a1 != a2 || a1.User != "musubi-vc-a" || a1.Validate() != nil {
		t.Errorf("VC credential not deterministic or malformed: %v %v", a1, a2)
	}
	if a1.Password == b1.Password || a1.Password == ao.Password || a1.Password == k1.Agents().Password {
		t.Error("derived passwords must differ per VC, per federation secret and per purpose")
	}
	if len(a1.Password) < 40 || strings.Contains(a1.Password, fedCred.Password) {
		t.Errorf("derived password %d chars", len(a1.Password))
	}
	if _, err := k1.VC("bad/name"); !errors.Is(err, vcacl.ErrInvalid) {
		t.Errorf("VC(bad name): %v", err)
	}
	if _, err := vcacl.NewKeys(coord.Credential{User: "x"}); !errors.Is(err, vcacl.ErrInvalid) {
		t.Errorf("NewKeys without password: %v", err)
	}
}

func TestWrapKeepsExplicitACLs(t *testing.T) {
	srv := memstore.New()
	keys, _ := vcacl.NewKeys(fedCred)
	peer := vcacl.Wrap(memConnect(srv)(t, []coord.Credential{fedCred}, nil), keys.Policy())
	anon := memConnect(srv)(t, nil, nil)
	ctx := context.Background()
	if _, err := peer.Create(ctx, "/open", nil, coord.Persistent, coord.WorldACL(coord.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Create(ctx, "/closed", nil, coord.Persistent, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Multi(ctx, &coord.CreateOp{Path: "/open/m", Mode: coord.Persistent, ACL: coord.WorldACL(coord.PermRead)},
		&coord.CreateOp{Path: "/closed/m", Mode: coord.Persistent}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := anon.Get(ctx, "/open"); err != nil {
		t.Errorf("explicit world ACL replaced: %v", err)
	}
	if _, _, err := anon.Get(ctx, "/open/m"); err != nil {
		t.Errorf("explicit ACL in a Multi replaced: %v", err)
	}
	for _, p := range []string{"/closed", "/closed/m"} {
		if _, _, err := anon.Get(ctx, p); !errors.Is(err, coord.ErrNoAuth) {
			t.Errorf("nil ACL at %s: anonymous Get %v, want ErrNoAuth", p, err)
		}
	}
	// A bad path in a Multi is refused before anything is sent.
	if _, err := peer.Multi(ctx, &coord.CreateOp{Path: "/vc/bad name", Mode: coord.Persistent}); !errors.Is(err, vcacl.ErrInvalid) {
		t.Errorf("Multi creating a bad VC: %v", err)
	}
	if vcacl.Wrap(anon, vcacl.Policy{}) != anon {
		t.Error("Wrap with an empty policy must return the store itself")
	}
}

func TestAgentSecretFile(t *testing.T) {
	keys, _ := vcacl.NewKeys(fedCred)
	sec, err := keys.AgentSecret("a")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sec.String(), sec.VC.Password) || strings.Contains(sec.String(), sec.Agents.Password) {
		t.Errorf("String leaks a password: %s", sec)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.secret")
	if err := os.WriteFile(p, sec.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := vcacl.ReadAgentSecret(p)
	if err != nil || got != sec {
		t.Fatalf("read back %v, %v; want %v", got, err, sec)
	}
	if !slices.Equal(got.Credentials(), []coord.Credential{sec.VC, keys.Agents()}) {
		t.Errorf("Credentials %v", got.Credentials())
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = vcacl.ReadAgentSecret(p)
	if !errors.Is(err, vcacl.ErrSecret) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable secret: %v", err)
	}
	for name, data := range map[string]string{
		"missing line":  "vc=u:p\nagents=a:b\n",
		"unknown key":   string(sec.Marshal()) + "extra=1\n",
		"duplicate key": string(sec.Marshal()) + "vc=u:p\n",
		"bad id":        "vc=u:p\nagents=a:b\nfederation=f:notbase64!\n",
		"no password":   "vc=u:\nagents=a:b\nfederation=" + sec.Federation + "\n",
	} {
		_, err := vcacl.ParseAgentSecret([]byte(data))
		if !errors.Is(err, vcacl.ErrSecret) {
			t.Errorf("%s: %v, want ErrSecret", name, err)
		}
		if err != nil && strings.Contains(err.Error(), sec.VC.Password) {
			t.Errorf("%s: error leaks the password", name)
		}
	}
}
