package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/internal/version"
	"github.com/musubi-fabric/musubi/internal/zktest"
	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/node"
	"github.com/musubi-fabric/musubi/node/agentapi"
	"github.com/musubi-fabric/musubi/node/localfed"
)

func init() {
	register(&command{name: "local", short: "a federation of namespaced sites on this machine: up, status, exec, down, demo", run: runLocal})
}

func runLocal(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(env.stdout, `Usage: musubi local <subcommand> [flags]

Subcommands:
  up      build a federation of N sites on this machine, each site a
          network namespace behind a transit namespace (the WAN), with the
          real site bootstrap (ZooKeeper, Open vSwitch, tgtd) and a peer per
          site; print the API and web UI addresses and the admin token
  status  show the sites, their namespaces, daemons, ZooKeeper ensemble,
          peers' readiness and how to reach the web UI
  exec    run a command inside a site's namespace with the site's
          environment (musubi local exec s1 -- musubi status)
  down    stop everything 'up' started and remove every namespace, link
          and file it made (safe to run twice, and after a crashed 'up')
  demo    bring up a federation of N sites on this machine (one ZooKeeper
          server, one peer session and one node agent per site), run the
          virtual-screening workload (examples/virtual-screening) across
          the sites with qsub while the ensemble loses its leader, print
          the best-scoring ligands and the accounting, and tear everything
          down

Run 'musubi local <subcommand> --help' for its flags.
`)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	switch args[0] {
	case "up":
		return runLocalUp(ctx, env, args[1:])
	case "status":
		return runLocalStatus(ctx, env, args[1:])
	case "exec":
		return runLocalExec(ctx, env, args[1:])
	case "down":
		return runLocalDown(ctx, env, args[1:])
	case "demo":
		return runLocalDemo(ctx, env, args[1:])
	}
	fmt.Fprintf(env.stderr, "musubi local: unknown subcommand %q (try 'musubi local --help')\n", args[0])
	return exitUsage
}

// demoOptions are the flags of `musubi local demo`.
type demoOptions struct {
	sites          int
	fed            string
	ligands        int    // 0: no workload, the coordination layer only
	exhaustiveness int    // AutoDock Vina's search effort per ligand
	slots          int    // job slots per node
	example        string // the examples/virtual-screening directory
	killLeader     bool   // kill the ZooKeeper leader while docking runs
	keep           bool   // keep the state directory
	timeout        time.Duration
	hostOnly       bool          // the old, namespace-free demo: agents on the host
	wanDelay       time.Duration // one-way delay of each site's WAN link
}

const localDemoSynopsis = `local demo [flags]

Brings up a federation of --sites sites on this machine: a ZooKeeper
ensemble with one server per site, each site registered by its own peer
session, and one node agent per site (node <site>-n1) serving the Grid
Engine commands for the virtual cluster "demo". Then it submits the
virtual-screening workload (examples/virtual-screening: an AutoDock Vina
array job, one ligand per task, and a -hold_jid summary job) with qsub on
the last site's node, shows the tasks done per site while they run, kills
the ZooKeeper leader half-way (the jobs still finish, each exactly once),
prints the top-10 ligands with the site that docked each and the
accounting, and tears everything down - also on Ctrl-C or failure.

Jobs run as the invoking user, or as nobody when that is root. Everything
lives in one temporary directory, removed at the end unless --keep.

Flags:`

