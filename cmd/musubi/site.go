package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	sitebootstrap "github.com/musubi-fabric/musubi/site-bootstrap"
)

func init() {
	register(&command{name: "site", short: "bootstrap this site: init a federation, join or leave one, show status", run: runSite})
}

const siteUsage = `Usage: musubi site <subcommand> [flags]

Subcommands:
  init     start a new federation with this site as its first (a one-server
           ZooKeeper ensemble that grows as sites join), or check and repair
           this site: every step is re-runnable and a second run changes nothing
  join     join this site to a running federation: start its ZooKeeper server
           and add it to the ensemble (a voter up to 7 sites, an observer
           beyond), start Open vSwitch and tgtd, register the site
  leave    take this site out of the federation: deregister it, remove its
           server from the ensemble (the others keep working), stop its daemons
  status   show this site's steps, the ensemble's members and the sites
  stop     stop this site's daemons without leaving (re-run init/join to start)
  list     list the federation's sites through a peer's API

Run 'musubi site <subcommand> --help' for its flags.
`

func runSite(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.stdout, siteUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	switch args[0] {
	case "init":
		return runSiteInit(ctx, env, args[1:])
	case "join":
		return runSiteJoin(ctx, env, args[1:])
	case "leave":
		return runSiteLeave(ctx, env, args[1:])
	case "status":
		return runSiteStatus(ctx, env, args[1:])
	case "stop":
		return runSiteStop(ctx, env, args[1:])
	}
	fmt.Fprintf(env.stderr, "musubi site: unknown subcommand %q (try 'musubi site --help')\n", args[0])
	return exitUsage
}

// siteFlags are the flags every site subcommand has.
type siteFlags struct {
	stateDir string
	logLevel string
	wait     time.Duration
}

func addSiteFlags(fs *flag.FlagSet, env *cliEnv) *siteFlags {
	f := &siteFlags{}
	def := sitebootstrap.DefaultStateDir
	if v := env.getenv("MUSUBI_STATE_DIR"); v != "" {
		def = v
	}
	fs.StringVar(&f.stateDir, "state-dir", def, "the site's state directory (env MUSUBI_STATE_DIR)")
	fs.StringVar(&f.logLevel, "log-level", "warn", "log level of details on stderr: debug, info, warn, error")
	fs.DurationVar(&f.wait, "wait-timeout", sitebootstrap.DefaultWaitTimeout, "how long to wait for a server to serve or a session to open")
	return f
}

func (f *siteFlags) config(env *cliEnv) (sitebootstrap.Config, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return sitebootstrap.Config{}, fmt.Errorf("--log-level %q: use debug, info, warn or error", f.logLevel)
	}
	logger := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: lvl}))
	zlog := logger.With("subsystem", "zkstore")
	return sitebootstrap.Config{
		StateDir:    f.stateDir,
		WaitTimeout: f.wait,
		Out:         env.stdout,
		Logger:      logger,
		Dial: func(ctx context.Context, servers []string, root string, creds []coord.Credential) (sitebootstrap.Session, error) {
			return zkstore.Open(ctx, zkstore.Config{Servers: servers, Root: root, Credentials: creds, Logger: zlog, SessionTimeout: 10 * time.Second})
		},
	}, nil
}

// bootFlags are the flags of init and join.
type bootFlags struct {
	*siteFlags
	site, addr, federation, datapath, skip string
	zkPort, quorumPort, electionPort       int
	iscsiPort, tgtControl                  int
	tick                                   time.Duration
	noFsync, install, systemd              bool
	tokenFile                              string
}

