// Package zktest starts a real ZooKeeper ensemble for tests: N servers of
// the Debian ZooKeeper 3.8 package, each a plain `java` process, on free
// loopback ports in a temporary directory.
//
// The ensemble runs with reconfigEnabled=true and standaloneEnabled=false and
// dynamic-config style server lines
// ("server.N=127.0.0.1:quorum:election:participant;127.0.0.1:client"), so
// tests can change its membership. Servers are started with exec.Cmd, only
// ever signalled by PID, and reaped by one goroutine each that Stop joins.
//
// Find ZooKeeper through the environment when it is not at Debian's paths:
// MUSUBI_ZK_CLASSPATH (colon-separated jars; the first must be the
// ZooKeeper server jar) and JAVA (the java binary; default: java in PATH).
//
// What a test ensemble shares with a site's production server (finding
// java and the jars, the logging configuration, four-letter words) lives
// in site-bootstrap/zkserver; this package adds the test harness.
package zktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/site-bootstrap/zkserver"
)

// Sentinel errors.
var (
	// ErrNotInstalled: java or the ZooKeeper jars are missing.
	ErrNotInstalled = errors.New("zktest: ZooKeeper or java not installed")
	// ErrNoLeader: no running server reports itself as leader.
	ErrNoLeader = errors.New("zktest: no leader")
	// ErrStopped: the ensemble was stopped.
	ErrStopped = errors.New("zktest: ensemble stopped")
	// ErrBadServer: the server id is not a member of the ensemble.
	ErrBadServer = errors.New("zktest: no such server")
	// ErrRunning: the server is already running.
	ErrRunning = errors.New("zktest: server already running")
	// errPortInUse: a server could not bind one of its ports (Start retries).
	errPortInUse = errors.New("zktest: port already in use")
)

// DefaultClasspath is the Debian package's server jar plus what its
// launcher lacks: an SLF4J binding (without it the server logs nothing) and
// the servlet API (without it the AdminServer cannot start). The jar's
// manifest pulls in the rest.
var DefaultClasspath = zkserver.DefaultClasspath

// DefaultJVMFlags keeps each server small (about 75-100 MiB RSS) and
// fast to start: about 1.3 s to a serving 3-server ensemble on the 2-core
// test host, against 1.6 s with the lab's -Xms128m -Xmx256m.
//
// The election settings bound how long a test waits for a new leader:
// FastLeaderElection doubles its notification timeout up to 60 s by
// default, and on a loaded 2-core host an election after a leader kill
// was seen to take 11-75 s; capping it at 1 s and the connect timeout to
// a dead peer at 1 s (default 5 s) keeps elections near the lab's 0.2-1 s.
var DefaultJVMFlags = []string{"-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
	"-Dzookeeper.fastleader.maxNotificationInterval=1000", "-Dzookeeper.cnxTimeout=1000"}

// Options configures an ensemble. The zero value means 3 servers with a
// 1 s tick in a fresh temporary directory.
type Options struct {
	// Servers is the number of servers (default 3).
	Servers int
	// TickTime is ZooKeeper's basic time unit (default 1s). Session
	// timeouts are clamped by the servers to 2-20 ticks.
	TickTime time.Duration
	// Logf receives progress messages (e.g. t.Logf); nil discards them.
	Logf func(format string, args ...any)
	// Dir is the directory to create the ensemble's directory in (default
	// os.TempDir()).
	Dir string
	// Keep leaves the ensemble's files in place after Stop.
	Keep bool
	// JVMFlags replaces DefaultJVMFlags.
	JVMFlags []string
	// ForceSync makes servers fsync their transaction log before
	// acknowledging (ZooKeeper's default). Off by default: the tests kill
	// processes, not machines, so the page cache survives and fsync only
	// slows the shared test host.
	ForceSync bool
	// AdminServer enables the Jetty AdminServer on a free port.
	AdminServer bool
	// BindAddr, if set, gives server id's address (default 127.0.0.1): it
	// binds its client, quorum and election ports there and the ensemble's
	// server lines name it. Use it with Exec to run each server in its own
	// network namespace on that namespace's address.
	BindAddr func(id int) string
	// Exec, if set, returns the command prefix server id is started with,
	// for example {"ip", "netns", "exec", "<ns>"}. The prefix must exec
	// the server in place (as ip netns exec does), so that the process the
	// harness signals by PID is the JVM itself.
	Exec func(id int) []string
	// Dial, if set, is how the harness reaches server id's client address
	// addr for its four-letter-word checks (for example from inside the
	// server's network namespace). Default: a plain TCP dial.
	Dial func(ctx context.Context, id int, addr string) (net.Conn, error)
}

