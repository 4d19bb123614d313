package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/jobqueue"
	"github.com/musubi-fabric/musubi/jobqueue/executor"
	"github.com/musubi-fabric/musubi/node/agentapi"
)

// Config configures an agent. DefaultConfig fills in everything but ZK.
type Config struct {
	// ZK are the ZooKeeper servers (host:port), this site's first.
	ZK []string
	// Federation names the federation; its data lives under
	// /musubi/<Federation>. Root, when set, is the chroot instead.
	Federation string
	Root       string
	// VC is the virtual cluster whose job queue the node serves.
	VC string
	// Node is the node's name: its executor id, and the host name jobs
	// and qhost see. Letters, digits, '.', '_' and '-'.
	Node string
	// Slots is how many job slots the node offers.
	Slots int
	// Memory is the memory (bytes) the node offers to jobs' mem_free
	// requests; it is also the MEMTOT qhost shows.
	Memory int64
	// Spool is the directory for the jobs' spooled scripts and TMPDIRs
	// (created mode 0755; it must be searchable by job users).
	Spool string
	// Socket is the unix socket of the Grid Engine commands.
	Socket string
	// SessionTimeout is the ZooKeeper session timeout: how soon the jobs
	// of a dead node run again elsewhere.
	SessionTimeout time.Duration
	// HostUpdate is how often the node's load and memory use are
	// published for qhost.
	HostUpdate time.Duration
	// Logger receives the agent's logs; nil discards them.
	Logger *slog.Logger

	// Runner runs the jobs; nil means a Grid Engine compatible
	// executor.Runner (tests replace it).
	Runner Runner
	// QueueRoot overrides the path of the queue in the store (tests).
	QueueRoot string
	// OnReady, if set, is called once the socket accepts requests and
	// the node is registered as an execution host.
	OnReady func()
}

// DefaultConfig returns the defaults: federation and VC "default", the
// host's short name as node, one slot per CPU, the host's memory, spool
// /var/spool/musubi/<node>, socket agentapi.DefaultSocket.
func DefaultConfig() Config {
	node, _ := os.Hostname()
	node, _, _ = strings.Cut(node, ".")
	c := Config{
		Federation:     "default",
		VC:             "default",
		Node:           node,
		Slots:          runtime.NumCPU(),
		Socket:         agentapi.DefaultSocket,
		SessionTimeout: 10 * time.Second,
		HostUpdate:     10 * time.Second,
	}
	if m, ok := readMemInfo(); ok {
		c.Memory = m.Total
	}
	c.Spool = filepath.Join("/var/spool/musubi", c.Node)
	return c
}

// validServer accepts what coord/zkstore dials: host:port, or
// unix:/absolute/path (a relay to the ensemble, node/zkrelay).
func validServer(s string) bool {
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		return filepath.IsAbs(p) && filepath.Clean(p) == p
	}
	_, port, err := net.SplitHostPort(s)
	return err == nil && port != ""
}

// Validate checks the configuration; it does no I/O.
func (c *Config) Validate() error {
	var errs []error
	if len(c.ZK) == 0 {
		errs = append(errs, errors.New("no ZooKeeper server given (--zk host:port[,host:port...])"))
	}
	for _, s := range c.ZK {
		if !validServer(s) {
			errs = append(errs, fmt.Errorf("ZooKeeper server %q: want host:port or unix:/absolute/path", s))
		}
	}
	if c.Root == "" {
		if err := coord.ValidName(c.Federation); err != nil {
			errs = append(errs, fmt.Errorf("federation %q: %v", c.Federation, err))
		}
	} else if err := coord.ValidPath(c.Root); err != nil {
		errs = append(errs, fmt.Errorf("root %q: %v", c.Root, err))
	}
	return errors.Join(append(errs, c.validateNode())...)
}

// validateNode checks everything but where the store is.
func (c *Config) validateNode() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := coord.ValidName(c.VC); err != nil {
		bad("vc %q: %v", c.VC, err)
	}
	if err := coord.ValidName(c.Node); err != nil || strings.ContainsRune(c.Node, '~') {
		bad("node name %q: use letters, digits, '.', '_' and '-'", c.Node)
	}
	if c.Slots < 1 || c.Slots > 4096 {
		bad("slots %d: use 1 to 4096", c.Slots)
	}
	if c.Memory < 0 {
		bad("memory %d: must not be negative", c.Memory)
	}
	if !filepath.IsAbs(c.Spool) {
		bad("spool directory %q: must be an absolute path", c.Spool)
	}
	if !filepath.IsAbs(c.Socket) {
		bad("socket %q: must be an absolute path", c.Socket)
	} else if len(c.Socket) > 107 {
		bad("socket path %q is longer than a unix socket address allows (107 bytes)", c.Socket)
	}
	if c.SessionTimeout < time.Second {
		bad("session timeout %s: at least 1s", c.SessionTimeout)
	}
	if c.HostUpdate <= 0 {
		bad("host update interval %s: must be positive", c.HostUpdate)
	}
	return errors.Join(errs...)
}

// chroot is the store root the agent opens.
func (c *Config) chroot() string {
	if c.Root != "" {
		return c.Root
	}
	return coord.FederationRoot(c.Federation)
}

// openTimeout bounds the wait for the first ZooKeeper session.
const openTimeout = 30 * time.Second

// Run runs the agent until ctx ends: it validates cfg, creates the spool
// directory and the socket, opens a ZooKeeper session and serves (see
// Serve). It returns nil after a clean shutdown.
func Run(ctx context.Context, cfg Config) error {
	return RunWithSync(ctx, cfg, SyncConfig{HostsFile: "-", AccountsRoot: "-"})
}

