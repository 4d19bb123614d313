package sitebootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/config"
	"github.com/musubi-fabric/musubi/node/vcacl"
)

// site is one run of a bootstrap command.
type site struct {
	cfg       Config
	st        State
	tok       Token
	tokenFile string   // the token file given on the command line ("" none)
	seeds     []string // join: servers of the running ensemble
	joining   bool
	left      bool // the site's server is out of the ensemble: connect to the others

	members []coord.Member // the ensemble's membership read before this server's first start
	data    Session        // federation credential, chroot at the federation root
	admin   Session        // super identity, no chroot
	java    string
	cp      string
}

func newSite(cfg Config) *site {
	cfg.setDefaults()
	return &site{cfg: cfg}
}

func (s *site) close() {
	for _, sess := range []Session{s.data, s.admin} {
		if sess != nil {
			_ = sess.Close()
		}
	}
	s.data, s.admin = nil, nil
}

// servers lists the ensemble's client addresses to connect to: this site's
// first, then the seeds, then those the peer configuration names.
func (s *site) servers() []string {
	var out []string
	add := func(a string) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if s.st.ServerID != 0 && s.st.ClientPort != 0 && !s.left {
		add(s.st.ClientAddr())
	}
	for _, a := range s.seeds {
		add(a)
	}
	for _, a := range s.st.Seeds {
		add(a)
	}
	if pc, _, err := ReadPeerConfig(s.cfg.PeerConfigPath()); err == nil {
		for _, a := range pc.ZooKeeper.Servers {
			if !s.left || a != s.st.ClientAddr() {
				add(a)
			}
		}
	}
	return out
}

func (s *site) dial(ctx context.Context, servers []string, root string, creds []coord.Credential) (Session, error) {
	if len(servers) == 0 {
		return nil, fmt.Errorf("%w: no ZooKeeper server known", ErrConfig)
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.WaitTimeout)
	defer cancel()
	sess, err := s.cfg.Dial(dctx, servers, root, creds)
	if err != nil {
		return nil, fmt.Errorf("connect to ZooKeeper at %s: %w", strings.Join(servers, ","), err)
	}
	return sess, nil
}

// dataSession is a session with the federation credential, rooted at the
// federation. Opening it creates the root if it is missing, which only
// succeeds with the credential that owns /musubi (Init's).
func (s *site) dataSession(ctx context.Context) (Session, error) {
	if s.data == nil {
		sess, err := s.dial(ctx, s.servers(), coord.FederationRoot(s.tok.Federation), []coord.Credential{s.tok.Credential})
		if errors.Is(err, coord.ErrNoAuth) {
			return nil, fmt.Errorf("%w: %w", ErrTokenRejected, err)
		}
		if err != nil {
			return nil, err
		}
		s.data = sess
	}
	return s.data, nil
}

// adminSession is a session with the ensemble's super identity, without a
// chroot, for membership changes.
func (s *site) adminSession(ctx context.Context) (Session, error) {
	if s.admin == nil {
		sess, err := s.dial(ctx, s.servers(), "", []coord.Credential{s.tok.Super()})
		if err != nil {
			return nil, err
		}
		s.admin = sess
	}
	return s.admin, nil
}

// --- token ---