func (o *Options) setDefaults() {
	if o.Servers <= 0 {
		o.Servers = 3
	}
	if o.TickTime <= 0 {
		o.TickTime = time.Second
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.JVMFlags == nil {
		o.JVMFlags = DefaultJVMFlags
	}
}

// Member describes one server of the ensemble.
type Member struct {
	ID int
	// Host is the address the server binds (Options.BindAddr; default
	// 127.0.0.1).
	Host         string
	ClientPort   int
	QuorumPort   int
	ElectionPort int
	AdminPort    int // 0 when the AdminServer is disabled
	Dir          string
}

// ClientAddr is the server's client address, host:port.
func (m Member) ClientAddr() string { return net.JoinHostPort(m.host(), strconv.Itoa(m.ClientPort)) }

func (m Member) host() string {
	if m.Host == "" {
		return "127.0.0.1"
	}
	return m.Host
}

// Spec is the server's dynamic-config line without the "server.N=" key, as
// reconfig takes it: host:quorum:election:participant;host:client (host
// 127.0.0.1 unless Options.BindAddr says otherwise).
func (m Member) Spec() string {
	h := m.host()
	return fmt.Sprintf("%s:%d:%d:participant;%s:%d", h, m.QuorumPort, m.ElectionPort, h, m.ClientPort)
}

// server is one member plus its process, if running.
type server struct {
	Member
	cfgPath string
	outPath string // stdout and stderr of the JVM
	logPath string // log4j log

	cmd  *exec.Cmd
	done chan struct{} // closed when the process was reaped
	err  error         // Wait's result, valid after done
}

func (s *server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Ensemble is a running set of ZooKeeper servers. Its methods are safe for
// concurrent use.
type Ensemble struct {
	opts    Options
	dir     string
	java    string
	cp      string
	reapers sync.WaitGroup

	mu      sync.Mutex
	servers []*server // index id-1
	stopped bool
}

// Available reports whether java and the ZooKeeper jars are installed; the
// error wraps ErrNotInstalled and says what is missing.
func Available() error {
	_, _, err := findZooKeeper()
	return err
}

func findZooKeeper() (java, classpath string, err error) {
	java, classpath, err = zkserver.Find()
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	return java, classpath, nil
}

// maxStartAttempts bounds retries after a port collision.
const maxStartAttempts = 3

// Start starts an ensemble and waits until every server serves clients as
// leader or follower. On failure everything started is stopped and removed.
func Start(ctx context.Context, opts Options) (*Ensemble, error) {
	opts.setDefaults()
	java, cp, err := findZooKeeper()
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		e, err := start(ctx, opts, java, cp)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == maxStartAttempts {
			return nil, err
		}
		opts.Logf("zktest: %v; retrying with new ports", err)
	}
}

func start(ctx context.Context, opts Options, java, cp string) (_ *Ensemble, err error) {
	t0 := time.Now()
	parent := opts.Dir
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "zktest-")
	if err != nil {
		return nil, fmt.Errorf("zktest: %w", err)
	}
	e := &Ensemble{opts: opts, dir: dir, java: java, cp: cp}
	defer func() {
		if err != nil {
			if e.opts.Keep {
				opts.Logf("zktest: start failed, files kept in %s", dir)
			}
			_ = e.Stop()
		}
	}()
	perServer := 3
	if opts.AdminServer {
		perServer = 4
	}
	ports, err := freePorts(opts.Servers * perServer)
	if err != nil {
		return nil, err
	}
	for i := 0; i < opts.Servers; i++ {
		p := ports[i*perServer:]
		m := Member{ID: i + 1, ClientPort: p[0], QuorumPort: p[1], ElectionPort: p[2], Dir: filepath.Join(dir, fmt.Sprintf("zk%d", i+1))}
		if opts.AdminServer {
			m.AdminPort = p[3]
		}
		if opts.BindAddr != nil {
			m.Host = opts.BindAddr(m.ID)
		}
		e.servers = append(e.servers, &server{
			Member:  m,
			cfgPath: filepath.Join(m.Dir, "zoo.cfg"),
			outPath: filepath.Join(m.Dir, "zk.out"),
			logPath: filepath.Join(m.Dir, "zk.log"),
		})
	}
	if err := e.writeFiles(); err != nil {
		return nil, err
	}
	e.mu.Lock()
	for _, s := range e.servers {
		if err = e.startLocked(s); err != nil {
			break
		}
	}
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := e.WaitServing(ctx); err != nil {
		if perr := e.portError(); perr != nil {
			return nil, perr
		}
		return nil, fmt.Errorf("%w\n%s", err, e.tails(20))
	}
	opts.Logf("zktest: %d servers serving after %v in %s (client ports %s)", opts.Servers, time.Since(t0).Round(time.Millisecond), dir, e.ConnectString())
	return e, nil
}