func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Serve runs the agent on an open store until ctx ends: it initialises
// the VC's queue, registers the node as an execution host, runs the
// executor loop and serves the API socket. On shutdown it stops claiming,
// kills and gives back the jobs it runs (see the package doc), removes its
// registration and the socket, and returns once every goroutine it started
// has ended. The store stays open (the caller closes it).
func Serve(ctx context.Context, st coord.Store, cfg Config) (err error) {
	if err := cfg.validateNode(); err != nil {
		return err
	}
	log := logger(cfg.Logger).With("node", cfg.Node)
	if err := os.MkdirAll(cfg.Spool, 0o755); err != nil {
		return fmt.Errorf("agent: spool directory: %w", err)
	}
	q, err := jobqueue.New(jobqueue.Config{Store: st, VC: cfg.VC, Root: cfg.QueueRoot, Logger: log.With("subsystem", "jobqueue")})
	if err != nil {
		return err
	}
	if err := q.Init(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	info := jobqueue.HostInfo{Host: cfg.Node, Arch: hostArch(), Slots: cfg.Slots, NCPU: runtime.NumCPU(), MemTotal: cfg.Memory}
	fillLoad(&info)
	ex, err := q.NewExecutor(jobqueue.ExecutorConfig{ID: cfg.Node, Info: info, JoinGangs: true, Logger: log.With("subsystem", "executor")})
	if err != nil {
		return err
	}
	l, err := agentapi.Listen(cfg.Socket)
	if err != nil {
		return err
	}
	defer l.Close()
	// No other agent serves this node (the socket was free): whatever the
	// jobs of an earlier agent that was killed left running is killed
	// before anything runs again (their claims vanished with that agent's
	// session, so they run again, here or elsewhere).
	if n, err := executor.KillLeftovers(cfg.Spool, log.With("subsystem", "runner")); err != nil {
		log.Warn("cleaning up after an earlier agent", "spool", cfg.Spool, "err", err)
	} else if n > 0 {
		log.Warn("killed processes left by the jobs of an earlier agent", "processes", n)
	}
	sub := newSubmitter(q)
	sub.batch = ex.SubmitHere
	srv, err := agentapi.NewServer(agentapi.ServerConfig{
		Backend: &backend{q: q, now: time.Now, sub: sub}, Logger: log.With("subsystem", "api"),
	})
	if err != nil {
		return err
	}
	runner := cfg.Runner
	if runner == nil {
		runner = &executor.Runner{Hostname: cfg.Node, Logger: log.With("subsystem", "runner")}
	}
	w := &worker{
		ex: ex, runner: runner, slots: cfg.Slots, memory: cfg.Memory, host: cfg.Node, spool: cfg.Spool,
		accts: newHostAccounts(), log: log.With("subsystem", "worker"), settleTimeout: 30 * time.Second,
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The executor's Run (registration, qdel signals, recovery) outlives
	// the worker, which settles its jobs through it on shutdown.
	exCtx, exCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer exCancel()
	exDone := make(chan error, 1)
	go func() {
		err := ex.Run(exCtx)
		if err != nil {
			cancel(err)
		}
		exDone <- err
	}()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := srv.Serve(runCtx, l); err != nil {
			cancel(err)
		}
	}()
	go func() {
		defer wg.Done()
		sub.run(runCtx)
	}()
	go func() {
		defer wg.Done()
		publishHost(runCtx, ex, info, cfg.HostUpdate, log)
	}()
	if cfg.OnReady != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if waitRegistered(runCtx, q, cfg.Node) {
				cfg.OnReady()
			}
		}()
	}
	log.Info("agent started", "vc", cfg.VC, "slots", cfg.Slots, "memory", cfg.Memory, "socket", cfg.Socket, "spool", cfg.Spool)
	w.loop(runCtx)
	exCancel()
	exErr := <-exDone
	wg.Wait()
	log.Info("agent stopped")
	if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if exErr != nil && ctx.Err() == nil {
		return exErr
	}
	return nil
}

// fillLoad adds the current load and memory use to info.
func fillLoad(info *jobqueue.HostInfo) {
	if l := loadAvg(); l >= 0 {
		info.Load100 = l
	}
	if m, ok := readMemInfo(); ok {
		info.MemUsed = m.Total - m.Available
		info.SwapTotal, info.SwapUsed = m.SwapTotal, m.SwapTotal-m.SwapFree
		if info.MemTotal == 0 {
			info.MemTotal = m.Total
		}
	}
}

// publishHost refreshes the node's registry entry (load, memory use)
// every interval until ctx ends.
func publishHost(ctx context.Context, ex *jobqueue.Executor, info jobqueue.HostInfo, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fillLoad(&info)
		if err := ex.UpdateHost(ctx, info); err != nil && ctx.Err() == nil {
			log.Debug("publishing host load", "err", err)
		}
	}
}

// waitRegistered waits until the node appears in the host registry.
func waitRegistered(ctx context.Context, q *jobqueue.Queue, node string) bool {
	for attempt := 0; ; attempt++ {
		hosts, err := q.Hosts(ctx)
		if err == nil {
			for _, h := range hosts {
				if h.Executor == node {
					return true
				}
			}
		}
		if !sleepCtx(ctx, min(time.Duration(attempt+1)*5*time.Millisecond, 200*time.Millisecond)) {
			return false
		}
	}
}