func addBootFlags(fs *flag.FlagSet, env *cliEnv) *bootFlags {
	b := &bootFlags{siteFlags: addSiteFlags(fs, env)}
	fs.StringVar(&b.site, "site", "", "this site's name (required)")
	fs.StringVar(&b.addr, "addr", "", "this site's IP address: ZooKeeper and tgtd bind there; the site's gateway (required)")
	fs.IntVar(&b.zkPort, "zk-port", sitebootstrap.DefaultClientPort, "ZooKeeper client port")
	fs.IntVar(&b.quorumPort, "zk-quorum-port", sitebootstrap.DefaultQuorumPort, "ZooKeeper quorum port")
	fs.IntVar(&b.electionPort, "zk-election-port", sitebootstrap.DefaultElectionPort, "ZooKeeper leader election port")
	fs.DurationVar(&b.tick, "zk-tick", 2*time.Second, "ZooKeeper tick time (session timeouts are 2-20 ticks)")
	fs.BoolVar(&b.noFsync, "zk-no-fsync", false, "do not fsync ZooKeeper's log before acknowledging (tests only)")
	fs.IntVar(&b.iscsiPort, "iscsi-port", sitebootstrap.DefaultISCSIPort, "tgtd's iSCSI portal port")
	fs.IntVar(&b.tgtControl, "tgt-control-port", 0, "tgtd's management socket number (tgtd -C)")
	fs.StringVar(&b.datapath, "ovs-datapath", sitebootstrap.DatapathAuto, "Open vSwitch datapath: auto (kernel module if present, else userspace), system or netdev")
	fs.StringVar(&b.skip, "skip", "", "daemons not to manage, comma-separated: ovs, tgt")
	fs.BoolVar(&b.install, "install-packages", false, "install missing Debian packages with apt-get")
	fs.BoolVar(&b.systemd, "systemd", false, "also write a systemd unit for the ZooKeeper server under <state-dir>/systemd")
	return b
}

func (b *bootFlags) config(env *cliEnv) (sitebootstrap.Config, error) {
	cfg, err := b.siteFlags.config(env)
	if err != nil {
		return cfg, err
	}
	cfg.Site, cfg.Addr, cfg.Federation, cfg.Datapath = b.site, b.addr, b.federation, b.datapath
	cfg.ClientPort, cfg.QuorumPort, cfg.ElectionPort = b.zkPort, b.quorumPort, b.electionPort
	cfg.ISCSIPort, cfg.TgtControlPort = b.iscsiPort, b.tgtControl
	cfg.TickTime, cfg.NoForceSync, cfg.InstallPackages, cfg.Systemd = b.tick, b.noFsync, b.install, b.systemd
	for _, d := range strings.Split(b.skip, ",") {
		switch d = strings.TrimSpace(d); d {
		case "":
		case "ovs", "tgt":
			cfg.SkipDaemons = append(cfg.SkipDaemons, d)
		default:
			return cfg, fmt.Errorf("--skip %q: only ovs and tgt can be skipped", d)
		}
	}
	return cfg, nil
}

const siteInitSynopsis = `site init --site NAME --addr IP [flags]

Starts a new federation with this site as its first member: installs the
federation token (a new one, or --token-file's) in the state directory,
starts a one-server ZooKeeper ensemble that can grow (standaloneEnabled=false,
reconfigEnabled=true), creates the federation's root (readable only with the
token's credential) and schema, starts Open vSwitch and tgtd, registers the
site and writes the peer's configuration. Every step checks before it acts:
re-running init repairs what is missing and changes nothing else.

Flags:`

func runSiteInit(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "site init", siteInitSynopsis)
	b := addBootFlags(fs, env)
	fs.StringVar(&b.federation, "federation", sitebootstrap.DefaultFederation, "federation name (its data lives under /musubi/<name>)")
	fs.StringVar(&b.tokenFile, "token-file", "", "use this federation token instead of creating one")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "musubi site init: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg, err := b.config(env)
	if err != nil {
		fmt.Fprintf(env.stderr, "musubi site init: %v\n", err)
		return exitUsage
	}
	t0 := time.Now()
	res, err := sitebootstrap.Init(ctx, cfg, b.tokenFile)
	if err != nil {
		return siteFail(env, "site init", err)
	}
	fmt.Fprintf(env.stdout, "site %q ready in %s: %s\n", cfg.Site, time.Since(t0).Round(time.Millisecond), res.Summary())
	fmt.Fprintf(env.stdout, "\nTo join another site, copy %s to it (keep it secret: mode 0600) and run there:\n  musubi site join --site NAME --addr IP --seed %s --token-file FILE\n",
		cfg.TokenPath(), seedOf(cfg))
	return exitOK
}