// StartT starts an ensemble of n servers for a test and stops it in
// t.Cleanup. It skips the test when ZooKeeper is not installed and fails it
// when the ensemble does not come up within 2 minutes. When the test fails,
// the tail of every server's log is written to the test log. Set
// MUSUBI_ZKTEST_KEEP=1 to keep the ensemble's files.
func StartT(t testing.TB, n int) *Ensemble {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := Start(ctx, Options{Servers: n, Logf: t.Logf, Keep: os.Getenv("MUSUBI_ZKTEST_KEEP") != ""})
	if err != nil {
		t.Fatalf("start ZooKeeper ensemble: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ZooKeeper logs:\n%s", e.tails(30))
		}
		if err := e.Stop(); err != nil {
			t.Errorf("stop ZooKeeper ensemble: %v", err)
		}
	})
	return e
}

// freePorts returns n distinct free TCP ports on 127.0.0.1: all are bound
// at once (so they differ), then released for the servers to take.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("zktest: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

const log4jProperties = zkserver.Log4jProperties

// writeFiles writes log4j.properties and each server's myid and zoo.cfg.
func (e *Ensemble) writeFiles() error {
	if err := os.WriteFile(filepath.Join(e.dir, "log4j.properties"), []byte(log4jProperties), 0o644); err != nil {
		return fmt.Errorf("zktest: %w", err)
	}
	var members strings.Builder
	for _, s := range e.servers {
		fmt.Fprintf(&members, "server.%d=%s\n", s.ID, s.Spec())
	}
	for _, s := range e.servers {
		if err := os.MkdirAll(filepath.Join(s.Dir, "data"), 0o755); err != nil {
			return fmt.Errorf("zktest: %w", err)
		}
		if err := os.WriteFile(filepath.Join(s.Dir, "data", "myid"), []byte(strconv.Itoa(s.ID)+"\n"), 0o644); err != nil {
			return fmt.Errorf("zktest: %w", err)
		}
		if err := os.WriteFile(s.cfgPath, []byte(e.config(s, members.String())), 0o644); err != nil {
			return fmt.Errorf("zktest: %w", err)
		}
	}
	return nil
}

// config is a server's zoo.cfg. The server lines carry the client address,
// so there is no clientPort; ZooKeeper moves them to a dynamic config file
// on first start (reconfigEnabled).
func (e *Ensemble) config(s *server, members string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# zktest server %d of %d\n", s.ID, len(e.servers))
	fmt.Fprintf(&b, "tickTime=%d\n", e.opts.TickTime.Milliseconds())
	b.WriteString("initLimit=10\nsyncLimit=5\n")
	fmt.Fprintf(&b, "dataDir=%s\n", filepath.Join(s.Dir, "data"))
	b.WriteString("reconfigEnabled=true\nstandaloneEnabled=false\n")
	// Every test client connects from 127.0.0.1; the default is 60 per IP.
	b.WriteString("maxClientCnxns=1000\n")
	// 3.5+ whitelists only srvr by default.
	b.WriteString("4lw.commands.whitelist=srvr,stat,mntr,ruok,conf,cons,wchs,envi,isro\n")
	if !e.opts.ForceSync {
		b.WriteString("forceSync=no\n")
	}
	if s.AdminPort != 0 {
		fmt.Fprintf(&b, "admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort=%d\n", s.AdminPort)
	} else {
		b.WriteString("admin.enableServer=false\n")
	}
	b.WriteString(members)
	return b.String()
}