// stepToken installs the federation token in the state directory: the
// given file's, the one already there, or (Init only) a new one.
func (s *site) stepToken() Step {
	var given *Token
	load := func() error {
		if s.tokenFile != "" && given == nil {
			t, err := ReadTokenFile(s.tokenFile)
			if err != nil {
				return err
			}
			given = &t
		}
		return nil
	}
	return Step{
		Name: "federation token",
		Check: func(context.Context) (bool, string, error) {
			if err := load(); err != nil {
				return false, "", err
			}
			t, err := ReadTokenFile(s.cfg.TokenPath())
			if errors.Is(err, os.ErrNotExist) {
				return false, "none in " + s.cfg.StateDir, nil
			}
			if err != nil {
				return false, "", err
			}
			if given != nil && *given != t {
				return false, "differs from " + s.tokenFile, nil
			}
			if !s.joining && given == nil && t.Federation != s.cfg.Federation {
				return false, "", fmt.Errorf("%w: %s is federation %q's, not %q", ErrOtherSite, s.cfg.TokenPath(), t.Federation, s.cfg.Federation)
			}
			s.tok = t
			return true, fmt.Sprintf("federation %q, %s", t.Federation, s.cfg.TokenPath()), nil
		},
		Apply: func(context.Context) error {
			if err := load(); err != nil {
				return err
			}
			if given != nil {
				return WriteTokenFile(s.cfg.TokenPath(), *given)
			}
			if s.joining {
				return fmt.Errorf("%w: join needs the federation's token file (--token-file)", ErrToken)
			}
			if _, err := os.Stat(s.cfg.TokenPath()); err == nil {
				return fmt.Errorf("%w: %s exists but cannot be used; move it away to create a new federation", ErrToken, s.cfg.TokenPath())
			}
			t, err := NewToken(s.cfg.Federation)
			if err != nil {
				return err
			}
			return WriteTokenFile(s.cfg.TokenPath(), t)
		},
	}
}

// stepVerifyToken connects to the running ensemble with the token's
// credential and reads the federation's root, whose ACL admits only that
// credential.
func (s *site) stepVerifyToken() Step {
	return Step{
		Name: "token accepted",
		Check: func(ctx context.Context) (bool, string, error) {
			sess, err := s.dataSession(ctx)
			if err != nil {
				return false, "", err
			}
			if _, _, err := sess.Get(ctx, "/"); err != nil {
				if errors.Is(err, coord.ErrNoAuth) {
					return false, "", fmt.Errorf("%w: federation %q at %s", ErrTokenRejected, s.tok.Federation, strings.Join(s.servers(), ","))
				}
				return false, "", err
			}
			if ok, _, err := sess.Exists(ctx, coord.SitesDir); err != nil || !ok {
				return false, "", fmt.Errorf("%w: federation %q has no sites/ (is it initialised?): %v", ErrTokenRejected, s.tok.Federation, err)
			}
			return true, fmt.Sprintf("federation %q at %s", s.tok.Federation, strings.Join(s.seeds, ",")), nil
		},
	}
}

// --- site state ---

func (s *site) wantState() State {
	return State{
		Site: s.cfg.Site, Federation: s.tok.Federation, Addr: s.cfg.Addr,
		ClientPort: s.cfg.ClientPort, QuorumPort: s.cfg.QuorumPort, ElectionPort: s.cfg.ElectionPort,
		ISCSIPort: s.cfg.ISCSIPort, TgtControl: s.cfg.TgtControlPort,
		TickMS: s.cfg.TickTime.Milliseconds(), NoForceSync: s.cfg.NoForceSync,
	}
}

// sameSite compares what the command line decides.
func sameSite(a, b State) bool {
	return a.Site == b.Site && a.Federation == b.Federation && a.Addr == b.Addr && a.ClientPort == b.ClientPort &&
		a.QuorumPort == b.QuorumPort && a.ElectionPort == b.ElectionPort && a.ISCSIPort == b.ISCSIPort && a.TgtControl == b.TgtControl
}

