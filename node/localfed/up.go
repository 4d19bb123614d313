package localfed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/internal/sitenet"
	"github.com/musubi-fabric/musubi/node/api"
	"github.com/musubi-fabric/musubi/node/config"
	sitebootstrap "github.com/musubi-fabric/musubi/site-bootstrap"
)

// Capacity each site offers to reservations: one compute host and one
// storage host, sized for virtual nodes on a small machine (netns nodes
// use far less than they book).
const (
	hostMemoryMiB = 4096
	hostVCPUs     = 4
	storageBytes  = 16 << 30
)

// Result is what Up made.
type Result struct {
	State State
	// Token is the admin API token (also in State.TokenFile).
	Token string
	// Took is Up's duration.
	Took time.Duration
}

// requiredPrograms are what Up itself runs (site bootstrap checks the
// daemons' packages and says how to install them).
var requiredPrograms = []string{"ip", "nsenter", "ethtool", "ovs-vsctl"}

// Available reports whether Up can run here: root, and the programs it runs.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (network namespaces)", ErrNotAvailable)
	}
	var missing []string
	for _, p := range requiredPrograms {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s not found (apt-get install iproute2 ethtool openvswitch-switch)", ErrNotAvailable, strings.Join(missing, ", "))
	}
	return nil
}

// Up builds the federation o describes (see the package doc) and returns
// once every peer is ready. On failure or when ctx ends it takes down
// everything it made (unless o.Keep) and returns the error.
func Up(ctx context.Context, o Options) (res Result, err error) {
	t0 := time.Now()
	o.setDefaults()
	st, sites, err := Plan(o)
	if err != nil {
		return res, err
	}
	if err := Available(); err != nil {
		return res, err
	}
	exe, err := executable(o.Exe)
	if err != nil {
		return res, err
	}
	if err := preflight(ctx, st, sites); err != nil {
		return res, err
	}
	created := false
	if _, err := os.Stat(st.Dir); errors.Is(err, os.ErrNotExist) {
		created = true
	}
	if err := os.MkdirAll(st.Dir, 0o755); err != nil {
		return res, fmt.Errorf("localfed: %w", err)
	}
	l, err := lockDir(st.Dir)
	if err != nil {
		if created {
			_ = os.Remove(st.Dir)
		}
		return res, err
	}
	defer l.release()
	if _, err := os.Stat(StatePath(st.Dir)); err == nil {
		return res, fmt.Errorf("%w: %s records a federation (a concurrent up?)", ErrExists, StatePath(st.Dir))
	}
	st.CreatedDir, st.Phase, st.Created = created, PhaseBuilding, time.Now().UTC().Truncate(time.Second)
	if err := st.Save(); err != nil {
		if created {
			_ = os.Remove(st.Dir)
		}
		return res, err
	}
	say := func(format string, a ...any) { fmt.Fprintf(o.Out, format+"\n", a...) }
	say("Bringing up %d sites on this machine in %s", len(sites), st.Dir)
	u := &upRun{o: o, st: &st, exe: exe}
	defer func() {
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (interrupted)", err)
		}
		if o.Keep {
			st.Phase = PhaseFailed
			err = errors.Join(err, st.Save())
			say("kept what was made (--keep): look at the logs in %s, then run 'musubi local down --dir %s'", st.Dir, st.Dir)
			return
		}
		say("tearing down what was made")
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		if derr := down(tctx, &st, exe, say); derr != nil {
			err = errors.Join(err, derr)
		} else {
			say("nothing left: every namespace, process and file Up made is gone")
		}
	}()

	steps := []upStep{{"state directory", u.prepare}, {"wan links", func(ctx context.Context) (string, error) { return u.wan(ctx, sites) }}}
	for i := range sites {
		name := "site " + sites[i].Name + " init"
		if i > 0 {
			name = "site " + sites[i].Name + " join"
		}
		steps = append(steps, upStep{name, func(ctx context.Context) (string, error) { return u.bootstrap(ctx, i) }})
	}
	steps = append(steps, upStep{"peers started", u.startPeers}, upStep{"peers ready", u.waitReady})
	if err := runSteps(ctx, o.Out, steps); err != nil {
		return res, err
	}
	st.Phase = PhaseUp
	if err := st.Save(); err != nil {
		return res, err
	}
	return Result{State: st, Token: u.token, Took: time.Since(t0)}, nil
}