func runLocalDemo(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "local demo", localDemoSynopsis)
	o := demoOptions{}
	fs.IntVar(&o.sites, "sites", 3, "number of sites (1-7; one ZooKeeper voter and one node each)")
	fs.StringVar(&o.fed, "federation", "local", "federation name (its data lives under /musubi/<name>)")
	fs.IntVar(&o.ligands, "ligands", 16, "ligands to dock, the first N of the library (0: skip the workload)")
	fs.IntVar(&o.exhaustiveness, "exhaustiveness", 1, "AutoDock Vina's exhaustiveness (search effort per ligand, 1-32)")
	fs.IntVar(&o.slots, "slots", 1, "job slots per node")
	fs.StringVar(&o.example, "example", "", "the virtual-screening example directory (default: examples/virtual-screening here or beside the binary's bin/)")
	fs.BoolVar(&o.killLeader, "kill-leader", true, "kill the ZooKeeper leader while the jobs run (needs 3 or more sites)")
	fs.BoolVar(&o.keep, "keep", false, "keep the state directory (job outputs, agent logs) instead of removing it")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up when the jobs have not finished after this long")
	fs.BoolVar(&o.hostOnly, "host-only", false, "no network namespaces: a ZooKeeper ensemble and one agent per site on the host (for machines without Open vSwitch)")
	fs.DurationVar(&o.wanDelay, "wan-delay", 20*time.Millisecond, "one-way delay of each site's WAN link (needs the kernel's sch_netem)")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "musubi local demo: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(env.stderr, "musubi local demo: "+format+"\n", a...)
		return exitUsage
	}
	switch {
	case o.sites < 1 || o.sites > 7:
		return usage("--sites %d is out of range: use 1 to 7 (ZooKeeper voters)", o.sites)
	case o.ligands < 0:
		return usage("--ligands %d: use 0 (no workload) or more", o.ligands)
	case o.exhaustiveness < 1 || o.exhaustiveness > 32:
		return usage("--exhaustiveness %d is out of range: use 1 to 32", o.exhaustiveness)
	case o.slots < 1 || o.slots > 64:
		return usage("--slots %d is out of range: use 1 to 64", o.slots)
	case o.timeout <= 0:
		return usage("--timeout %s: must be positive", o.timeout)
	}
	if err := coord.ValidName(o.fed); err != nil {
		return usage("--federation: %v", err)
	}
	if err := zktest.Available(); err != nil {
		return fail(env, "local demo", err, "Install ZooKeeper with 'make deps' (Debian package zookeeper), then retry.")
	}
	if o.ligands > 0 {
		dir, err := findExample(o.example)
		if err != nil {
			return fail(env, "local demo", err, "Run it from the repository (make demo), or give --example DIR, or --ligands 0 to skip the workload.")
		}
		o.example = dir
		total, err := librarySize(dir)
		if err != nil {
			return fail(env, "local demo", err, "")
		}
		if o.ligands > total {
			return usage("--ligands %d: the library in %s has %d", o.ligands, dir, total)
		}
		if _, err := exec.LookPath("vina"); err != nil {
			return fail(env, "local demo", errors.New("AutoDock Vina (vina) not found in PATH"), "Install it with 'make deps' (Debian package autodock-vina), or give --ligands 0.")
		}
	}
	if err := localDemo(ctx, env, o); err != nil {
		if ctx.Err() != nil && !errors.Is(err, errTeardown) {
			fmt.Fprintln(env.stderr, "musubi local demo: interrupted; everything it started was stopped")
			return exitInterupt
		}
		return fail(env, "local demo", err, "Run it again with --keep to look at the job outputs and agent logs.")
	}
	return exitOK
}

// exampleDir is where the virtual-screening example lives in the repository.
const exampleDir = "examples/virtual-screening"

// findExample returns the example directory: dir if given, else
// examples/virtual-screening in the working directory or in the parent of
// the binary's directory (bin/musubi of a checkout).
func findExample(dir string) (string, error) {
	cands := []string{dir}
	if dir == "" {
		cands = []string{exampleDir}
		if exe, err := os.Executable(); err == nil {
			cands = append(cands, filepath.Join(filepath.Dir(filepath.Dir(exe)), exampleDir))
		}
	}
	for _, c := range cands {
		if _, err := os.Stat(filepath.Join(c, "dock.sh")); err == nil {
			return filepath.Abs(c)
		}
	}
	return "", fmt.Errorf("the virtual-screening example (dock.sh) is not in %s", strings.Join(cands, " nor "))
}

// librarySize counts the ligands of the example's ligands.smi.
func librarySize(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "ligands.smi"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n, nil
}

// localRun is one run of the demo: what it started, so that teardown can
// stop it in order.
type localRun struct {
	env    *cliEnv
	o      demoOptions
	t0     time.Time
	logger *slog.Logger
	state  string // the temporary directory holding everything
	// fedDir is the `local up` federation's directory (not --host-only);
	// fed its record once up.
	fedDir   string
	fed      *localfed.State
	fedUp    bool
	reserved bool // the demo's VC was reserved
	ens      *zktest.Ensemble
	stores   []coord.Store
	agents   []*demoAgent
	user     jobUser
}

func (d *localRun) say(format string, a ...any) {
	fmt.Fprintf(d.env.stdout, "==> "+format+"\n", a...)
}