func (s *site) stepState() Step {
	return Step{
		Name: "site state",
		Check: func(context.Context) (bool, string, error) {
			cur, err := ReadState(s.cfg.StateDir)
			if errors.Is(err, ErrNotBootstrapped) {
				return false, "new site", nil
			}
			if err != nil {
				return false, "", err
			}
			want := s.wantState()
			if cur.Site != want.Site || cur.Federation != want.Federation {
				return false, "", fmt.Errorf("%w: %s holds site %q of federation %q (use another --state-dir, or 'musubi site leave' first)",
					ErrOtherSite, s.cfg.StateDir, cur.Site, cur.Federation)
			}
			if cur.ServerID == 0 {
				return false, "no server id", nil
			}
			if !sameSite(cur, want) {
				return false, "", fmt.Errorf("%w: site %q was bootstrapped with other addresses or ports (see %s); leave and join again to change them",
					ErrOtherSite, cur.Site, s.cfg.statePath())
			}
			s.st = cur
			if cur.TickMS != want.TickMS || cur.NoForceSync != want.NoForceSync {
				return false, "ZooKeeper tick or fsync changed", nil
			}
			return true, fmt.Sprintf("site %q, server %d (%s), %s", cur.Site, cur.ServerID, cur.Role, s.cfg.statePath()), nil
		},
		Apply: func(ctx context.Context) error {
			if cur, err := ReadState(s.cfg.StateDir); err == nil && cur.ServerID != 0 {
				// Only the settings a re-run may change.
				cur.TickMS, cur.NoForceSync = s.cfg.TickTime.Milliseconds(), s.cfg.NoForceSync
				s.st = cur
				return writeJSON(s.cfg.statePath(), cur, 0o644)
			}
			st := s.wantState()
			st.Created = time.Now().UTC().Truncate(time.Second)
			st.Datapath = s.detectDatapath(ctx)
			if !s.joining {
				st.ServerID, st.Role = 1, coord.Participant
			} else {
				sess, err := s.dataSession(ctx)
				if err != nil {
					return err
				}
				ms, err := sess.Members(ctx)
				if err != nil {
					return err
				}
				s.members = ms
				st.Seeds = s.seeds
				for _, m := range ms {
					if m.Host == st.Addr && m.ClientPort == st.ClientPort {
						return fmt.Errorf("%w: server %d already uses %s", ErrOtherSite, m.ID, m.ClientAddr())
					}
				}
				st.ServerID, st.Role = NextServer(ms)
			}
			s.st = st
			return writeJSON(s.cfg.statePath(), st, 0o644)
		},
	}
}

// NextServer is the id and role a joining site's server takes: the next id
// after the highest, and a voter while the ensemble has fewer than
// coord.MaxVoters voters, an observer beyond (DESIGN.md §4).
func NextServer(members []coord.Member) (int, coord.Role) {
	id := 1
	for _, m := range members {
		id = max(id, m.ID+1)
	}
	if coord.Voters(members) >= coord.MaxVoters {
		return id, coord.Observer
	}
	return id, coord.Participant
}

// --- federation data ---

func (s *site) stepSchema() Step {
	return Step{
		Name: "federation schema",
		Check: func(ctx context.Context) (bool, string, error) {
			sess, err := s.dataSession(ctx)
			if err != nil {
				return false, "", err
			}
			for _, d := range coord.TopLevelDirs {
				ok, _, err := sess.Exists(ctx, d)
				if err != nil {
					return false, "", err
				}
				if !ok {
					return false, d + " missing", nil
				}
			}
			return true, coord.FederationRoot(s.tok.Federation), nil
		},
		Apply: func(ctx context.Context) error {
			sess, err := s.dataSession(ctx)
			if err != nil {
				return err
			}
			p, err := s.policy()
			if err != nil {
				return err
			}
			return p.InitFederation(ctx, sess)
		},
	}
}

// policy is the federation's ACL layout (node/vcacl): directories and
// records are created with the ACL of their path, so that agents can read
// hosts/ and accounts/ and nothing else.
func (s *site) policy() (vcacl.Policy, error) {
	k, err := vcacl.NewKeys(s.tok.Credential)
	if err != nil {
		return vcacl.Policy{}, err
	}
	return k.Policy(), nil
}

func (s *site) siteRecord() node.SiteRecord {
	return node.SiteRecord{Name: s.st.Site, ZKServer: s.st.ClientAddr(), Gateway: s.st.Addr}
}