// preflight refuses, before anything is made, when something is in the
// way: a federation recorded in the directory, a file in it, one of the
// namespaces, the host link, or a route into 10.200.0.0/16.
func preflight(ctx context.Context, st State, sites []Site) error {
	if _, err := os.Stat(StatePath(st.Dir)); err == nil {
		return fmt.Errorf("%w: %s records a local federation: see 'musubi local status --dir %s', or take it down with 'musubi local down --dir %s'", ErrExists, st.Dir, st.Dir, st.Dir)
	}
	if ents, err := os.ReadDir(st.Dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("%w: %s is not empty: give an empty or new directory with --dir", ErrExists, st.Dir)
	}
	var in []string
	for _, s := range sites {
		if sitenet.NetnsExists(s.Netns) {
			in = append(in, "namespace "+s.Netns)
		}
	}
	if sitenet.NetnsExists(TransitNetns) {
		in = append(in, "namespace "+TransitNetns)
	}
	if sitenet.LinkExists(ctx, "", HostIface) {
		in = append(in, "interface "+HostIface)
	}
	routes, err := sitenet.RoutesOverlapping(ctx, hostRoute)
	if err != nil {
		return err
	}
	for _, r := range routes {
		in = append(in, "route "+strconv.Quote(r))
	}
	if len(in) > 0 {
		return fmt.Errorf("%w: %s already exist on this machine (another local federation? 'musubi local down --dir DIR' with its directory removes it; otherwise remove them by hand)", ErrExists, strings.Join(in, ", "))
	}
	return nil
}

// upRun is one run of Up.
type upRun struct {
	o     Options
	st    *State
	exe   string
	token string
}

// record saves the state: called before each thing is made.
func (u *upRun) record() error { return u.st.Save() }

// prepare writes the admin token and the peers' tokens file.
func (u *upRun) prepare(context.Context) (string, error) {
	tok := api.NewToken()
	entry := api.TokenEntry{Name: "admin", Role: api.RoleAdmin, SHA256: api.HashToken(tok)}
	b, err := json.MarshalIndent(api.TokensFile{Tokens: []api.TokenEntry{entry}}, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeSecret(u.st.TokensFile, append(b, '\n')); err != nil {
		return "", err
	}
	if err := writeSecret(u.st.TokenFile, []byte(tok+"\n")); err != nil {
		return "", err
	}
	u.token = tok
	return fmt.Sprintf("%s, admin token in %s", u.st.Dir, u.st.TokenFile), nil
}

func writeSecret(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("localfed: %w", err)
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}

// wan makes the transit namespace, the host link and every site's
// namespace and WAN link, and delays the links when it can.
func (u *upRun) wan(ctx context.Context, sites []Site) (string, error) {
	st := u.st
	st.Transit = TransitNetns
	if err := u.record(); err != nil {
		return "", err
	}
	if err := sitenet.CreateTransit(ctx, st.Transit); err != nil {
		return "", u.unrecordNetns(st.Transit, err)
	}
	hl := hostLink()
	st.HostLink, st.HostRoute = hl.HostIface, hl.Route.String()
	if err := u.record(); err != nil {
		return "", err
	}
	if err := sitenet.AddHostLink(ctx, hl); err != nil {
		return "", err
	}
	for _, s := range sites {
		st.Sites = append(st.Sites, s)
		if err := u.record(); err != nil {
			return "", err
		}
		if err := sitenet.AddNetns(ctx, s.Netns); err != nil {
			return "", u.unrecordNetns(s.Netns, err)
		}
		st.Sites[len(st.Sites)-1].Link = true
		if err := u.record(); err != nil {
			return "", err
		}
		if err := sitenet.AddLink(ctx, s.link()); err != nil {
			return "", err
		}
		if err := sitenet.AssignWANAddr(ctx, s.link()); err != nil {
			return "", err
		}
	}
	detail := fmt.Sprintf("transit %s, %d site namespaces, host route %s via %s", st.Transit, len(sites), st.HostRoute, st.HostLink)
	if d := u.o.WANDelay; d > 0 {
		for _, s := range sites {
			if err := sitenet.SetDelay(ctx, st.Transit, s.TransitIface, d); err != nil {
				st.DelayNote = "tc netem failed: " + lastLine(err.Error())
				u.o.Logger.Info("WAN delay not available", "err", err)
				break
			}
		}
		st.DelayApplied = st.DelayNote == ""
		if st.DelayApplied {
			detail += fmt.Sprintf(", %s one-way delay on each link", d)
		} else {
			detail += fmt.Sprintf("; the %s WAN delay is not available here (%s): the links have none", d, st.DelayNote)
		}
		if err := u.record(); err != nil {
			return "", err
		}
	}
	return detail, nil
}

// unrecordNetns forgets namespace ns when its creation failed because it
// exists already: it is someone else's, and Down must not delete it.
func (u *upRun) unrecordNetns(ns string, err error) error {
	if !strings.Contains(err.Error(), "File exists") {
		return err
	}
	st := u.st
	if st.Transit == ns {
		st.Transit = ""
	}
	st.Sites = slices.DeleteFunc(st.Sites, func(s Site) bool { return s.Netns == ns })
	return errors.Join(fmt.Errorf("%w: namespace %s appeared meanwhile: %w", ErrExists, ns, err), u.record())
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		return s[i+2:]
	}
	return s
}