// startLocked starts s's JVM. e.mu must be held.
func (e *Ensemble) startLocked(s *server) error {
	if e.stopped {
		return ErrStopped
	}
	if s.running() {
		return fmt.Errorf("%w: %d", ErrRunning, s.ID)
	}
	out, err := os.OpenFile(s.outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("zktest: %w", err)
	}
	args := []string{
		"-Dzookeeper.log.dir=" + s.Dir,
		"-Dzookeeper.log.file=" + filepath.Base(s.logPath),
		"-Dlog4j.configuration=file:" + filepath.Join(e.dir, "log4j.properties"),
		"-Dzookeeper.jmx.log4j.disable=true",
	}
	args = append(args, e.opts.JVMFlags...)
	args = append(args, "-cp", e.cp, "org.apache.zookeeper.server.quorum.QuorumPeerMain", s.cfgPath)
	cmd := exec.Command(e.java, args...)
	if e.opts.Exec != nil {
		prefix := e.opts.Exec(s.ID)
		if len(prefix) > 0 {
			cmd = exec.Command(prefix[0], append(append(prefix[1:len(prefix):len(prefix)], e.java), args...)...)
		}
	}
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = out, out
	// Kill the JVM if the test binary dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return fmt.Errorf("zktest: start server %d: %w", s.ID, err)
	}
	done := make(chan struct{})
	s.cmd, s.done, s.err = cmd, done, nil
	e.reapers.Add(1)
	go func() {
		defer e.reapers.Done()
		err := cmd.Wait()
		_ = out.Close()
		e.mu.Lock()
		if s.cmd == cmd {
			s.err = err
		}
		e.mu.Unlock()
		close(done)
	}()
	e.opts.Logf("zktest: server %d started, pid %d, client %s", s.ID, cmd.Process.Pid, s.ClientAddr())
	return nil
}

func (e *Ensemble) server(id int) (*server, error) {
	if id < 1 || id > len(e.servers) {
		return nil, fmt.Errorf("%w: %d", ErrBadServer, id)
	}
	return e.servers[id-1], nil
}

// Dir is the ensemble's directory: zkN/{zoo.cfg,zk.log,zk.out,data}.
func (e *Ensemble) Dir() string { return e.dir }

// Members describes the servers, in id order.
func (e *Ensemble) Members() []Member {
	ms := make([]Member, len(e.servers))
	for i, s := range e.servers {
		ms[i] = s.Member
	}
	return ms
}

// Servers returns the client addresses, in server-id order.
func (e *Ensemble) Servers() []string {
	addrs := make([]string, len(e.servers))
	for i, s := range e.servers {
		addrs[i] = s.ClientAddr()
	}
	return addrs
}

// ConnectString is the comma-separated client addresses.
func (e *Ensemble) ConnectString() string { return strings.Join(e.Servers(), ",") }

// Addr is the client address of server id ("" if there is none).
func (e *Ensemble) Addr(id int) string {
	s, err := e.server(id)
	if err != nil {
		return ""
	}
	return s.ClientAddr()
}

// PID is the process id of server id, or 0 when it is not running.
func (e *Ensemble) PID(id int) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.server(id)
	if err != nil || !s.running() {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether server id's process is alive.
func (e *Ensemble) Running(id int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.server(id)
	return err == nil && s.running()
}

// Mode is a server's role as its srvr command reports it: "leader",
// "follower", "observer", or "" when it does not serve.
func (e *Ensemble) Mode(ctx context.Context, id int) (string, error) {
	s, err := e.server(id)
	if err != nil {
		return "", err
	}
	out, err := e.fourLetter(ctx, s.ID, s.ClientAddr(), "srvr")
	if err != nil {
		return "", err
	}
	return ParseMode(out), nil
}

// fourLetter is FourLetter through Options.Dial, when set.
func (e *Ensemble) fourLetter(ctx context.Context, id int, addr, cmd string) (string, error) {
	if e.opts.Dial == nil {
		return FourLetter(ctx, addr, cmd)
	}
	return fourLetterWith(ctx, addr, cmd, func(ctx context.Context) (net.Conn, error) { return e.opts.Dial(ctx, id, addr) })
}

// ParseMode extracts the "Mode:" line of srvr or stat output ("" if none,
// e.g. "This ZooKeeper instance is not currently serving requests").
func ParseMode(out string) string { return zkserver.ParseMode(out) }

// FourLetter sends a four-letter word (srvr, mntr, ruok, cons, ...) to the
// server at addr and returns its whole answer.
func FourLetter(ctx context.Context, addr, cmd string) (string, error) {
	return zkserver.FourLetter(ctx, addr, cmd)
}

func fourLetterWith(ctx context.Context, addr, cmd string, dial func(context.Context) (net.Conn, error)) (string, error) {
	return zkserver.FourLetterWith(ctx, addr, cmd, func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx) })
}

// pollInterval is how often the Wait helpers ask the servers.
const pollInterval = 25 * time.Millisecond