func (s *site) stepRegister() Step {
	return Step{
		Name: "site registered",
		Check: func(ctx context.Context) (bool, string, error) {
			sess, err := s.dataSession(ctx)
			if err != nil {
				return false, "", err
			}
			data, _, err := sess.Get(ctx, coord.SitePath(s.st.Site))
			if errors.Is(err, coord.ErrNotFound) {
				return false, "no " + coord.SitePath(s.st.Site), nil
			}
			if err != nil {
				return false, "", err
			}
			var cur node.SiteRecord
			if err := json.Unmarshal(data, &cur); err != nil {
				return false, "unreadable record", nil
			}
			want := s.siteRecord()
			if cur.Name != want.Name || cur.ZKServer != want.ZKServer || cur.Gateway != want.Gateway {
				return false, "record differs", nil
			}
			return true, coord.SitePath(s.st.Site), nil
		},
		Apply: func(ctx context.Context) error {
			sess, err := s.dataSession(ctx)
			if err != nil {
				return err
			}
			rec := s.siteRecord()
			rec.Joined = time.Now().UTC()
			p := coord.SitePath(s.st.Site)
			if data, st, err := sess.Get(ctx, p); err == nil {
				var cur node.SiteRecord
				if json.Unmarshal(data, &cur) == nil && !cur.Joined.IsZero() {
					rec.Joined = cur.Joined
				}
				b, _ := json.Marshal(rec)
				_, err = sess.Set(ctx, p, b, st.Version)
				return err
			} else if !errors.Is(err, coord.ErrNotFound) {
				return err
			}
			b, _ := json.Marshal(rec)
			pol, err := s.policy()
			if err != nil {
				return err
			}
			_, err = vcacl.Wrap(sess, pol).Create(ctx, p, b, coord.Persistent, nil)
			return err
		},
	}
}

// peerSettings are the settings of the peer's configuration file
// (node/config's format, read by 'musubi peer --config') that site
// bootstrap owns: the site, the federation, the gateway, the ZooKeeper
// servers and credential, and the daemons it manages: the overlay's switch
// (Open vSwitch) and the provisioner's tgtd (provision.tgt). Everything
// else in the file (api, hosts, storage, provision.enabled, log, ...) is
// the administrator's and is kept as it is.
type peerSettings struct {
	site, federation, gateway string
	zk                        []string // this site's server first
	credFile                  string
	ovs                       bool
	ovsdb, datapath           string
	tgt                       config.TgtEndpoint // zero when site bootstrap does not manage tgtd
}

// peerSettings are the owned settings as they should be now.
func (s *site) peerSettings(ctx context.Context) (peerSettings, error) {
	sess, err := s.dataSession(ctx)
	if err != nil {
		return peerSettings{}, err
	}
	ms, err := sess.Members(ctx)
	if err != nil {
		return peerSettings{}, err
	}
	zk := []string{s.st.ClientAddr()}
	for _, m := range ms {
		if m.ID != s.st.ServerID {
			zk = append(zk, m.ClientAddr())
		}
	}
	ps := peerSettings{site: s.st.Site, federation: s.st.Federation, gateway: s.st.Addr, zk: zk, credFile: s.cfg.CredentialPath()}
	if !s.cfg.skip("ovs") {
		ps.ovs, ps.ovsdb, ps.datapath = true, "unix:"+s.ovs().sock, s.st.Datapath
	}
	if !s.cfg.skip("tgt") {
		ps.tgt = config.TgtEndpoint{Socket: fmt.Sprintf("%s.%d", s.tgt().base, s.st.TgtControl), Portal: portal(s.st.Addr, s.st.ISCSIPort)}
	}
	return ps, nil
}

// apply writes the owned settings into c.
func (ps peerSettings) apply(c *config.Config) {
	c.Site, c.Federation, c.Root, c.Gateway = ps.site, ps.federation, "", ps.gateway
	c.ZooKeeper.Servers = slices.Clone(ps.zk)
	c.ZooKeeper.Local = ps.zk[0]
	c.ZooKeeper.CredentialFile = ps.credFile
	if ps.ovs {
		c.Overlay.Enabled, c.Overlay.OVSDB, c.Overlay.DatapathType = true, ps.ovsdb, ps.datapath
	}
	if ps.tgt != (config.TgtEndpoint{}) {
		c.Provision.Tgt = ps.tgt
	}
}