// bootstrap runs site bootstrap (init or join) for site i in its
// namespace, moves its address onto br-phy, and adds the API settings to
// its peer's configuration.
func (u *upRun) bootstrap(ctx context.Context, i int) (string, error) {
	st := u.st
	s := &st.Sites[i]
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return "", fmt.Errorf("localfed: %w", err)
	}
	s.Bootstrap = "started"
	if err := u.record(); err != nil {
		return "", err
	}
	logf, err := os.OpenFile(s.BootLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return "", fmt.Errorf("localfed: %w", err)
	}
	defer logf.Close()
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	argv := append([]string{"ip", "netns", "exec", s.Netns, u.exe}, BootArgs(*st, *s)...)
	fmt.Fprintf(logf, "$ %s\n", strings.Join(argv, " "))
	cmd := exec.CommandContext(bctx, argv[0], argv[1:]...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s: %v; its output (%s) ends:\n%s", ErrStep, strings.Join(argv[4:7], " "), err, s.BootLog, indent(tail(s.BootLog, 12)))
	}
	s.Bootstrap = "done"
	s.Phy = true
	if err := u.record(); err != nil {
		return "", err
	}
	pc, _, err := sitebootstrap.ReadPeerConfig(s.PeerConfig)
	if err != nil {
		return "", err
	}
	if err := sitenet.AttachPhy(ctx, pc.Overlay.OVSDB, s.link(), sitenet.PhyMAC(s.Index)); err != nil {
		return "", fmt.Errorf("%w: the underlay bridge of site %s: %w", ErrStep, s.Name, err)
	}
	verb := "initialised federation " + strconv.Quote(st.Federation)
	if i > 0 {
		verb = "joined through " + st.Sites[0].ZKAddr()
	}
	return fmt.Sprintf("%s in %s, %s on %s, log %s", verb, s.Netns, s.Addr, sitenet.PhyBridge, s.BootLog), nil
}

// configurePeer adds to the site's musubi.json what site bootstrap leaves
// to the administrator (and keeps on re-runs): the API on the site's
// address and unix socket with the federation's tokens, the site's
// compute and storage host, the provisioner with the chosen backend, text
// logs; and it lists every site's ZooKeeper server, the site's own first
// (site bootstrap wrote the servers it knew when the site joined; the
// peer follows the ensemble itself, the provisioner's relay for the
// nodes' agents uses the list).
func (u *upRun) configurePeer(s *Site) error {
	// The nodes' users reach their agents' sockets under the site's
	// provisioner directory: the site directory (0700 from bootstrap; the
	// token and credential files in it are 0600) must be traversable.
	if err := os.Chmod(s.Dir, 0o711); err != nil {
		return fmt.Errorf("%w: %w", ErrStep, err)
	}
	c, err := config.Load(nil, func(k string) (string, bool) {
		if k == config.EnvConfig {
			return s.PeerConfig, true
		}
		return "", false
	})
	if err != nil {
		return fmt.Errorf("%w: site bootstrap's %s: %w", ErrStep, s.PeerConfig, err)
	}
	servers := []string{s.ZKAddr()}
	for _, o := range u.st.Sites {
		if o.Name != s.Name {
			servers = append(servers, o.ZKAddr())
		}
	}
	c.ZooKeeper.Servers, c.ZooKeeper.Local = servers, s.ZKAddr()
	c.API.Listen = net.JoinHostPort(s.IP(), strconv.Itoa(u.st.APIPort))
	c.API.InsecureHTTP = true // reachable from this machine only (see the package doc)
	c.API.Socket, c.API.TokensFile = s.Socket, u.st.TokensFile
	c.Hosts = []config.Host{{Name: s.Name + "-h1", MemoryMiB: hostMemoryMiB, VCPUs: hostVCPUs}}
	c.Storage = []config.StorageHost{{Name: s.Name + "-st1", Bytes: storageBytes}}
	// The provisioner builds this site's share of every VC: nodes with the
	// chosen backend, their state under the site's directory.
	c.Provision.Enabled, c.Provision.Backend = true, u.st.Backend
	c.Provision.StateDir = filepath.Join(s.Dir, "prov")
	c.Provision.NodePrefix = u.st.NodePrefix(*s)
	c.Log.Format = "text"
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%w: the peer configuration of site %s: %w", ErrStep, s.Name, err)
	}
	return config.Write(s.PeerConfig, c)
}

