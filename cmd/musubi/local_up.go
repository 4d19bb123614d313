package main

// This file holds `musubi local up|status|exec|down`: the command line of
// node/localfed, a federation of namespaced sites on this machine.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/musubi-fabric/musubi/node/localfed"
	sitebootstrap "github.com/musubi-fabric/musubi/site-bootstrap"
)

// envLocalDir names the federation's directory (like --dir).
const envLocalDir = "MUSUBI_LOCAL_DIR"

func addDirFlag(fs *flag.FlagSet, env *cliEnv) *string {
	def := localfed.DefaultDir
	if v := env.getenv(envLocalDir); v != "" {
		def = v
	}
	return fs.String("dir", def, "the local federation's directory (env "+envLocalDir+")")
}

const localUpSynopsis = `local up [--sites 3] [--wan-delay 20ms] [--dir DIR] [--backend netns|qemu]

Builds a federation of --sites sites on this machine, each in its own
network namespace (mlocal-s1, mlocal-s2, ...) behind a transit namespace
(mlocal-wan) that routes between their WAN links (10.200.<i>.2/24), with a
--wan-delay on each link where the kernel has tc netem. In each site it
runs the real bootstrap ('musubi site init' for the first, 'musubi site
join' for the others: ZooKeeper, Open vSwitch, tgtd), then starts 'musubi
peer --config DIR/s<i>/musubi.json' in the background and waits for it to
be ready. It prints each site's API and web UI address and the admin
token. The host reaches the sites through the veth mlocal-h and a route to
10.200.0.0/16.

Everything it makes is recorded in DIR/local.json before it is made. On
failure or Ctrl-C it takes down what it made (unless --keep). Needs root.

Flags:`

func runLocalUp(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "local up", localUpSynopsis)
	o := localfed.Options{Out: env.stdout}
	dir := addDirFlag(fs, env)
	fs.IntVar(&o.Sites, "sites", localfed.DefaultSites, fmt.Sprintf("number of sites (1-%d; one ZooKeeper voter each)", localfed.MaxSites))
	fs.DurationVar(&o.WANDelay, "wan-delay", localfed.DefaultWANDelay, "one-way delay of each site's WAN link (0: none); needs tc netem")
	fs.StringVar(&o.Backend, "backend", localfed.DefaultBackend, "virtual node backend of the sites' provisioners: netns or qemu")
	fs.StringVar(&o.Federation, "federation", localfed.DefaultFederation, "federation name (its data lives under /musubi/<name>)")
	fs.IntVar(&o.APIPort, "api-port", localfed.DefaultAPIPort, "the peers' API and web UI port on their site address")
	fs.DurationVar(&o.ReadyTimeout, "ready-timeout", 3*time.Minute, "how long to wait for the peers to be ready")
	fs.BoolVar(&o.Keep, "keep", false, "on failure, keep what was made (for a look at the logs; 'local down' removes it)")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		return usageFail(env, "local up", "unexpected argument %q", fs.Arg(0))
	}
	o.Dir = *dir
	if o.Sites < 1 { // 0 would mean the default to localfed
		return usageFail(env, "local up", "--sites %d: use 1 to %d", o.Sites, localfed.MaxSites)
	}
	if _, _, err := localfed.Plan(o); err != nil {
		return usageFail(env, "local up", "%v", strings.TrimPrefix(err.Error(), localfed.ErrInvalid.Error()+": "))
	}
	res, err := localfed.Up(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(env.stderr, "musubi local up: interrupted: %v\n", err)
			return exitInterupt
		}
		return fail(env, "local up", err, localHint(err, o.Dir))
	}
	st := res.State
	fmt.Fprintf(env.stdout, "\nLocal federation %q is up: %s in %s (record: %s)\n\n", st.Federation, plural(len(st.Sites), "site"),
		res.Took.Round(100*time.Millisecond), localfed.StatePath(st.Dir))
	w := table(env.stdout)
	fmt.Fprintln(w, "SITE\tNAMESPACE\tADDRESS\tAPI AND WEB UI\tAPI SOCKET")
	for _, s := range st.Sites {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s/\t%s\n", s.Name, s.Netns, s.IP(), s.API, s.Socket)
	}
	if err := w.Flush(); err != nil {
		return exitFailure
	}
	fmt.Fprintf(env.stdout, "\nAdmin API token (the same at every site; also in %s):\n  %s\n\n", st.TokenFile, res.Token)
	if !st.DelayApplied && st.DelayNote != "" {
		fmt.Fprintf(env.stdout, "WAN delay: not available here (%s); the links have none.\n", st.DelayNote)
	}
	first := st.Sites[0]
	fmt.Fprintf(env.stdout, `This host reaches the sites through %s (route %s). Open %s/ in a browser
on this machine and sign in with the token. Next:
  musubi local status
  musubi local exec %s -- musubi status
  musubi local down
`, st.HostLink, st.HostRoute, first.API, first.Name)
	return exitOK
}