// differs says how c's owned settings differ from ps ("" when they do
// not). The server list only seeds the peer, which follows the ensemble's
// membership (/zookeeper/config) itself: this site's server must come
// first; the rest is refreshed whenever the file is written.
func (ps peerSettings) differs(c config.Config) string {
	switch {
	case c.Site != ps.site || c.Federation != ps.federation || c.Root != "":
		return "site or federation differs"
	case c.Gateway != ps.gateway:
		return "gateway differs"
	case len(c.ZooKeeper.Servers) == 0 || c.ZooKeeper.Servers[0] != ps.zk[0] || c.ZooKeeper.Local != ps.zk[0]:
		return "ZooKeeper servers differ"
	case c.ZooKeeper.CredentialFile != ps.credFile:
		return "ZooKeeper credential file differs"
	case ps.ovs && (!c.Overlay.Enabled || c.Overlay.OVSDB != ps.ovsdb || c.Overlay.DatapathType != ps.datapath):
		return "overlay switch differs"
	case ps.tgt != (config.TgtEndpoint{}) && c.Provision.Tgt != ps.tgt:
		return "tgtd endpoint differs"
	}
	return ""
}

// credentialOK reports whether the credential file holds the token's
// credential with mode 0600.
func (s *site) credentialOK() bool {
	c, err := config.ReadCredential(s.cfg.CredentialPath())
	return err == nil && c == s.tok.Credential
}

func (s *site) stepPeerConfig() Step {
	return Step{
		Name: "peer config",
		Check: func(ctx context.Context) (bool, string, error) {
			want, err := s.peerSettings(ctx)
			if err != nil {
				return false, "", err
			}
			got, strict, err := ReadPeerConfig(s.cfg.PeerConfigPath())
			if errors.Is(err, os.ErrNotExist) {
				return false, "not written", nil
			}
			if err != nil {
				return false, "", err
			}
			if !strict {
				return false, "not in the peer's format", nil
			}
			if d := want.differs(got); d != "" {
				return false, d, nil
			}
			if !s.credentialOK() {
				return false, "credential file missing or differs", nil
			}
			return true, s.cfg.PeerConfigPath(), nil
		},
		Apply: func(ctx context.Context) error {
			want, err := s.peerSettings(ctx)
			if err != nil {
				return err
			}
			c, _, err := ReadPeerConfig(s.cfg.PeerConfigPath())
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			want.apply(&c)
			if !s.credentialOK() {
				line := s.tok.Credential.User + ":" + s.tok.Credential.Password + "\n"
				if err := writeFileAtomic(s.cfg.CredentialPath(), []byte(line), 0o600); err != nil {
					return err
				}
			}
			if err := config.Write(s.cfg.PeerConfigPath(), c); err != nil {
				return fmt.Errorf("sitebootstrap: %w", err)
			}
			return nil
		},
	}
}

// ensureSteps are the steps from the state on, shared by Init, Join and
// Status.
func (s *site) ensureSteps() []Step {
	steps := []Step{s.stepState(), s.stepZKConfig(), s.stepZKRunning(), s.stepZKMember(), s.stepZKServing(), s.stepSchema()}
	if !s.cfg.skip("ovs") {
		steps = append(steps, s.stepOVS())
	}
	if !s.cfg.skip("tgt") {
		steps = append(steps, s.stepTgt())
	}
	steps = append(steps, s.stepRegister(), s.stepPeerConfig())
	if s.cfg.Systemd {
		steps = append(steps, s.stepSystemd())
	}
	return steps
}

// Init bootstraps the first site of a new federation, or checks and
// repairs an existing site (every step is re-runnable). tokenFile, if not
// empty, is an existing token to use instead of a new one.
func Init(ctx context.Context, cfg Config, tokenFile string) (Result, error) {
	s := newSite(cfg)
	defer s.close()
	if err := errors.Join(s.cfg.validateCommon(), s.cfg.validateSite()); err != nil {
		return Result{}, err
	}
	s.tokenFile = tokenFile
	steps := append([]Step{s.stepPackages(), s.stepToken()}, s.ensureSteps()...)
	return Run(ctx, s.cfg.Out, steps)
}

// maxJoinAttempts bounds how often Join starts over after losing a race
// for a server id.
const maxJoinAttempts = 3

