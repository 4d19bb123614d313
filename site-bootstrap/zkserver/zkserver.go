// Package zkserver runs one ZooKeeper server of the federation's ensemble
// from Debian's zookeeper package: its configuration files (a static
// zoo.cfg plus a dynamic configuration file with the members, as dynamic
// reconfiguration needs), the java command line, a pid-file launcher, a
// systemd unit, and the four-letter-word client that tells whether the
// server serves and in which role.
//
// Debian's launcher is not used: its class path has no SLF4J binding (the
// server would log nothing) and no servlet API (no AdminServer). Command
// builds the java command line with both.
//
// The layout of a server directory:
//
//	zoo.cfg                 static configuration (mode 0600: it holds the super digest)
//	zoo.cfg.dynamic         initial membership; ZooKeeper writes zoo.cfg.dynamic.<version>
//	                        on every reconfiguration and points zoo.cfg at it
//	log4j.properties        logging to zookeeper.log
//	data/myid               the server's id
//	zookeeper.pid, .log, .out
package zkserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// Sentinel errors.
var (
	// ErrNotInstalled: java or the ZooKeeper jars are missing.
	ErrNotInstalled = errors.New("zkserver: ZooKeeper or java not installed")
	// ErrBadConfig: the Config is invalid.
	ErrBadConfig = errors.New("zkserver: invalid configuration")
)

// DefaultClasspath is the Debian package's server jar plus what its
// launcher lacks: an SLF4J binding (without it the server logs nothing) and
// the servlet API (without it the AdminServer cannot start). The jar's
// manifest pulls in the rest.
var DefaultClasspath = []string{
	"/usr/share/java/zookeeper.jar",
	"/usr/share/java/slf4j-log4j12.jar",
	"/usr/share/java/log4j-1.2.jar",
	"/usr/share/java/servlet-api.jar",
}

// Packages are the Debian packages that provide java and DefaultClasspath.
var Packages = []string{"zookeeper", "libslf4j-java", "liblog4j1.2-java", "libservlet-api-java"}

// DefaultJVMFlags keeps a server small (about 75-100 MiB RSS) and quick to
// start.
var DefaultJVMFlags = []string{"-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"}

// MainClass is ZooKeeper's replicated server entry point.
const MainClass = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

// Find locates java and the ZooKeeper jars: $JAVA (default java in PATH)
// and $MUSUBI_ZK_CLASSPATH (colon-separated; default DefaultClasspath).
// The error wraps ErrNotInstalled and names what is missing.
func Find() (java, classpath string, err error) {
	java = os.Getenv("JAVA")
	if java == "" {
		java = "java"
	}
	if java, err = exec.LookPath(java); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	jars := DefaultClasspath
	if cp := os.Getenv("MUSUBI_ZK_CLASSPATH"); cp != "" {
		jars = strings.Split(cp, ":")
	}
	for _, j := range jars {
		if _, err := os.Stat(j); err != nil {
			return "", "", fmt.Errorf("%w: %v", ErrNotInstalled, err)
		}
	}
	return java, strings.Join(jars, ":"), nil
}

// Log4jProperties sends the server's log to ${zookeeper.log.dir}/${zookeeper.log.file}.
const Log4jProperties = `log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=${zookeeper.log.dir}/${zookeeper.log.file}
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n
`

// Config is one server of the ensemble.
type Config struct {
	// Dir is the server's directory (see the package doc).
	Dir string
	// ID is the server's id (myid), 1-65025.
	ID int
	// Members is the initial membership, this server included. It is
	// written to the dynamic configuration file only before the server's
	// first start: from then on the ensemble owns its membership.
	Members []coord.Member
	// TickTime is ZooKeeper's time unit (default 2s); session timeouts are
	// 2-20 ticks.
	TickTime time.Duration
	// SuperDigest, "user:base64(sha1(user:password))", names the identity
	// that may reconfigure the ensemble and bypasses every ACL. It is set
	// as the zookeeper.DigestAuthenticationProvider.superDigest system
	// property through zoo.cfg (ZooKeeper turns unknown keys into
	// zookeeper.* properties), so it never shows on a command line.
	SuperDigest string
	// NoForceSync stops the server from fsyncing its log before
	// acknowledging (ZooKeeper syncs by default, and so do production
	// sites). Tests on one machine turn it off.
	NoForceSync bool
	// MaxClientCnxns limits connections per client address (default 200).
	MaxClientCnxns int
	// JVMFlags replace DefaultJVMFlags.
	JVMFlags []string
}

