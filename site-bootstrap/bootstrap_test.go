package sitebootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/config"
)

func TestTokenRoundTrip(t *testing.T) {
	tok, err := NewToken("fed1")
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseToken(tok.String() + "\n")
	if err != nil || back != tok {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if tok.Credential.User != FederationUser || len(tok.Credential.Password) < 40 {
		t.Errorf("credential %v", tok.Credential)
	}
	other, _ := NewToken("fed1")
	if other.Credential.Password == tok.Credential.Password {
		t.Error("two tokens share a secret")
	}
	s1, s2 := tok.Super(), back.Super()
	if s1 != s2 || s1.User != SuperUser || s1.Password == tok.Credential.Password {
		t.Errorf("super identity %v / %v", s1, s2)
	}
	if other.Super() == s1 {
		t.Error("two tokens share a super identity")
	}
	if strings.Contains(tok.Credential.String(), tok.Credential.Password) {
		t.Error("the credential's String shows the password")
	}
	for _, bad := range []string{"", "musubi-token-1:fed:musubi", "musubi-token-2:fed:musubi:" + strings.Repeat("a", 40),
		"musubi-token-1:bad/name:musubi:" + strings.Repeat("a", 40), "musubi-token-1:fed:musubi:short"} {
		if _, err := ParseToken(bad); !errors.Is(err, ErrToken) {
			t.Errorf("ParseToken(%q) = %v, want ErrToken", bad, err)
		}
	}
}

func TestTokenFileMode(t *testing.T) {
	dir := t.TempDir()
	tok, _ := NewToken("fed1")
	p := filepath.Join(dir, "sub", "federation.token")
	if err := WriteTokenFile(p, tok); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	if got, err := ReadTokenFile(p); err != nil || got != tok {
		t.Fatalf("read back %v, %v", got, err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTokenFile(p); !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable token was accepted: %v", err)
	}
}

func TestRun(t *testing.T) {
	applied := map[string]int{}
	state := map[string]bool{}
	step := func(name string, converges bool) Step {
		return Step{
			Name:  name,
			Check: func(context.Context) (bool, string, error) { return state[name], "", nil },
			Apply: func(context.Context) error {
				applied[name]++
				state[name] = converges
				return nil
			},
		}
	}
	var out strings.Builder
	res, err := Run(context.Background(), &out, []Step{step("a", true), step("b", true)})
	if err != nil || !slices.Equal(res.Applied, []string{"a", "b"}) {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	res, err = Run(context.Background(), &out, []Step{step("a", true), step("b", true)})
	if err != nil || len(res.Applied) != 0 || res.Summary() != "2 steps checked, nothing to change" {
		t.Fatalf("second run: %+v (%s), %v", res, res.Summary(), err)
	}
	if applied["a"] != 1 || applied["b"] != 1 {
		t.Errorf("applied %v", applied)
	}
	res, err = Run(context.Background(), &out, []Step{step("c", false), step("d", true)})
	if !errors.Is(err, ErrNotConverged) || res.Steps != 1 || applied["d"] != 0 {
		t.Fatalf("a step that does not converge: %+v, %v", res, err)
	}
	boom := errors.New("boom")
	_, err = Run(context.Background(), &out, []Step{{Name: "e", Check: func(context.Context) (bool, string, error) { return false, "", boom }}})
	if !errors.Is(err, boom) {
		t.Fatalf("check error: %v", err)
	}
	// ZooKeeper briefly unreachable (a reconfiguration in progress): the
	// step runs again from its Check; other errors are not retried.
	fails := 2
	flaky := Step{
		Name: "f",
		Check: func(context.Context) (bool, string, error) {
			if fails > 0 {
				fails--
				return false, "", fmt.Errorf("exists /sites: %w", coord.ErrUnavailable)
			}
			return state["f"], "", nil
		},
		Apply: func(context.Context) error { applied["f"]++; state["f"] = true; return nil },
	}
	var retryOut strings.Builder
	res, err = Run(context.Background(), &retryOut, []Step{flaky})
	if err != nil || applied["f"] != 1 || !slices.Equal(res.Applied, []string{"f"}) {
		t.Fatalf("transient failure: %+v, %v, applied %d", res, err, applied["f"])
	}
	if n := strings.Count(retryOut.String(), "retrying in"); n != 2 {
		t.Errorf("%d retry lines, want 2:\n%s", n, retryOut.String())
	}
	defer func(d time.Duration) { RetryFor = d }(RetryFor)
	RetryFor = 0
	_, err = Run(context.Background(), &out, []Step{{Name: "g", Check: func(context.Context) (bool, string, error) { return false, "", coord.ErrConnectionLost }}})
	if !errors.Is(err, coord.ErrConnectionLost) {
		t.Fatalf("retries past RetryFor: %v", err)
	}
	if !strings.Contains(out.String(), "[1/2] a  done in") || !strings.Contains(out.String(), "[2/2] b  ok") {
		t.Errorf("progress output:\n%s", out.String())
	}
}

// fakeRunner answers dpkg-query from a set of installed packages and
// records apt-get calls.
type fakeRunner struct {
	installed map[string]bool
	calls     []string
}

func (f *fakeRunner) Run(_ context.Context, env []string, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, strings.TrimSpace(strings.Join(env, " ")+" "+name+" "+strings.Join(args, " ")))
	switch name {
	case "dpkg-query":
		if f.installed[args[len(args)-1]] {
			return []byte("installed"), nil
		}
		return nil, errors.New("dpkg-query: no packages found")
	case "apt-get":
		if args[0] == "install" {
			for _, p := range args {
				if !strings.HasPrefix(p, "-") && p != "install" {
					f.installed[p] = true
				}
			}
		}
		return nil, nil
	}
	return nil, errors.New("unexpected command " + name)
}

func TestPackagesStep(t *testing.T) {
	r := &fakeRunner{installed: map[string]bool{}}
	s := newSite(Config{Runner: r, SkipDaemons: []string{"tgt"}})
	for _, p := range s.requiredPackages() {
		r.installed[p] = true
	}
	delete(r.installed, "openvswitch-switch")
	if slices.Contains(s.requiredPackages(), "tgt") {
		t.Error("a skipped daemon's package is required")
	}
	var out strings.Builder
	_, err := Run(context.Background(), &out, []Step{s.stepPackages()})
	if !errors.Is(err, ErrMissingPackages) || !strings.Contains(err.Error(), "openvswitch-switch") {
		t.Fatalf("missing package without --install-packages: %v", err)
	}
	for _, c := range r.calls {
		if strings.Contains(c, "apt-get") {
			t.Fatalf("apt-get ran without permission: %s", c)
		}
	}
	s.cfg.InstallPackages = true
	if _, err := Run(context.Background(), &out, []Step{s.stepPackages()}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.calls, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openvswitch-switch") {
		t.Errorf("calls %v", r.calls)
	}
}

func TestConfigValidation(t *testing.T) {
	c := Config{Site: "s1", Addr: "10.0.0.1", StateDir: "/var/lib/musubi"}
	c.setDefaults()
	if err := c.validateSite(); err != nil {
		t.Fatal(err)
	}
	for _, mut := range []func(*Config){
		func(c *Config) { c.Site = "bad name" },
		func(c *Config) { c.Addr = "0.0.0.0" },
		func(c *Config) { c.Addr = "host" },
		func(c *Config) { c.QuorumPort = c.ClientPort },
		func(c *Config) { c.Datapath = "fast" },
	} {
		cc := c
		mut(&cc)
		if err := cc.validateSite(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v validated: %v", cc, err)
		}
	}
	c.Dial = func(context.Context, []string, string, []coord.Credential) (Session, error) { return nil, nil }
	c.StateDir = "/" + strings.Repeat("x", 100)
	if err := c.validateCommon(); !errors.Is(err, ErrConfig) {
		t.Errorf("a state directory too long for sockets validated: %v", err)
	}
}

func TestLeaveNothing(t *testing.T) {
	var out strings.Builder
	c := Config{StateDir: t.TempDir(), Out: &out, Dial: func(context.Context, []string, string, []coord.Credential) (Session, error) {
		return nil, errors.New("no dial expected")
	}}
	res, err := Leave(context.Background(), c)
	if err != nil || len(res.Applied) != 0 || !strings.Contains(out.String(), "nothing to leave") {
		t.Fatalf("%+v, %v, %q", res, err, out.String())
	}
	if _, err := ReadStatus(context.Background(), c); !errors.Is(err, ErrNotBootstrapped) {
		t.Errorf("status of an empty directory: %v", err)
	}
}

func TestNextServer(t *testing.T) {
	var ms []coord.Member
	for i := 1; i <= 9; i++ {
		id, role := NextServer(ms)
		want := coord.Participant
		if i > coord.MaxVoters {
			want = coord.Observer
		}
		if id != i || role != want {
			t.Fatalf("with %d members: server %d %s, want %d %s", len(ms), id, role, i, want)
		}
		ms = append(ms, coord.Member{ID: id, Role: role})
	}
	// Ids are never reused while a higher one exists; a voter that left
	// makes room for a new voter.
	ms = append(ms[:2], ms[3:]...)
	if id, role := NextServer(ms); id != 10 || role != coord.Participant {
		t.Errorf("after a voter left: %d %s", id, role)
	}
}

// The peer's configuration file is node/config's format: site bootstrap
// sets the settings it owns and keeps the administrator's others, and a
// file in the old format is read leniently and reported as not the peer's.
func TestPeerConfigMerge(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "musubi.json")
	old := `{"site": "s1", "federation": "f", "zk": ["10.0.0.1:2181"], "token_file": "/x", "gateway": "10.0.0.1"}`
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	c, strict, err := ReadPeerConfig(path)
	if err != nil || strict || c.Site != "s1" || c.Gateway != "10.0.0.1" {
		t.Fatalf("old format: %+v strict=%v err=%v", c, strict, err)
	}
	ps := peerSettings{site: "s1", federation: "f", gateway: "10.0.0.1", zk: []string{"10.0.0.1:2181", "10.0.0.2:2181"},
		credFile: filepath.Join(dir, "zk.credential"), ovs: true, ovsdb: "unix:" + dir + "/ovs/db.sock", datapath: "netdev",
		tgt: config.TgtEndpoint{Socket: dir + "/tgt/tgtd.sock.0", Portal: "10.0.0.1:3260"}}
	if d := ps.differs(c); d == "" {
		t.Fatal("owned settings missing, yet no difference reported")
	}
	c.API.Listen, c.API.InsecureHTTP = "10.0.0.1:7080", true // the administrator's
	ps.apply(&c)
	if d := ps.differs(c); d != "" {
		t.Fatalf("after apply: %s", d)
	}
	if err := config.Write(path, c); err != nil {
		t.Fatal(err)
	}
	back, strict, err := ReadPeerConfig(path)
	if err != nil || !strict {
		t.Fatalf("rewritten file: strict=%v err=%v", strict, err)
	}
	if back.API.Listen != "10.0.0.1:7080" || !back.Overlay.Enabled || back.ZooKeeper.Local != "10.0.0.1:2181" ||
		back.ZooKeeper.CredentialFile != ps.credFile || back.Provision.Tgt != ps.tgt || back.Provision.Enabled {
		t.Fatalf("rewritten file lost settings: %+v", back)
	}
	// The peer itself accepts it.
	if _, err := config.Load(nil, func(k string) (string, bool) { return path, k == config.EnvConfig }); err != nil {
		t.Fatalf("the peer refuses the file: %v", err)
	}
	// Only this site's server must come first; the others may change.
	back.ZooKeeper.Servers = []string{"10.0.0.1:2181"}
	if d := ps.differs(back); d != "" {
		t.Errorf("a shorter server list is reported: %s", d)
	}
	back.ZooKeeper.Servers = []string{"10.0.0.2:2181", "10.0.0.1:2181"}
	if d := ps.differs(back); d == "" {
		t.Error("another server first is not reported")
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadPeerConfig(path); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Errorf("broken JSON: %v", err)
	}
}