// Join bootstraps a site into the running federation whose servers seeds
// name, authenticated by the token in tokenFile.
func Join(ctx context.Context, cfg Config, seeds []string, tokenFile string) (Result, error) {
	s := newSite(cfg)
	defer s.close()
	if err := errors.Join(s.cfg.validateCommon(), s.cfg.validateSite()); err != nil {
		return Result{}, err
	}
	if len(seeds) == 0 {
		return Result{}, fmt.Errorf("%w: --seed: name a ZooKeeper server of the federation (host:port)", ErrConfig)
	}
	if tokenFile == "" {
		return Result{}, fmt.Errorf("%w: --token-file: join needs the federation's token (from the first site's %s)", ErrConfig, "federation.token")
	}
	s.joining, s.seeds, s.tokenFile = true, seeds, tokenFile
	// The token is verified against the federation before it is installed.
	tok, err := ReadTokenFile(tokenFile)
	if err != nil {
		return Result{}, err
	}
	s.tok = tok
	var total Result
	for attempt := 1; ; attempt++ {
		steps := append([]Step{s.stepPackages(), s.stepVerifyToken(), s.stepToken()}, s.ensureSteps()...)
		res, err := Run(ctx, s.cfg.Out, steps)
		total.Steps += res.Steps
		total.Applied = append(total.Applied, res.Applied...)
		if !errors.Is(err, errIDTaken) || attempt == maxJoinAttempts {
			return total, err
		}
		fmt.Fprintf(s.cfg.Out, "server id %d was taken by another joining site; starting over with a new id\n", s.st.ServerID)
		if err := s.resetServer(ctx); err != nil {
			return total, err
		}
	}
}

// resetServer stops this site's server and forgets its id and data, so
// the next attempt picks a new id.
func (s *site) resetServer(ctx context.Context) error {
	if _, err := s.stopZK(ctx); err != nil {
		return err
	}
	if err := os.RemoveAll(s.cfg.zkDir()); err != nil {
		return fmt.Errorf("sitebootstrap: %w", err)
	}
	s.members = nil
	s.close()
	if err := os.Remove(s.cfg.statePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("sitebootstrap: %w", err)
	}
	return nil
}

// load reads the state and the token of an existing site.
func (s *site) load() error {
	if err := s.cfg.validateCommon(); err != nil {
		return err
	}
	st, err := ReadState(s.cfg.StateDir)
	if err != nil {
		return err
	}
	tok, err := ReadTokenFile(s.cfg.TokenPath())
	if err != nil {
		return err
	}
	s.st, s.tok = st, tok
	s.cfg.Site, s.cfg.Federation, s.cfg.Addr = st.Site, st.Federation, st.Addr
	s.cfg.ClientPort, s.cfg.QuorumPort, s.cfg.ElectionPort = st.ClientPort, st.QuorumPort, st.ElectionPort
	s.cfg.ISCSIPort, s.cfg.TgtControlPort = st.ISCSIPort, st.TgtControl
	s.cfg.TickTime, s.cfg.NoForceSync = time.Duration(st.TickMS)*time.Millisecond, st.NoForceSync
	return nil
}

// Leave takes the site out of the federation: it deletes the site's
// records (sites/, live/, links/), removes its server from the ensemble by
// reconfiguration (through the other servers), stops its daemons and clears
// its local state (the token stays). The other sites keep working. Leaving
// a directory that holds no site does nothing.
func Leave(ctx context.Context, cfg Config) (Result, error) {
	s := newSite(cfg)
	defer s.close()
	if err := s.load(); err != nil {
		if errors.Is(err, ErrNotBootstrapped) {
			fmt.Fprintf(s.cfg.Out, "no site in %s: nothing to leave\n", s.cfg.StateDir)
			return Result{}, nil
		}
		return Result{}, err
	}
	steps := []Step{s.stepCanLeave(), s.stepDeregister(), s.stepRemoveMember(), s.stepStopped()}
	steps = append(steps, Step{
		Name: "local state cleared",
		Check: func(context.Context) (bool, string, error) {
			for _, p := range []string{s.cfg.zkDir(), s.cfg.statePath(), s.cfg.PeerConfigPath(), s.cfg.CredentialPath()} {
				if _, err := os.Stat(p); err == nil {
					return false, p + " exists", nil
				}
			}
			return true, "token kept in " + s.cfg.TokenPath(), nil
		},
		Apply: func(context.Context) error {
			var errs []error
			for _, p := range []string{s.cfg.zkDir(), s.cfg.PeerConfigPath(), s.cfg.CredentialPath(), s.cfg.statePath()} {
				errs = append(errs, os.RemoveAll(p))
			}
			return errors.Join(errs...)
		},
	})
	return Run(ctx, s.cfg.Out, steps)
}