// StaticPath is zoo.cfg.
func (c Config) StaticPath() string { return filepath.Join(c.Dir, "zoo.cfg") }

// DynamicPath is the initial dynamic configuration file.
func (c Config) DynamicPath() string { return filepath.Join(c.Dir, "zoo.cfg.dynamic") }

// DataDir is the server's snapshot and transaction log directory.
func (c Config) DataDir() string { return filepath.Join(c.Dir, "data") }

// MyIDPath is data/myid.
func (c Config) MyIDPath() string { return filepath.Join(c.DataDir(), "myid") }

// Log4jPath is the logging configuration.
func (c Config) Log4jPath() string { return filepath.Join(c.Dir, "log4j.properties") }

// PIDPath is the pid file of the pid-file launcher.
func (c Config) PIDPath() string { return filepath.Join(c.Dir, "zookeeper.pid") }

// LogPath is the server's log.
func (c Config) LogPath() string { return filepath.Join(c.Dir, "zookeeper.log") }

// OutPath receives the JVM's stdout and stderr.
func (c Config) OutPath() string { return filepath.Join(c.Dir, "zookeeper.out") }

func (c Config) snapshotDir() string { return filepath.Join(c.DataDir(), "version-2") }

func (c Config) tick() time.Duration {
	if c.TickTime > 0 {
		return c.TickTime
	}
	return 2 * time.Second
}

func (c Config) maxClientCnxns() int {
	if c.MaxClientCnxns > 0 {
		return c.MaxClientCnxns
	}
	return 200
}

// Self is this server's member entry.
func (c Config) Self() (coord.Member, bool) { return coord.FindMember(c.Members, c.ID) }

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("%w: directory %q is not absolute", ErrBadConfig, c.Dir)
	}
	if c.ID < 1 || c.ID > 255*255 {
		return fmt.Errorf("%w: id %d", ErrBadConfig, c.ID)
	}
	if _, ok := c.Self(); !ok {
		return fmt.Errorf("%w: server %d is not among its members", ErrBadConfig, c.ID)
	}
	for _, m := range c.Members {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadConfig, err)
		}
	}
	if c.SuperDigest != "" && (!strings.Contains(c.SuperDigest, ":") || strings.ContainsAny(c.SuperDigest, "\n ")) {
		return fmt.Errorf("%w: super digest is not user:digest", ErrBadConfig)
	}
	return nil
}

// Static renders zoo.cfg. The dynamicConfigFile line names dynamic, the
// file the server reads its membership from (ZooKeeper rewrites that line
// after each reconfiguration).
func (c Config) Static(dynamic string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# ZooKeeper server %d, written by musubi site bootstrap.\n", c.ID)
	b.WriteString("# ZooKeeper itself rewrites dynamicConfigFile when the ensemble is reconfigured.\n")
	for _, kv := range c.staticKeys() {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
	}
	fmt.Fprintf(&b, "dynamicConfigFile=%s\n", dynamic)
	return b.String()
}