func seedOf(cfg sitebootstrap.Config) string {
	if st, err := sitebootstrap.ReadState(cfg.StateDir); err == nil {
		return st.ClientAddr()
	}
	return cfg.Addr + ":" + fmt.Sprint(cfg.ClientPort)
}

const siteJoinSynopsis = `site join --site NAME --addr IP --seed HOST:PORT --token-file FILE [flags]

Joins this site to the federation whose ZooKeeper server --seed names. The
token (the first site's federation.token) authenticates the site: the
federation's root admits only its credential, and the ensemble's super
identity, which reconfiguration needs, is derived from it. Join starts this
site's ZooKeeper server with the ensemble's membership plus itself and adds
it by dynamic reconfiguration (a voter while the ensemble has fewer than 7,
an observer beyond), then starts Open vSwitch and tgtd, registers the site
under sites/ and writes the peer's configuration. Re-runnable.

Flags:`

func runSiteJoin(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "site join", siteJoinSynopsis)
	b := addBootFlags(fs, env)
	seed := fs.String("seed", "", "ZooKeeper client address(es) of the running federation, comma-separated (required)")
	fs.StringVar(&b.tokenFile, "token-file", "", "the federation's token file (required)")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "musubi site join: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg, err := b.config(env)
	if err != nil {
		fmt.Fprintf(env.stderr, "musubi site join: %v\n", err)
		return exitUsage
	}
	var seeds []string
	for _, s := range strings.Split(*seed, ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	if tok, err := sitebootstrap.ReadTokenFile(b.tokenFile); err == nil {
		cfg.Federation = tok.Federation
	}
	t0 := time.Now()
	res, err := sitebootstrap.Join(ctx, cfg, seeds, b.tokenFile)
	if err != nil {
		return siteFail(env, "site join", err)
	}
	fmt.Fprintf(env.stdout, "site %q joined in %s: %s\n", cfg.Site, time.Since(t0).Round(time.Millisecond), res.Summary())
	return exitOK
}

const siteLeaveSynopsis = `site leave [--state-dir DIR]

Takes this site out of its federation: deletes its records (sites/, live/,
links/), removes its ZooKeeper server from the ensemble by reconfiguration
through the other servers (they keep serving), stops its ZooKeeper, Open
vSwitch and tgtd, and clears its local state (the token file stays). The
last voting site cannot leave. Re-runnable.

Flags:`

func runSiteLeave(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "site leave", siteLeaveSynopsis)
	f := addSiteFlags(fs, env)
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	cfg, err := f.config(env)
	if err != nil {
		fmt.Fprintf(env.stderr, "musubi site leave: %v\n", err)
		return exitUsage
	}
	t0 := time.Now()
	res, err := sitebootstrap.Leave(ctx, cfg)
	if err != nil {
		return siteFail(env, "site leave", err)
	}
	fmt.Fprintf(env.stdout, "left in %s: %s\n", time.Since(t0).Round(time.Millisecond), res.Summary())
	return exitOK
}

const siteStopSynopsis = `site stop [--state-dir DIR]

Stops this site's ZooKeeper server, Open vSwitch and tgtd (by their pid
files) and changes nothing else: the site stays a member of the ensemble.
Re-run 'musubi site init' or 'musubi site join' to start them again.

Flags:`

func runSiteStop(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "site stop", siteStopSynopsis)
	f := addSiteFlags(fs, env)
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	cfg, err := f.config(env)
	if err != nil {
		fmt.Fprintf(env.stderr, "musubi site stop: %v\n", err)
		return exitUsage
	}
	if _, err := sitebootstrap.Stop(ctx, cfg); err != nil {
		return siteFail(env, "site stop", err)
	}
	return exitOK
}