// stepCanLeave refuses, before anything changes, to take out the
// ensemble's last voter.
func (s *site) stepCanLeave() Step {
	return Step{
		Name: "other voters remain",
		Check: func(ctx context.Context) (bool, string, error) {
			sess, err := s.dataSession(ctx)
			if err != nil {
				return false, "", err
			}
			ms, err := sess.Members(ctx)
			if err != nil {
				return false, "", err
			}
			if _, ok := coord.FindMember(ms, s.st.ServerID); !ok {
				return true, "already out of the ensemble", nil
			}
			voters := 0
			for _, m := range ms {
				if m.ID != s.st.ServerID && m.Role == coord.Participant {
					voters++
				}
			}
			if voters == 0 {
				return false, "", fmt.Errorf("%w: no other voter would remain (stop the site with 'musubi site stop' instead)", ErrLastSite)
			}
			return true, fmt.Sprintf("%d other voters", voters), nil
		},
	}
}

func (s *site) stepDeregister() Step {
	records := func(ctx context.Context) ([]string, error) {
		sess, err := s.dataSession(ctx)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, p := range []string{coord.SitePath(s.st.Site), coord.LivePath(s.st.Site)} {
			ok, _, err := sess.Exists(ctx, p)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, p)
			}
		}
		links, _, err := sess.Children(ctx, coord.LinksDir)
		if err != nil && !errors.Is(err, coord.ErrNotFound) {
			return nil, err
		}
		for _, l := range links {
			if a, b, err := coord.ParseLinkName(l); err == nil && (a == s.st.Site || b == s.st.Site) {
				out = append(out, coord.Join(coord.LinksDir, l))
			}
		}
		return out, nil
	}
	return Step{
		Name: "site deregistered",
		Check: func(ctx context.Context) (bool, string, error) {
			recs, err := records(ctx)
			if err != nil {
				return false, "", err
			}
			if len(recs) > 0 {
				return false, strings.Join(recs, " "), nil
			}
			return true, "no records of " + s.st.Site, nil
		},
		Apply: func(ctx context.Context) error {
			recs, err := records(ctx)
			if err != nil {
				return err
			}
			sess, _ := s.dataSession(ctx)
			for _, p := range recs {
				if err := sess.Delete(ctx, p, coord.AnyVersion); err != nil && !errors.Is(err, coord.ErrNotFound) {
					return err
				}
			}
			return nil
		},
	}
}