// staticKeys are zoo.cfg's settings besides dynamicConfigFile, in order.
func (c Config) staticKeys() [][2]string {
	kv := [][2]string{
		{"tickTime", strconv.FormatInt(c.tick().Milliseconds(), 10)},
		{"initLimit", "10"},
		{"syncLimit", "5"},
		{"dataDir", c.DataDir()},
		{"reconfigEnabled", "true"},
		{"standaloneEnabled", "false"},
		{"maxClientCnxns", strconv.Itoa(c.maxClientCnxns())},
		// 3.5+ allows only srvr by default.
		{"4lw.commands.whitelist", "srvr,stat,mntr,ruok,conf,isro"},
		{"admin.enableServer", "false"},
		{"autopurge.snapRetainCount", "5"},
		{"autopurge.purgeInterval", "24"},
	}
	if c.NoForceSync {
		kv = append(kv, [2]string{"forceSync", "no"})
	}
	if c.SuperDigest != "" {
		kv = append(kv, [2]string{"DigestAuthenticationProvider.superDigest", c.SuperDigest})
	}
	return kv
}

// Dynamic renders the initial dynamic configuration: one server line per
// member.
func (c Config) Dynamic() string {
	var b strings.Builder
	ms := slices.Clone(c.Members)
	slices.SortFunc(ms, func(a, b coord.Member) int { return a.ID - b.ID })
	for _, m := range ms {
		b.WriteString(m.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Started reports whether the server has run before (it has a data
// directory with a snapshot or log): its membership is then the
// ensemble's, not Members.
func (c Config) Started() bool {
	ents, err := os.ReadDir(c.snapshotDir())
	return err == nil && len(ents) > 0
}

// FileState compares the server directory with the configuration: it
// returns "" when everything is as Write would leave it, else what
// differs. Once the server has started, the dynamic configuration and the
// dynamicConfigFile line are the ensemble's and are not compared.
func (c Config) FileState() string {
	diffs := c.staticDiffs()
	if d, err := os.ReadFile(c.MyIDPath()); err != nil || strings.TrimSpace(string(d)) != strconv.Itoa(c.ID) {
		diffs = append(diffs, "myid")
	}
	if d, err := os.ReadFile(c.Log4jPath()); err != nil || string(d) != Log4jProperties {
		diffs = append(diffs, "log4j.properties")
	}
	if st, err := os.Stat(c.Dir); err != nil || st.Mode().Perm() != 0o700 {
		diffs = append(diffs, "directory mode")
	}
	return strings.Join(diffs, ", ")
}

// staticDiffs compares zoo.cfg (and, before the first start, the dynamic
// configuration it names) with the configuration.
func (c Config) staticDiffs() []string {
	data, err := os.ReadFile(c.StaticPath())
	if err != nil {
		return []string{"no zoo.cfg"}
	}
	var diffs []string
	got := parseKeys(string(data))
	for _, kv := range c.staticKeys() {
		if got[kv[0]] != kv[1] {
			diffs = append(diffs, "zoo.cfg "+kv[0])
		}
	}
	dyn := got["dynamicConfigFile"]
	if dyn == "" {
		diffs = append(diffs, "zoo.cfg names no dynamic configuration")
	} else if !c.Started() {
		if d, err := os.ReadFile(dyn); err != nil || string(d) != c.Dynamic() {
			diffs = append(diffs, "dynamic configuration")
		}
	}
	return diffs
}

func parseKeys(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// Write writes the server directory. Before the first start it writes
// the dynamic configuration from Members; afterwards it keeps the dynamic
// configuration file ZooKeeper maintains and rewrites only the static
// settings.
func (c Config) Write() error {
	if err := c.Validate(); err != nil {
		return err
	}
	// The directory is private: ZooKeeper rewrites zoo.cfg, which holds
	// the super digest, with the default file mode.
	if err := os.MkdirAll(c.DataDir(), 0o700); err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	if err := os.Chmod(c.Dir, 0o700); err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	if len(c.staticDiffs()) > 0 {
		dyn := c.DynamicPath()
		if c.Started() {
			if data, err := os.ReadFile(c.StaticPath()); err == nil {
				if cur := parseKeys(string(data))["dynamicConfigFile"]; cur != "" {
					dyn = cur
				}
			}
		} else if err := writeAtomic(dyn, []byte(c.Dynamic()), 0o644); err != nil {
			return err
		}
		if err := writeAtomic(c.StaticPath(), []byte(c.Static(dyn)), 0o600); err != nil {
			return err
		}
	}
	if err := writeAtomic(c.MyIDPath(), []byte(strconv.Itoa(c.ID)+"\n"), 0o644); err != nil {
		return err
	}
	return writeAtomic(c.Log4jPath(), []byte(Log4jProperties), 0o644)
}

// writeAtomic writes a file through a temporary file and a rename, unless
// it already has that content and mode.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	if cur, err := os.ReadFile(path); err == nil && string(cur) == string(data) {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm() == mode {
			return nil
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("zkserver: %w", err)
	}
	return nil
}

// Command is the java command line of the server.
func (c Config) Command(java, classpath string) []string {
	flags := c.JVMFlags
	if flags == nil {
		flags = DefaultJVMFlags
	}
	args := []string{
		java,
		"-Dzookeeper.log.dir=" + c.Dir,
		"-Dzookeeper.log.file=" + filepath.Base(c.LogPath()),
		"-Dlog4j.configuration=file:" + c.Log4jPath(),
		"-Dzookeeper.jmx.log4j.disable=true",
	}
	args = append(args, flags...)
	return append(args, "-cp", classpath, MainClass, c.StaticPath())
}

// Marker is what the server's command line contains and nothing else's:
// its static configuration path.
func (c Config) Marker() string { return c.StaticPath() }

// SystemdUnit is a unit file running the server under systemd, for hosts
// that have it (the pid-file launcher is for hosts that do not).
func (c Config) SystemdUnit(java, classpath, description string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[Unit]\nDescription=%s\nAfter=network-online.target\nWants=network-online.target\n\n", description)
	b.WriteString("[Service]\nType=simple\n")
	fmt.Fprintf(&b, "WorkingDirectory=%s\n", c.Dir)
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(quoteAll(c.Command(java, classpath)), " "))
	b.WriteString("Restart=on-failure\nRestartSec=2\nSuccessExitStatus=143\nLimitNOFILE=65536\n\n")
	b.WriteString("[Install]\nWantedBy=multi-user.target\n")
	return b.String()
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t\"'\\$%") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}

// ParseMode extracts the "Mode:" line of srvr or stat output ("" if none,
// e.g. "This ZooKeeper instance is not currently serving requests").
func ParseMode(out string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return strings.TrimSpace(m)
		}
	}
	return ""
}

