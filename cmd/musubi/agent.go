package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/jobqueue/sge"
	"github.com/musubi-fabric/musubi/node/agent"
	"github.com/musubi-fabric/musubi/node/agentapi"
	"github.com/musubi-fabric/musubi/node/vcacl"
)

func init() {
	register(&command{name: "agent", short: "the node daemon: runs jobs and serves qsub/qstat/... (Grid Engine commands)", run: runAgent})
}

const agentSynopsis = `agent --zk HOST:PORT[,HOST:PORT...] [flags]

Runs the agent of this node: it registers the node as an execution host of
its virtual cluster's job queue (qhost), claims and runs the jobs that fit
its free slots and memory as their submitting users, and serves the Grid
Engine commands (qsub, qstat, qdel, qhold, qrls, qalter, qhost, qacct) on a
unix socket. Install the commands with 'musubi install-cli'.

Every flag can also be set in the environment (MUSUBI_ZK, MUSUBI_FEDERATION,
MUSUBI_ROOT, MUSUBI_VC, MUSUBI_NODE, MUSUBI_SLOTS, MUSUBI_MEMORY, MUSUBI_SPOOL,
MUSUBI_AGENT_SOCKET, MUSUBI_SESSION_TIMEOUT, MUSUBI_LOG_LEVEL); a flag given
on the command line wins. On SIGTERM the agent kills the jobs it runs and
gives them back to the queue (they run again; -r n jobs end), then exits.

Flags:`

func runAgent(ctx context.Context, env *cliEnv, args []string) int {
	def := agent.DefaultConfig()
	fs := newFlags(env, "agent", agentSynopsis)
	envOr := func(name, v string) string {
		if e := env.getenv(name); e != "" {
			return e
		}
		return v
	}
	zk := fs.String("zk", envOr("MUSUBI_ZK", ""), "ZooKeeper servers, comma-separated host:port (this site's first)")
	fed := fs.String("federation", envOr("MUSUBI_FEDERATION", def.Federation), "federation name: its data lives under /musubi/<name>")
	root := fs.String("root", envOr("MUSUBI_ROOT", ""), "ZooKeeper chroot to use instead of /musubi/<federation>")
	vc := fs.String("vc", envOr("MUSUBI_VC", def.VC), "virtual cluster whose job queue this node serves")
	nodeName := fs.String("node", envOr("MUSUBI_NODE", def.Node), "node name: executor id and host name of jobs and qhost")
	slots := fs.String("slots", envOr("MUSUBI_SLOTS", strconv.Itoa(def.Slots)), "job slots of this node")
	memory := fs.String("memory", envOr("MUSUBI_MEMORY", ""), "memory offered to jobs (e.g. 4G; default: the host's)")
	spool := fs.String("spool", envOr("MUSUBI_SPOOL", ""), "spool directory for job scripts and TMPDIRs (default /var/spool/musubi/<node>)")
	socket := fs.String("socket", envOr(agentapi.EnvSocket, def.Socket), "unix socket of the Grid Engine commands")
	session := fs.String("session-timeout", envOr("MUSUBI_SESSION_TIMEOUT", def.SessionTimeout.String()), "ZooKeeper session timeout: how soon a dead node's jobs run again")
	level := fs.String("log-level", envOr("MUSUBI_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	secretFile := fs.String("secret-file", envOr("MUSUBI_AGENT_SECRET", ""), "0600 file with this node's ZooKeeper credentials (its VC's and the agents'); none: anonymous session")
	hostsFile := fs.String("hosts-file", envOr("MUSUBI_HOSTS_FILE", "-"), "hosts file whose musubi block the agent keeps in sync (a virtual node: /etc/hosts); - for none")
	accountsRoot := fs.String("accounts-root", envOr("MUSUBI_ACCOUNTS_ROOT", "-"), "root of the user database the agent keeps in sync (a virtual node: /); - for none")
	if stop, code := parseFlags(fs, args); stop {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "musubi agent: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg := def
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(env.stderr, "musubi agent: "+format+"\n", a...)
		return exitUsage
	}
	for _, s := range strings.Split(*zk, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.ZK = append(cfg.ZK, s)
		}
	}
	cfg.Federation, cfg.Root, cfg.VC, cfg.Node, cfg.Socket = *fed, *root, *vc, *nodeName, *socket
	n, err := strconv.Atoi(*slots)
	if err != nil {
		return usageErr("--slots %q: not a number", *slots)
	}
	cfg.Slots = n
	if *memory != "" {
		m, inf, err := sge.ParseMemory(*memory)
		if err != nil || inf {
			return usageErr("--memory %q: want a size like 4G or 512M", *memory)
		}
		cfg.Memory = m
	}
	cfg.Spool = *spool
	if cfg.Spool == "" {
		cfg.Spool = filepath.Join("/var/spool/musubi", cfg.Node)
	}
	if cfg.SessionTimeout, err = time.ParseDuration(*session); err != nil {
		return usageErr("--session-timeout %q: %v", *session, err)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return usageErr("--log-level %q: use debug, info, warn or error", *level)
	}
	if err := cfg.Validate(); err != nil {
		return usageErr("%s", strings.ReplaceAll(err.Error(), "\n", "\nmusubi agent: "))
	}
	sc := agent.SyncConfig{HostsFile: *hostsFile, AccountsRoot: *accountsRoot}
	if *hostsFile == "" || *accountsRoot == "" {
		return usageErr("--hosts-file and --accounts-root take a path, or - for none")
	}
	if *secretFile != "" {
		if sc.Secret, err = vcacl.ReadAgentSecret(*secretFile); err != nil {
			return usageErr("--secret-file: %v", err)
		}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: lvl}))
	if err := agent.RunWithSync(ctx, cfg, sc); err != nil {
		return fail(env, "agent", err, "Check that ZooKeeper answers at --zk and that the socket directory is writable.")
	}
	return exitOK
}