func (s *site) stepRemoveMember() Step {
	return Step{
		Name: "left the ensemble",
		Check: func(ctx context.Context) (bool, string, error) {
			sess, err := s.dataSession(ctx)
			if err != nil {
				return false, "", err
			}
			ms, err := sess.Members(ctx)
			if err != nil {
				return false, "", err
			}
			if _, ok := coord.FindMember(ms, s.st.ServerID); ok {
				return false, fmt.Sprintf("server %d among %d members", s.st.ServerID, len(ms)), nil
			}
			return true, fmt.Sprintf("%d members remain (%d voters)", len(ms), coord.Voters(ms)), nil
		},
		Apply: func(ctx context.Context) error {
			sess, err := s.dataSession(ctx)
			if err != nil {
				return err
			}
			ms, err := sess.Members(ctx)
			if err != nil {
				return err
			}
			var others []string
			voters := 0
			for _, m := range ms {
				if m.ID != s.st.ServerID {
					others = append(others, m.ClientAddr())
					if m.Role == coord.Participant {
						voters++
					}
				}
			}
			if voters == 0 {
				return fmt.Errorf("%w: no other voter would remain (stop the site with 'musubi site stop' instead)", ErrLastSite)
			}
			// Through the other servers: this one stops serving once it is
			// out of the configuration.
			admin, err := s.dial(ctx, others, "", []coord.Credential{s.tok.Super()})
			if err != nil {
				return err
			}
			defer admin.Close()
			actx, cancel := context.WithTimeout(ctx, s.cfg.WaitTimeout)
			defer cancel()
			err = admin.RemoveMember(actx, s.st.ServerID)
			if errors.Is(err, coord.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			// The data session may sit on this site's server: move it to
			// the others before the checks that follow.
			s.close()
			s.seeds, s.left = others, true
			return nil
		},
	}
}

// stepStopped stops the site's daemons.
func (s *site) stepStopped() Step {
	running := func(ctx context.Context) []string {
		var r []string
		c := s.zk(nil)
		if _, ok := procRunning(c.PIDPath(), c.Marker()); ok {
			r = append(r, "zookeeper")
		}
		p := s.ovs()
		if _, ok := procRunning(p.dbPID, p.db); ok {
			r = append(r, "ovsdb-server")
		}
		if _, ok := procRunning(p.swPID, "unix:"+p.sock); ok {
			r = append(r, "ovs-vswitchd")
		}
		t := s.tgt()
		if _, ok := procRunning(t.pid, t.marker); ok {
			r = append(r, "tgtd")
		}
		return r
	}
	return Step{
		Name: "daemons stopped",
		Check: func(ctx context.Context) (bool, string, error) {
			if r := running(ctx); len(r) > 0 {
				return false, strings.Join(r, ", ") + " running", nil
			}
			return true, "", nil
		},
		Apply: func(ctx context.Context) error {
			_, err := s.stopZK(ctx)
			return errors.Join(err, s.stopOVS(ctx), s.stopTgt(ctx))
		},
	}
}

// Stop stops the site's daemons and leaves everything else as it is: the
// site stays a member of the ensemble (a voter that is down counts against
// the quorum). Re-run Init or Join to start them again.
func Stop(ctx context.Context, cfg Config) (Result, error) {
	s := newSite(cfg)
	defer s.close()
	if err := s.load(); err != nil {
		return Result{}, err
	}
	return Run(ctx, s.cfg.Out, []Step{s.stepStopped()})
}

// StepStatus is one step's Check as Status reports it.
type StepStatus struct {
	Name   string `json:"name"`
	Done   bool   `json:"done"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Status is a site's state: its local state, each step's check, the
// ensemble's membership and the federation's sites.
type Status struct {
	State   State             `json:"state"`
	Mode    string            `json:"zk_mode"` // this site's server's role ("" when it does not serve)
	Steps   []StepStatus      `json:"steps"`
	Members []coord.Member    `json:"members,omitempty"`
	Sites   []node.SiteStatus `json:"sites,omitempty"`
	Errors  []string          `json:"errors,omitempty"`
}

// ReadStatus checks every step of the site without changing anything and
// reads the ensemble's membership and the federation's sites.
func ReadStatus(ctx context.Context, cfg Config) (Status, error) {
	s := newSite(cfg)
	defer s.close()
	if err := s.load(); err != nil {
		return Status{}, err
	}
	var st Status
	st.State = s.st
	for _, step := range append([]Step{s.stepPackages()}, s.ensureSteps()...) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		done, detail, err := step.Check(cctx)
		cancel()
		ss := StepStatus{Name: step.Name, Done: done, Detail: detail}
		if err != nil {
			ss.Error = err.Error()
		}
		st.Steps = append(st.Steps, ss)
	}
	st.Mode = modeOf(ctx, s.st.ClientAddr())
	if sess, err := s.dataSession(ctx); err == nil {
		if ms, err := sess.Members(ctx); err == nil {
			st.Members = ms
		} else {
			st.Errors = append(st.Errors, err.Error())
		}
		if fs, err := node.ReadStatus(ctx, sess); err == nil {
			st.Sites = fs.Sites
		} else {
			st.Errors = append(st.Errors, err.Error())
		}
	} else {
		st.Errors = append(st.Errors, err.Error())
	}
	return st, nil
}