// localHint says what to do after a failed local command.
func localHint(err error, dir string) string {
	switch {
	case errors.Is(err, localfed.ErrNotAvailable):
		return "Run it as root on a machine with iproute2, ethtool and Open vSwitch ('make deps' installs them)."
	case errors.Is(err, localfed.ErrExists):
		return ""
	case errors.Is(err, localfed.ErrBusy):
		return ""
	case errors.Is(err, localfed.ErrNoFederation):
		return "Bring one up with 'musubi local up', or give its directory with --dir."
	case errors.Is(err, localfed.ErrTeardown):
		return fmt.Sprintf("Fix the cause above and run 'musubi local down --dir %s' again: it removes what is left.", dir)
	case errors.Is(err, sitebootstrap.ErrMissingPackages):
		return "Install the packages named above ('make deps'), then run it again."
	}
	return fmt.Sprintf("Everything it made was taken down (unless --keep). Fix the cause above and run it again; with --keep the logs stay in %s.", dir)
}

const localStatusSynopsis = `local status [--dir DIR] [--output table|json]

Shows the local federation: its sites and their namespaces, each site's
daemons (ZooKeeper, Open vSwitch, tgtd) as 'musubi site status' checks
them, the ZooKeeper ensemble's membership, each peer's process and
readiness, the API addresses and how to reach the web UI. Exits 1 when
something is not as 'local up' left it.

Flags:`

func runLocalStatus(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "local status", localStatusSynopsis)
	dir := addDirFlag(fs, env)
	output := fs.String("output", "table", "output format: table or json")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		return usageFail(env, "local status", "unexpected argument %q", fs.Arg(0))
	}
	if *output != "table" && *output != "json" {
		return usageFail(env, "local status", "--output %q: want table or json", *output)
	}
	st, err := localfed.ReadStatus(ctx, *dir, "")
	if err != nil {
		return fail(env, "local status", err, localHint(err, *dir))
	}
	code := exitOK
	if len(st.Problems) > 0 {
		code = exitFailure
	}
	if *output == "json" {
		if writeJSON(env.stdout, st) != exitOK {
			return exitFailure
		}
		return code
	}
	fmt.Fprintf(env.stdout, "Local federation %q in %s: %s, %s (backend %s, created %s)\n", st.Federation, st.Dir,
		plural(len(st.Sites), "site"), st.Phase, st.Backend, st.Created.Local().Format(time.DateTime))
	delay := "delay " + st.WANDelay
	if !st.DelayApplied {
		delay += " not applied"
		if st.DelayNote != "" {
			delay += " (" + st.DelayNote + ")"
		}
	}
	fmt.Fprintf(env.stdout, "WAN: transit %s (%s), %s; host route %s via %s (%s)\n\n", st.Transit, exists(st.TransitExists), delay,
		st.HostRoute, st.HostLink, exists(st.HostLinkUp))
	w := table(env.stdout)
	fmt.Fprintln(w, "SITE\tNAMESPACE\tADDRESS\tZOOKEEPER\tOVS\tTGTD\tPEER\tAPI")
	for _, s := range st.Sites {
		peer := "not running"
		switch {
		case s.PeerAlive && s.Ready:
			peer = fmt.Sprintf("ready (pid %d)", s.PeerPID)
		case s.PeerAlive:
			peer = fmt.Sprintf("NOT READY (pid %d)", s.PeerPID)
		}
		ns := s.Netns
		if !s.NetnsExists {
			ns += " (missing)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s/\n", s.Name, ns, s.Addr, orDash(zkState(s)), daemon(s, "open vswitch"), daemon(s, "tgtd"), peer, s.API)
	}
	if err := w.Flush(); err != nil {
		return exitFailure
	}
	if len(st.Members) > 0 {
		fmt.Fprintf(env.stdout, "\nZooKeeper ensemble: %s\n", plural(len(st.Members), "member"))
		w = table(env.stdout)
		fmt.Fprintln(w, "SERVER\tROLE\tCLIENT ADDRESS")
		for _, m := range st.Members {
			fmt.Fprintf(w, "%d\t%s\t%s\n", m.ID, m.Role, m.ClientAddr())
		}
		if err := w.Flush(); err != nil {
			return exitFailure
		}
	}
	if len(st.Sites) > 0 {
		s := st.Sites[0]
		fmt.Fprintf(env.stdout, `
Web UI and API: %s/ (any site's address) from this machine, signed in with
the token in %s. From another machine: ssh -L %s:%s root@THIS-HOST, then
open http://localhost:%s/. In a site: musubi local exec %s -- musubi status
`, s.API, st.TokenFile, portOf(s.API), strings.TrimPrefix(s.API, "http://"), portOf(s.API), s.Name)
	}
	if len(st.Problems) > 0 {
		fmt.Fprintf(env.stdout, "\nProblems:\n  %s\n", strings.Join(st.Problems, "\n  "))
	}
	return code
}