func localDemo(ctx context.Context, env *cliEnv, o demoOptions) (err error) {
	d := &localRun{env: env, o: o, t0: time.Now(),
		logger: slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	d.state, err = os.MkdirTemp("", "mdemo-") // short: unix sockets live under it
	if err != nil {
		return err
	}
	defer func() {
		if ctx.Err() != nil {
			d.say("interrupted")
		}
		if err != nil && ctx.Err() == nil && !errors.Is(err, errJobsFailed) {
			d.dumpLogs()
		}
		err = errors.Join(err, d.teardown())
	}()
	// The job user must reach the work directory and the agents' sockets.
	if err := os.Chmod(d.state, 0o755); err != nil {
		return err
	}
	if !o.hostOnly {
		d.fedDir = d.state
		return d.federated(ctx)
	}
	n := o.sites
	d.say("starting a %d-server ZooKeeper ensemble on loopback (one server per site)", n)
	d.ens, err = zktest.Start(ctx, zktest.Options{Servers: n, Dir: d.state,
		// Each server in its own session: a Ctrl-C at the terminal
		// reaches the demo only, which then stops everything in order.
		Exec: func(int) []string { return []string{"setsid"} }})
	if err != nil {
		return err
	}
	d.say("ensemble serving after %s: %s", time.Since(d.t0).Round(time.Millisecond), d.ens.ConnectString())

	d.stores = make([]coord.Store, n)
	host, _ := os.Hostname()
	for i := range d.stores {
		site := siteName(i)
		s, err := zkstore.Open(ctx, zkstore.Config{
			Servers: d.ens.Servers(), LocalServer: d.ens.Addr(i + 1),
			Root: coord.FederationRoot(o.fed), SessionTimeout: 10 * time.Second, Logger: d.logger,
		})
		if err != nil {
			return fmt.Errorf("%s: connect: %w", site, err)
		}
		d.stores[i] = s
		if err := node.InitSchema(ctx, s); err != nil {
			return err
		}
		rec := node.SiteRecord{Name: site, ZKServer: d.ens.Addr(i + 1), Joined: time.Now().UTC()}
		live := node.LiveRecord{Peer: fmt.Sprintf("%s/pid-%d/%s", host, os.Getpid(), site), Since: time.Now().UTC(), Version: version.String()}
		if err := node.RegisterSite(ctx, s, rec, live); err != nil {
			return err
		}
		d.say("%s joined: registered sites/%s and live/%s (session 0x%x via %s)", site, site, site, s.SessionID(), d.ens.Addr(i+1))
	}
	if err := d.show(ctx, "$ musubi status   # as read from any site"); err != nil {
		return err
	}
	if o.ligands == 0 {
		return d.leaderLossOnly(ctx)
	}
	return d.screening(ctx)
}

// plural is "1 site", "3 sites".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func siteName(i int) string { return fmt.Sprintf("site%d", i+1) }

// show prints the federation's status as the last site reads it, with each
// site's ZooKeeper role.
func (d *localRun) show(ctx context.Context, title string) error {
	if d.fed != nil {
		s := d.fed.Sites[len(d.fed.Sites)-1]
		return d.siteCmd(ctx, s, "musubi", "status")
	}
	st, err := node.ReadStatus(ctx, d.stores[len(d.stores)-1])
	if err != nil {
		return err
	}
	fmt.Fprintf(d.env.stdout, "\n%s\n", title)
	roles := map[string]string{}
	for _, m := range d.ens.Members() {
		mode, _ := d.ens.Mode(ctx, m.ID)
		if mode == "" {
			mode = "down"
		}
		roles[m.ClientAddr()] = mode
	}
	if err := st.WriteTable(d.env.stdout, "ZK ROLE", func(s node.SiteStatus) string { return roles[s.ZKServer] }); err != nil {
		return err
	}
	fmt.Fprintln(d.env.stdout)
	return nil
}

// leaderLossOnly is the demo without a workload: the ensemble loses its
// leader, the sites' sessions survive, the server comes back.
func (d *localRun) leaderLossOnly(ctx context.Context) error {
	if d.o.sites < 3 || !d.o.killLeader {
		return nil
	}
	leader, err := d.killLeader(ctx)
	if err != nil {
		return err
	}
	if err := d.show(ctx, "$ musubi status   # after the leader's loss"); err != nil {
		return err
	}
	d.say("restarting server %d: it rejoins as a follower", leader)
	if err := d.ens.Start(leader); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.ens.WaitServing(wctx, leader); err != nil {
		return err
	}
	return d.show(ctx, "$ musubi status   # all servers back")
}

// killLeader SIGKILLs the ensemble's leader and waits until a site whose
// server survived can write again.
func (d *localRun) killLeader(ctx context.Context) (int, error) {
	leader, err := d.ens.Leader(ctx)
	if err != nil {
		return 0, err
	}
	d.say("killing the ZooKeeper leader (server %d, %s's; SIGKILL): no site is special, the others elect a new one", leader, siteName(leader-1))
	tk := time.Now()
	if err := d.ens.Kill(leader); err != nil {
		return 0, err
	}
	// A write from a site whose server survived shows when the ensemble
	// accepts writes again.
	writer := d.stores[leader%len(d.stores)]
	deadline := time.Now().Add(time.Minute)
	for {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := writer.Set(wctx, coord.SitesDir, nil, coord.AnyVersion)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if !coord.Retryable(err) && !errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("write after leader loss: %w", err)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no write accepted within a minute of the leader's loss: %w", err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return 0, err
		}
	}
	d.say("writes accepted again after %s; every session survived (ephemeral live/ records intact)", time.Since(tk).Round(time.Millisecond))
	return leader, nil
}