// startPeers completes every site's peer configuration and starts `musubi
// peer --config <site>/musubi.json` in the site's namespace.
func (u *upRun) startPeers(context.Context) (string, error) {
	st := u.st
	var pids []string
	for i := range st.Sites {
		if err := u.configurePeer(&st.Sites[i]); err != nil {
			return "", err
		}
	}
	for i := range st.Sites {
		s := &st.Sites[i]
		// nsenter --net, not ip netns exec: the peer must share the host's
		// mount namespace, or the node namespaces its provisioner makes
		// (ip netns add: a bind mount under /run/netns) would exist only
		// in a private copy of it (ip netns exec makes every mount a
		// slave), and the host could neither enter nor delete them. On a
		// real site the peer runs in the host's namespaces anyway.
		argv := []string{"nsenter", "--net=" + filepath.Join("/run/netns", s.Netns), "--", u.exe, "peer", "--config", s.PeerConfig}
		s.Peer = &Proc{Argv: argv}
		if err := u.record(); err != nil {
			return "", err
		}
		pid, start, err := startDetached(argv, childEnv(), s.PeerLog)
		s.Peer.PID, s.Peer.Start = pid, start
		if rerr := u.record(); rerr != nil {
			return "", errors.Join(err, rerr)
		}
		if err != nil {
			return "", fmt.Errorf("%w: the peer of site %s: %w", ErrStep, s.Name, err)
		}
		pids = append(pids, fmt.Sprintf("%s pid %d", s.Name, pid))
	}
	return strings.Join(pids, ", "), nil
}

// readyPoll is how often waitReady asks.
const readyPoll = 250 * time.Millisecond

// waitReady waits until every peer answers /readyz with 200 on its API
// address, from this (the host's) namespace: that also proves the host
// reaches the sites.
func (u *upRun) waitReady(ctx context.Context) (string, error) {
	st := u.st
	hc := httpClient(2 * time.Second)
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(u.o.ReadyTimeout)
	pending := map[string]string{} // site -> last problem
	for _, s := range st.Sites {
		pending[s.Name] = "no answer yet"
	}
	var took []string
	t0 := time.Now()
	for {
		for i := range st.Sites {
			s := &st.Sites[i]
			if _, ok := pending[s.Name]; !ok {
				continue
			}
			if !s.Peer.alive() {
				return "", fmt.Errorf("%w: the peer of site %s (pid %d) exited; its log %s ends:\n%s", ErrStep, s.Name, s.Peer.PID, s.PeerLog, indent(tail(s.PeerLog, 15)))
			}
			ready, problems, err := readyz(ctx, hc, s.API)
			switch {
			case err != nil:
				pending[s.Name] = err.Error()
			case !ready:
				pending[s.Name] = strings.Join(problems, "; ")
			default:
				delete(pending, s.Name)
				took = append(took, fmt.Sprintf("%s after %s", s.Name, time.Since(t0).Round(100*time.Millisecond)))
			}
		}
		if len(pending) == 0 {
			return "ready at " + strings.Join(took, ", "), nil
		}
		if time.Now().After(deadline) {
			var why []string
			for _, s := range st.Sites {
				if p, ok := pending[s.Name]; ok {
					why = append(why, fmt.Sprintf("%s (%s): %s; log %s", s.Name, s.API, p, s.PeerLog))
				}
			}
			return "", fmt.Errorf("%w: peers not ready within %s:\n  %s", ErrStep, u.o.ReadyTimeout, strings.Join(why, "\n  "))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(readyPoll):
		}
	}
}

// httpClient talks to the peers directly (never through a proxy).
func httpClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
}

// readyz asks a peer's /readyz.
func readyz(ctx context.Context, hc *http.Client, base string) (bool, []string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return false, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Ready    bool     `json:"ready"`
		Problems []string `json:"problems"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return false, nil, fmt.Errorf("/readyz: %s: %w", resp.Status, err)
	}
	return resp.StatusCode == http.StatusOK && body.Ready, body.Problems, nil
}

func indent(s string) string {
	if s == "" {
		return "    (empty)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// upStep is one progress line of Up.
type upStep struct {
	name string
	run  func(ctx context.Context) (detail string, err error)
}

// runSteps runs the steps in order, printing one line per step as site
// bootstrap does ("[3/7] site s2 join  done in 1.2s (...)"), and stops at
// the first failure.
func runSteps(ctx context.Context, out io.Writer, steps []upStep) error {
	width := 0
	for _, s := range steps {
		width = max(width, len(s.name))
	}
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		prefix := fmt.Sprintf("[%*d/%d] %-*s", len(strconv.Itoa(len(steps))), i+1, len(steps), width, s.name)
		t0 := time.Now()
		detail, err := s.run(ctx)
		if err != nil {
			first, _, _ := strings.Cut(err.Error(), "\n")
			fmt.Fprintf(out, "%s  FAILED after %s: %s\n", prefix, time.Since(t0).Round(time.Millisecond), first)
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(out, "%s  done in %s%s\n", prefix, time.Since(t0).Round(time.Millisecond), paren(detail))
	}
	return nil
}