func exists(ok bool) string {
	if ok {
		return "present"
	}
	return "MISSING"
}

func portOf(url string) string {
	if i := strings.LastIndexByte(url, ':'); i >= 0 {
		return url[i+1:]
	}
	return url
}

// zkState is the site's ZooKeeper server's role, or why it has none.
func zkState(s localfed.SiteStatus) string {
	if s.ZKMode != "" {
		return s.ZKMode
	}
	for _, d := range s.Daemons {
		if d.Name == "zookeeper running" && !d.Done {
			return "NOT RUNNING"
		}
	}
	if len(s.Daemons) > 0 {
		return "NOT SERVING"
	}
	return ""
}

// daemon is "ok" or the state of the site bootstrap check named step.
func daemon(s localfed.SiteStatus, step string) string {
	for _, d := range s.Daemons {
		if d.Name == step {
			if d.Done {
				return "ok"
			}
			return "DOWN"
		}
	}
	return "-"
}

const localExecSynopsis = `local exec [--dir DIR] <site> [<node>] -- <command> [args...]

Runs a command inside a site's network namespace with the site's
environment: musubi's API commands reach the site's peer (MUSUBI_API, its
unix socket, and MUSUBI_TOKEN_FILE, the admin token), 'musubi site' its
state directory (MUSUBI_STATE_DIR), 'musubi peer' its configuration
(MUSUBI_CONFIG), ovs-vsctl and ovs-ofctl its Open vSwitch (OVS_RUNDIR), and
the musubi binary is first in PATH. Standard input, output and error pass
through, and the command's exit status is the exit status.

With a node name, the command runs in that virtual node of the site.

Examples:
  musubi local exec s1 -- musubi status
  musubi local exec s3 -- musubi site status
  musubi local exec s2 -- ovs-vsctl show

Flags:`

func runLocalExec(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "local exec", localExecSynopsis)
	dir := addDirFlag(fs, env)
	// Flags come before the site; everything from the site on is the
	// command line.
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	site, node, argv, err := localfed.ExecSpec(fs.Args())
	if err != nil {
		return usageFail(env, "local exec", "%v", strings.TrimPrefix(err.Error(), localfed.ErrInvalid.Error()+": "))
	}
	st, err := localfed.Load(*dir)
	if err != nil {
		return fail(env, "local exec", err, localHint(err, *dir))
	}
	s, err := st.Site(site)
	if err != nil {
		return fail(env, "local exec", err, "Name a site of the federation, e.g. "+st.Sites[0].Name+" ('musubi local status' lists them).")
	}
	if node != "" {
		return execInNode(ctx, env, &st, s, node, argv)
	}
	// ^C reaches the command from the terminal; other signals are passed on.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	code, err := localfed.Exec(ctx, *dir, site, argv, localfed.Stdio{In: env.stdin, Out: env.stdout, Err: env.stderr, Signals: sigs})
	if err != nil {
		return fail(env, "local exec", err, "")
	}
	return code
}

const localDownSynopsis = `local down [--dir DIR]

Takes the local federation down: stops the peers and each site's daemons
(by their recorded PIDs and pid files), stops whatever still runs in its
namespaces, deletes the node namespaces its peers made, the site and
transit namespaces, the host veth and route, and the directory. Safe to
run twice, and after an interrupted or crashed 'local up'.

Flags:`

func runLocalDown(ctx context.Context, env *cliEnv, args []string) int {
	fs := newFlags(env, "local down", localDownSynopsis)
	dir := addDirFlag(fs, env)
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		return usageFail(env, "local down", "unexpected argument %q", fs.Arg(0))
	}
	t0 := time.Now()
	say := func(format string, a ...any) { fmt.Fprintf(env.stdout, format+"\n", a...) }
	fmt.Fprintf(env.stdout, "Taking down the local federation in %s\n", *dir)
	found, err := localfed.Down(context.WithoutCancel(ctx), localfed.DownOptions{Dir: *dir, Out: say})
	if err != nil {
		return fail(env, "local down", err, localHint(err, *dir))
	}
	if !found {
		fmt.Fprintf(env.stdout, "Nothing to do: no local federation is recorded in %s.\n", *dir)
		return exitOK
	}
	fmt.Fprintf(env.stdout, "Done in %s: nothing of it is left.\n", time.Since(t0).Round(100*time.Millisecond))
	return exitOK
}