// jobUser is who submits and runs the jobs: the invoking user, or nobody
// when that is root (jobs never run as root).
type jobUser struct {
	name     string
	uid, gid int
	cred     *syscall.Credential // nil: the invoking user
}

func lookupJobUser() (jobUser, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return jobUser{}, err
		}
		return jobUser{name: u.Username, uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return jobUser{}, fmt.Errorf("running as root, the jobs run as nobody: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return jobUser{name: u.Username, uid: uid, gid: gid,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}}, nil
}

// demoAgent is one `musubi agent` child process.
type demoAgent struct {
	node, site  string
	socket, log string
	netns       string        // the node's namespace (a provisioned node), "" for an agent on the host
	cmd         *exec.Cmd     // nil for a provisioned node's agent (its peer runs it)
	done        chan struct{} // closed when the process was reaped
	err         error         // its exit, valid once done is closed
	client      *agentapi.Client
}

func (a *demoAgent) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// startAgent starts the agent of site i's node as a child process in its
// own process group.
func (d *localRun) startAgent(exe string, i int) (*demoAgent, error) {
	a := &demoAgent{node: siteName(i) + "-n1", site: siteName(i), done: make(chan struct{})}
	dir := filepath.Join(d.state, "nodes", a.node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	a.socket, a.log = filepath.Join(dir, "agent.sock"), filepath.Join(dir, "agent.log")
	// This site's server first, then the others.
	zk := []string{d.ens.Addr(i + 1)}
	for j := range d.o.sites {
		if j != i {
			zk = append(zk, d.ens.Addr(j+1))
		}
	}
	logf, err := os.Create(a.log)
	if err != nil {
		return nil, err
	}
	a.cmd = exec.Command(exe, "agent", "--zk", strings.Join(zk, ","), "--federation", d.o.fed,
		"--vc", "demo", "--node", a.node, "--slots", strconv.Itoa(d.o.slots),
		"--spool", filepath.Join(dir, "spool"), "--socket", a.socket, "--session-timeout", "10s")
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.Env = append(os.Environ(), "LANG=C")
	// Its own process group: Ctrl-C reaches the demo, which stops the
	// agents with SIGTERM; SIGKILL if the demo itself dies.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start agent %s: %w", a.node, err)
	}
	d.agents = append(d.agents, a)
	go func() {
		a.err = a.cmd.Wait()
		logf.Close()
		close(a.done)
	}()
	a.client = agentapi.NewClient(a.socket)
	return a, nil
}

// waitRegistered waits until every agent's node is an execution host.
func (d *localRun) waitRegistered(ctx context.Context) error {
	deadline := time.Now().Add(45 * time.Second)
	for _, a := range d.agents {
		for {
			if a.exited() {
				return fmt.Errorf("agent %s exited: %v (log: %s)", a.node, a.err, a.log)
			}
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			h, err := a.client.Hosts(hctx, false)
			cancel()
			if err == nil && slices.ContainsFunc(h.Hosts, func(x agentapi.Host) bool { return x.Host == a.node }) {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("agent %s did not register its node within 45 s (last: %v; log: %s)", a.node, err, a.log)
			}
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// asUser runs the musubi binary (a Grid Engine command: qsub, qstat, ...)
// as the job user in the work directory, against agent a.
func (d *localRun) asUser(ctx context.Context, a *demoAgent, work string, args ...string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe, args...)
	if a.netns != "" {
		name, argv := d.nodeArgv(a, exe, args)
		cmd = exec.CommandContext(cctx, name, argv...)
	}
	cmd.Dir = work
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + work, "USER=" + d.user.name, "LOGNAME=" + d.user.name,
		"SHELL=/bin/sh", "LANG=C", agentapi.EnvSocket + "=" + a.socket,
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: d.user.cred, Setpgid: true}
	if a.netns != "" {
		// ip netns exec needs root; setpriv then becomes the job user.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %w\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

var (
	submittedRE = regexp.MustCompile(`^Your job(?:-array)? (\d+)[ .]`)
	rankLineRE  = regexp.MustCompile(`^\s*\d+\s+\S+\s+-?\d`)
)

// screening runs the virtual-screening workload across the sites.
func (d *localRun) screening(ctx context.Context) error {
	o := d.o
	var err error
	if d.user, err = lookupJobUser(); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	work, err := d.prepareWork(ctx, filepath.Join(d.state, "work"))
	if err != nil {
		return err
	}

	d.say("starting one node agent per site (virtual cluster \"demo\", %s each)", plural(o.slots, "slot"))
	for i := range o.sites {
		if _, err := d.startAgent(exe, i); err != nil {
			return err
		}
	}
	if err := d.waitRegistered(ctx); err != nil {
		return err
	}
	return d.submitAndWatch(ctx, d.agents[len(d.agents)-1], work)
}

// prepareWork makes the work directory (writable by the job user) with
// the receptor and the ligands.
func (d *localRun) prepareWork(ctx context.Context, work string) (string, error) {
	o := d.o
	if err := os.Mkdir(work, 0o777); err != nil {
		return "", err
	}
	if err := os.Chmod(work, 0o777); err != nil {
		return "", err
	}
	prep := exec.CommandContext(ctx, "sh", filepath.Join(o.example, "prepare.sh"), work, strconv.Itoa(o.ligands))
	if out, err := prep.CombinedOutput(); err != nil {
		return "", fmt.Errorf("prepare.sh: %w\n%s", err, out)
	}
	if d.user.cred != nil {
		if err := chownTree(work, d.user.uid, d.user.gid); err != nil {
			return "", err
		}
	}
	d.say("prepared the screening in %s: receptor (Abl kinase, from autodock-vina's test data), %d ligands, exhaustiveness %d",
		work, o.ligands, o.exhaustiveness)
	return work, nil
}

// submitAndWatch submits the screening with qsub at submitAt's node,
// follows it, and prints the results.
func (d *localRun) submitAndWatch(ctx context.Context, submitAt *demoAgent, work string) error {
	o := d.o
	out, err := d.asUser(ctx, submitAt, work, "qhost")
	if err != nil {
		return err
	}
	fmt.Fprintf(d.env.stdout, "\n$ qhost   # on %s, as %s\n%s\n", submitAt.node, d.user.name, out)

	prompt := func(args ...string) {
		fmt.Fprintf(d.env.stdout, "$ %s\n", strings.Join(args, " "))
	}
	dockArgs := []string{"qsub", "-t", fmt.Sprintf("1-%d", o.ligands), "-v", fmt.Sprintf("EXHAUSTIVENESS=%d", o.exhaustiveness), "dock.sh"}
	fmt.Fprintf(d.env.stdout, "# on %s, as %s, in the work directory\n", submitAt.node, d.user.name)
	prompt(dockArgs...)
	out, err = d.asUser(ctx, submitAt, work, dockArgs...)
	if err != nil {
		return err
	}
	fmt.Fprint(d.env.stdout, out)
	dockID, err := jobID(out)
	if err != nil {
		return err
	}
	prompt("qsub", "rank.sh")
	out, err = d.asUser(ctx, submitAt, work, "qsub", "rank.sh")
	if err != nil {
		return err
	}
	fmt.Fprint(d.env.stdout, out)
	rankID, err := jobID(out)
	if err != nil {
		return err
	}
	fmt.Fprintln(d.env.stdout)

	submitted := time.Now()
	if err := d.progress(ctx, submitAt, work, dockID, rankID); err != nil {
		return err
	}
	elapsed := time.Since(submitted)
	return d.results(ctx, submitAt, work, dockID, rankID, elapsed)
}

func jobID(qsubOut string) (int64, error) {
	m := submittedRE.FindStringSubmatch(qsubOut)
	if m == nil {
		return 0, fmt.Errorf("qsub printed %q, not Grid Engine's submission message", qsubOut)
	}
	return strconv.ParseInt(m[1], 10, 64)
}

// chownTree gives the tree under root to uid:gid.
func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// progress polls the submitting node's agent every second and prints the
// tasks done and running per site whenever they change, kills the
// ensemble's leader once a third of the tasks are done, and returns when
// both jobs have left the queue.
func (d *localRun) progress(ctx context.Context, a *demoAgent, work string, dockID, rankID int64) error {
	o := d.o
	start := time.Now()
	deadline := start.Add(o.timeout)
	var (
		last       string // the done counts last shown
		lastErr    error
		errSince   time.Time
		killed     bool
		rejoining  int
		shownQstat bool
	)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
		for _, ag := range d.agents {
			if ag.exited() {
				return fmt.Errorf("agent %s exited while the jobs ran: %v (log: %s)", ag.node, ag.err, ag.log)
			}
		}
		if time.Now().After(deadline) {
			out, _ := d.asUser(ctx, a, work, "qstat", "-u", "*")
			return fmt.Errorf("the jobs did not finish within %s (--timeout):\n%s", o.timeout, out)
		}
		if rejoining != 0 {
			if mode, _ := d.ens.Mode(ctx, rejoining); mode != "" {
				d.say("server %d is back and serving as %s", rejoining, mode)
				rejoining = 0
			}
		}
		done, running, active, err := d.poll(ctx, a, dockID, rankID)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The agent's store may be between servers (leader loss).
			if lastErr == nil {
				errSince = time.Now()
			}
			lastErr = err
			if time.Since(errSince) > time.Minute {
				return fmt.Errorf("the agent of %s has not answered for a minute: %w", a.node, err)
			}
			continue
		}
		lastErr = nil
		// A line whenever a task finishes; the running tasks beside.
		total := sum(done)
		var b strings.Builder
		fmt.Fprintf(&b, "docked %*d/%d", len(strconv.Itoa(o.ligands)), total, o.ligands)
		key := fmt.Sprint(done)
		for _, ag := range d.agents {
			fmt.Fprintf(&b, " | %s: %2d", ag.site, done[ag.site])
			if r := running[ag.site]; r > 0 {
				fmt.Fprintf(&b, " (+%d running)", r)
			} else {
				b.WriteString("            ")
			}
		}
		if key != last {
			fmt.Fprintf(d.env.stdout, "  [%4ds] %s\n", int(time.Since(start).Seconds()), strings.TrimRight(b.String(), " "))
			last = key
		}
		if !shownQstat && sum(running) >= min(o.ligands, o.slots*o.sites) {
			shownQstat = true
			if out, err := d.asUser(ctx, a, work, "qstat"); err == nil {
				fmt.Fprintf(d.env.stdout, "\n$ qstat   # on %s: dock tasks running, rank waiting for dock (hqw)\n%s\n", a.node, out)
			}
		}
		if !active {
			break
		}
		if o.killLeader && o.sites >= 3 && !killed && total >= max(1, o.ligands/3) && total < o.ligands {
			killed = true
			leader, err := d.killLeader(ctx)
			if err != nil {
				return err
			}
			if err := d.ens.Start(leader); err != nil {
				return err
			}
			d.say("restarted server %d; the jobs go on meanwhile", leader)
			rejoining = leader
		}
	}
	if rejoining != 0 {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := d.ens.WaitServing(wctx, rejoining); err != nil {
			return err
		}
		mode, _ := d.ens.Mode(ctx, rejoining)
		d.say("server %d is back and serving as %s", rejoining, mode)
	}
	return nil
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// poll returns the dock tasks finished and running per site, and whether
// the dock or rank job is still in the queue.
func (d *localRun) poll(ctx context.Context, a *demoAgent, dockID, rankID int64) (done, running map[string]int, active bool, err error) {
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	jobs, err := a.client.Jobs(pctx, nil)
	if err != nil {
		return nil, nil, false, err
	}
	siteOf := d.siteOf()
	running = map[string]int{}
	for _, j := range jobs.Jobs {
		if j.ID != dockID && j.ID != rankID {
			continue
		}
		active = true
		if j.ID != dockID {
			continue
		}
		for _, r := range j.Running {
			running[siteOf(r.Host)] += max(len(r.Tasks), 1)
		}
	}
	acct, err := a.client.Accounting(pctx, strconv.FormatInt(dockID, 10))
	if err != nil && !errors.Is(err, agentapi.ErrNotFound) {
		return nil, nil, false, err
	}
	done = map[string]int{}
	for _, r := range finalRecords(acct) {
		done[siteOf(r.Host)]++
	}
	return done, running, active, nil
}

// siteOf maps a node name to its site.
func (d *localRun) siteOf() func(string) string {
	m := map[string]string{}
	for _, a := range d.agents {
		m[a.node] = a.site
	}
	return func(host string) string {
		if s, ok := m[host]; ok {
			return s
		}
		return host
	}
}

// finalRecords are the accounting records of runs that ended a task (done,
// failed or deleted), one per task; reruns' records are left out.
func finalRecords(jobs []agentapi.AccountedJob) []jobqueue.Accounting {
	var out []jobqueue.Accounting
	for _, j := range jobs {
		for _, r := range j.Records {
			if r.State.Final() {
				out = append(out, r)
			}
		}
	}
	return out
}

// results prints the ranking the summary job wrote, the accounting per
// site and whether every task ran exactly once, and fails when a job did.
func (d *localRun) results(ctx context.Context, a *demoAgent, work string, dockID, rankID int64, elapsed time.Duration) error {
	o := d.o
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dock, err := a.client.Accounting(actx, strconv.FormatInt(dockID, 10))
	if err != nil {
		return fmt.Errorf("accounting of job %d: %w", dockID, err)
	}
	rank, err := a.client.Accounting(actx, strconv.FormatInt(rankID, 10))
	if err != nil {
		return fmt.Errorf("accounting of job %d: %w", rankID, err)
	}
	rankOut, rerr := os.ReadFile(filepath.Join(work, fmt.Sprintf("rank.o%d", rankID)))
	fmt.Fprintf(d.env.stdout, "\n$ cat rank.o%d   # the summary job's output (-hold_jid dock)\n%s\n", rankID, rankOut)
	if rerr != nil {
		return fmt.Errorf("the summary job's output: %w", rerr)
	}

	// Failures first: a task that did not end with exit 0, a summary job
	// that did not.
	var failed []string
	perTask := map[int]int{}
	for _, j := range dock {
		for _, r := range j.Records {
			perTask[r.Task]++
			if r.State.Final() && (r.State != jobqueue.StateDone || r.ExitStatus != 0 || r.Failed != 0) {
				failed = append(failed, fmt.Sprintf("task %d on %s: %s, exit %d; dock.o%d.%d ends: %s",
					r.Task, r.Host, r.State, r.ExitStatus, dockID, r.Task, lastLine(filepath.Join(work, fmt.Sprintf("dock.o%d.%d", dockID, r.Task)))))
			}
		}
	}
	final := finalRecords(dock)
	if len(final) != o.ligands {
		failed = append(failed, fmt.Sprintf("%d of %d dock tasks finished", len(final), o.ligands))
	}
	rf := finalRecords(rank)
	if len(rf) != 1 || rf[0].ExitStatus != 0 || rf[0].State != jobqueue.StateDone {
		failed = append(failed, fmt.Sprintf("the summary job %d did not finish with exit 0", rankID))
	}
	ranked := 0
	for _, l := range strings.Split(string(rankOut), "\n") {
		if rankLineRE.MatchString(l) {
			ranked++
		}
	}
	if want := min(o.ligands, 10); ranked != want {
		failed = append(failed, fmt.Sprintf("the summary lists %d ligands, want %d", ranked, want))
	}

	// qacct-style totals per site.
	type tot struct {
		tasks      int
		wall, u, s time.Duration
		node, site string
	}
	bySite := map[string]*tot{}
	all := &tot{}
	siteOf := d.siteOf()
	for _, r := range final {
		s := siteOf(r.Host)
		t := bySite[s]
		if t == nil {
			t = &tot{node: r.Host, site: s}
			bySite[s] = t
		}
		for _, x := range []*tot{t, all} {
			x.tasks++
			x.wall += r.WallClock
			x.u += r.UserCPU
			x.s += r.SystemCPU
		}
	}
	secs := func(v time.Duration) string { return strconv.FormatFloat(v.Seconds(), 'f', 3, 64) }
	fmt.Fprintf(d.env.stdout, "$ qacct -j %d   # summed per site (musubi's qacct prints the %d records; totals are computed here)\n", dockID, len(final))
	fmt.Fprintf(d.env.stdout, "%-8s %-10s %5s %12s %12s %12s %12s\n", "SITE", "HOST", "TASKS", "WALLCLOCK", "UTIME", "STIME", "CPU")
	fmt.Fprintln(d.env.stdout, strings.Repeat("=", 77))
	sites := make([]string, 0, len(bySite))
	for s := range bySite {
		sites = append(sites, s)
	}
	sort.Strings(sites)
	for _, s := range sites {
		t := bySite[s]
		fmt.Fprintf(d.env.stdout, "%-8s %-10s %5d %12s %12s %12s %12s\n", s, t.node, t.tasks, secs(t.wall), secs(t.u), secs(t.s), secs(t.u+t.s))
	}
	fmt.Fprintf(d.env.stdout, "%-8s %-10s %5d %12s %12s %12s %12s\n", "total", "", all.tasks, secs(all.wall), secs(all.u), secs(all.s), secs(all.u+all.s))
	fmt.Fprintf(d.env.stdout, "submit to ranking: %s; %s CPU of docking on %s (this machine has %s)\n\n",
		elapsed.Round(100*time.Millisecond), (all.u + all.s).Round(100*time.Millisecond), plural(len(bySite), "site"), plural(runtime.NumCPU(), "core"))

	// One task's record as qacct prints it, trimmed to the main fields.
	if out, err := d.asUser(ctx, a, work, "qacct", "-j", strconv.FormatInt(dockID, 10), "-t", "1"); err == nil {
		keep := map[string]bool{"hostname": true, "owner": true, "jobname": true, "jobnumber": true, "taskid": true,
			"start_time": true, "end_time": true, "failed": true, "exit_status": true, "ru_wallclock": true, "cpu": true}
		fmt.Fprintf(d.env.stdout, "$ qacct -j %d -t 1   # (main fields)\n", dockID)
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 && keep[f[0]] {
				fmt.Fprintln(d.env.stdout, sc.Text())
			}
		}
		fmt.Fprintln(d.env.stdout)
	}

	runs := 0
	var again []string
	for task, c := range perTask {
		runs += c
		if c > 1 {
			again = append(again, fmt.Sprintf("task %d ran %d times", task, c))
		}
	}
	sort.Strings(again)
	if len(again) == 0 {
		d.say("each of the %d dock tasks ran exactly once (%d accounting records), across %s", len(final), runs, plural(len(bySite), "site"))
	} else {
		d.say("%d dock tasks, %d runs: %s (a run is given back when its node's session is lost)", len(final), runs, strings.Join(again, ", "))
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w:\n  %s", errJobsFailed, strings.Join(failed, "\n  "))
	}
	return d.show(ctx, "$ musubi status")
}

// errJobsFailed: a job of the screening did not end well (the agents did).
var errJobsFailed = errors.New("the screening failed")

// lastLine returns the last non-empty line of a file, or why there is none.
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	text := strings.TrimRight(string(b), "\n")
	if text == "" {
		return "(no output)"
	}
	return strconv.Quote(text[strings.LastIndexByte(text, '\n')+1:])
}

// dumpLogs prints the tail of each agent's log after a failure.
func (d *localRun) dumpLogs() {
	for _, a := range d.agents {
		b, err := os.ReadFile(a.log)
		if err != nil || len(b) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(d.env.stderr, "--- last lines of %s's agent log:\n%s\n", a.node, strings.Join(lines, "\n"))
	}
}

// agentStopGrace is how long an agent has to stop after SIGTERM.
const agentStopGrace = 30 * time.Second

// teardown stops the agents (SIGTERM, then SIGKILL), closes the peer
// sessions, stops the ensemble and removes the state directory.
func (d *localRun) teardown() error {
	var errs []error
	switch {
	case d.fedDir != "":
		d.say("tearing down")
	case len(d.agents) > 0:
		d.say("tearing down: stopping the %s", plural(len(d.agents), "agent"))
	default:
		d.say("tearing down")
	}
	for _, a := range d.agents {
		if a.cmd != nil && !a.exited() {
			_ = a.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, a := range d.agents {
		if a.cmd == nil {
			a.client.Close() // a provisioned node's agent: its peer stops it
			continue
		}
		t := time.NewTimer(agentStopGrace)
		killed := false
		select {
		case <-a.done:
		case <-t.C:
			killed = true
			_ = a.cmd.Process.Kill()
			<-a.done
			errs = append(errs, fmt.Errorf("agent %s did not stop within %s of SIGTERM; killed", a.node, agentStopGrace))
		}
		t.Stop()
		a.client.Close()
		if a.err != nil && !killed {
			errs = append(errs, fmt.Errorf("agent %s: %w (log: %s)", a.node, a.err, a.log))
		}
	}
	if d.ens != nil {
		d.say("closing the peer sessions and stopping ZooKeeper")
	}
	for _, s := range d.stores {
		if s != nil {
			s.Close()
		}
	}
	if d.ens != nil {
		if err := d.ens.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.fedDir != "" {
		// Not the demo's context: it may be cancelled (Ctrl-C), and the
		// federation must go all the same.
		dctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		if err := d.fedDown(dctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if d.o.keep {
		d.say("kept %s (job outputs in work/, agent logs in nodes/)", d.state)
	} else if err := os.RemoveAll(d.state); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(append([]error{errTeardown}, errs...)...)
	}
	d.say("done: nothing left running (%s in all)", time.Since(d.t0).Round(time.Millisecond))
	return nil
}

// errTeardown marks an error of the demo's teardown: something it started
// may be left behind.
var errTeardown = errors.New("teardown incomplete")