const siteStatusSynopsis = `site status [--state-dir DIR] [--output table|json]

Shows this site's bootstrap steps as checked now (nothing is changed), its
ZooKeeper server's role, the ensemble's members and the federation's sites.
Exits 1 when a step is not done.

Flags:`

func runSiteStatus(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "site status", siteStatusSynopsis)
	f := addSiteFlags(fs, env)
	output := fs.String("output", "table", "output format: table or json")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintf(env.stderr, "musubi site status: --output %q: use table or json\n", *output)
		return exitUsage
	}
	cfg, err := f.config(env)
	if err != nil {
		fmt.Fprintf(env.stderr, "musubi site status: %v\n", err)
		return exitUsage
	}
	st, err := sitebootstrap.ReadStatus(ctx, cfg)
	if err != nil {
		return siteFail(env, "site status", err)
	}
	code := exitOK
	for _, s := range st.Steps {
		if !s.Done {
			code = exitFailure
		}
	}
	if *output == "json" {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return exitFailure
		}
		return code
	}
	w := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "site %s of federation %s: server %d (%s), ZooKeeper %s\n\n", st.State.Site, st.State.Federation, st.State.ServerID, st.State.Role, orNone(st.Mode))
	fmt.Fprintln(w, "STEP\tSTATE\tDETAIL")
	for _, s := range st.Steps {
		state, detail := "ok", s.Detail
		if !s.Done {
			state = "TODO"
		}
		if s.Error != "" {
			state, detail = "ERROR", s.Error
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", s.Name, state, detail)
	}
	fmt.Fprintln(w, "\nSERVER\tROLE\tCLIENT ADDRESS")
	for _, m := range st.Members {
		fmt.Fprintf(w, "%d\t%s\t%s\n", m.ID, m.Role, m.ClientAddr())
	}
	fmt.Fprintln(w, "\nSITE\tZK SERVER\tGATEWAY\tLIVE")
	for _, s := range st.Sites {
		fmt.Fprintf(w, "%s\t%s\t%s\t%v\n", s.Name, s.ZKServer, s.Gateway, s.Live)
	}
	for _, e := range st.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	if err := w.Flush(); err != nil {
		return exitFailure
	}
	return code
}

func orNone(s string) string {
	if s == "" {
		return "not serving"
	}
	return s
}

// siteFail prints a bootstrap error with what to do next.
func siteFail(env *cliEnv, cmd string, err error) int {
	var hint string
	switch {
	case errors.Is(err, sitebootstrap.ErrMissingPackages):
		hint = "Install the packages named above, or re-run with --install-packages (needs root and apt)."
	case errors.Is(err, sitebootstrap.ErrTokenRejected):
		hint = "Use the federation.token of the federation's first site (its state directory), copied unchanged."
	case errors.Is(err, sitebootstrap.ErrToken):
		hint = "The token file must be the first site's federation.token, mode 0600."
	case errors.Is(err, sitebootstrap.ErrNotBootstrapped):
		hint = "Run 'musubi site init' or 'musubi site join' first, or pass the right --state-dir."
	case errors.Is(err, sitebootstrap.ErrOtherSite):
		hint = "Each site needs its own --state-dir."
	case errors.Is(err, sitebootstrap.ErrLastSite):
		hint = "Another site must join first, or stop this one with 'musubi site stop'."
	case errors.Is(err, sitebootstrap.ErrDaemon):
		hint = "See the daemon's log named above; fix the cause and re-run: finished steps are kept."
	case errors.Is(err, coord.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		hint = "Check that the ZooKeeper servers named above are running and reachable, then re-run."
	default:
		hint = "Fix the cause and re-run: every step is re-runnable."
	}
	return fail(env, cmd, err, hint)
}