// Serving reports whether a mode is one of a server that serves clients.
func Serving(mode string) bool {
	switch mode {
	case "leader", "follower", "observer":
		return true
	}
	return false
}

// fourLetterTimeout bounds one four-letter-word exchange.
const fourLetterTimeout = 2 * time.Second

// DialFunc opens a connection to a server's client address.
type DialFunc func(ctx context.Context, addr string) (net.Conn, error)

// FourLetter sends a four-letter word (srvr, mntr, ruok, ...) to the
// server at addr and returns its whole answer.
func FourLetter(ctx context.Context, addr, cmd string) (string, error) {
	return FourLetterWith(ctx, addr, cmd, nil)
}

// FourLetterWith is FourLetter through dial (nil: a plain TCP dial).
func FourLetterWith(ctx context.Context, addr, cmd string, dial DialFunc) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, fourLetterTimeout)
	defer cancel()
	if dial == nil {
		dial = func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	c, err := dial(ctx, addr)
	if err != nil {
		return "", fmt.Errorf("zkserver: %s %s: %w", cmd, addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", fmt.Errorf("zkserver: %s %s: %w", cmd, addr, err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		return string(out), fmt.Errorf("zkserver: %s %s: %w", cmd, addr, err)
	}
	return string(out), nil
}

// Mode asks the server at addr for its role ("" when it does not serve).
func Mode(ctx context.Context, addr string) (string, error) {
	out, err := FourLetter(ctx, addr, "srvr")
	if err != nil {
		return "", err
	}
	return ParseMode(out), nil
}