// WaitServing waits until each server in ids (all servers when none are
// given) answers srvr with mode leader or follower.
func (e *Ensemble) WaitServing(ctx context.Context, ids ...int) error {
	if len(ids) == 0 {
		for _, s := range e.servers {
			ids = append(ids, s.ID)
		}
	}
	pending := map[int]bool{}
	for _, id := range ids {
		if _, err := e.server(id); err != nil {
			return err
		}
		pending[id] = true
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		for id := range pending {
			if !e.Running(id) {
				return fmt.Errorf("zktest: server %d is not running: %v", id, e.exitErr(id))
			}
			switch m, _ := e.Mode(ctx, id); m {
			case "leader", "follower":
				delete(pending, id)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("zktest: waiting for servers %v to serve: %w", keys(pending), ctx.Err())
		case <-t.C:
		}
	}
}

func keys(m map[int]bool) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func (e *Ensemble) exitErr(id int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.server(id)
	if err != nil {
		return err
	}
	if s.cmd == nil {
		return errors.New("never started")
	}
	if s.running() {
		return nil
	}
	if s.err == nil {
		return errors.New("exited with status 0")
	}
	return s.err
}

// Leader waits until a running server reports itself leader and returns its
// id. It fails with ErrNoLeader (wrapped) when ctx ends first.
func (e *Ensemble) Leader(ctx context.Context) (int, error) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		for _, s := range e.servers {
			if !e.Running(s.ID) {
				continue
			}
			if m, _ := e.Mode(ctx, s.ID); m == "leader" {
				return s.ID, nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
		case <-t.C:
		}
	}
}

// KillLeader finds the leader and SIGKILLs it.
func (e *Ensemble) KillLeader(ctx context.Context) (int, error) {
	id, err := e.Leader(ctx)
	if err != nil {
		return 0, err
	}
	return id, e.Kill(id)
}

// Kill sends SIGKILL to server id and waits until it was reaped. Killing a
// server that is not running is not an error.
func (e *Ensemble) Kill(id int) error {
	return e.signal(id, syscall.SIGKILL, 0)
}

// Terminate sends SIGTERM to server id and waits up to grace for it to
// exit, then SIGKILLs it.
func (e *Ensemble) Terminate(id int, grace time.Duration) error {
	return e.signal(id, syscall.SIGTERM, grace)
}

func (e *Ensemble) signal(id int, sig syscall.Signal, grace time.Duration) error {
	e.mu.Lock()
	s, err := e.server(id)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	if !s.running() {
		e.mu.Unlock()
		return nil
	}
	cmd, done := s.cmd, s.done
	e.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("zktest: signal server %d (pid %d): %w", id, cmd.Process.Pid, err)
	}
	if sig != syscall.SIGKILL {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
			e.opts.Logf("zktest: server %d (pid %d) stopped by %v", id, cmd.Process.Pid, sig)
			return nil
		case <-t.C:
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("zktest: kill server %d (pid %d): %w", id, cmd.Process.Pid, err)
		}
		sig = syscall.SIGKILL
	}
	<-done // SIGKILL cannot be ignored
	e.opts.Logf("zktest: server %d (pid %d) killed", id, cmd.Process.Pid)
	return nil
}

// Start starts server id again (after Kill) with its configuration and
// data. It does not wait: use WaitServing.
func (e *Ensemble) Start(id int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, err := e.server(id)
	if err != nil {
		return err
	}
	return e.startLocked(s)
}

// Restart kills server id if it is running and starts it again.
func (e *Ensemble) Restart(id int) error {
	if err := e.Kill(id); err != nil {
		return err
	}
	return e.Start(id)
}

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// Stop terminates every server (SIGTERM, then SIGKILL after a grace
// period), waits until all are reaped and removes the ensemble's directory
// unless Options.Keep. It is idempotent.
func (e *Ensemble) Stop() error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil
	}
	e.stopped = true
	e.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(e.servers))
	for i, s := range e.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.Terminate(s.ID, stopGrace)
		}()
	}
	wg.Wait()
	e.reapers.Wait()
	err := errors.Join(errs...)
	if !e.opts.Keep {
		if rerr := os.RemoveAll(e.dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("zktest: %w", rerr))
		}
	}
	return err
}

// LogTail returns the last n lines of server id's log and JVM output.
func (e *Ensemble) LogTail(id, n int) string {
	s, err := e.server(id)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range []string{s.outPath, s.logPath} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", p, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

func (e *Ensemble) tails(n int) string {
	var b strings.Builder
	for _, s := range e.servers {
		b.WriteString(e.LogTail(s.ID, n))
	}
	return b.String()
}

// portError reports errPortInUse if a server's log shows it could not bind
// one of its ports.
func (e *Ensemble) portError() error {
	for _, s := range e.servers {
		for _, p := range []string{s.outPath, s.logPath} {
			data, err := os.ReadFile(p)
			if err == nil && (bytes.Contains(data, []byte("Address already in use")) || bytes.Contains(data, []byte("BindException"))) {
				return fmt.Errorf("%w: server %d", errPortInUse, s.ID)
			}
		}
	}
	return nil
}
