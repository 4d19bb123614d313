package sitebootstrap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/config"
)

// Defaults of Config.
const (
	DefaultStateDir     = "/var/lib/musubi"
	DefaultFederation   = "default"
	DefaultClientPort   = 2181
	DefaultQuorumPort   = 2888
	DefaultElectionPort = 3888
	DefaultISCSIPort    = 3260
	DefaultWaitTimeout  = 90 * time.Second
)

// Datapath choices for Open vSwitch.
const (
	DatapathAuto   = "auto"   // system when the kernel module is there, else netdev
	DatapathSystem = "system" // the openvswitch kernel module
	DatapathNetdev = "netdev" // userspace
)

// Session is a coordination session that can also change the ensemble's
// membership. *zkstore.Store is one.
type Session interface {
	coord.Store
	coord.Ensemble
}

// Dialer opens a session on the given servers (tried in order), under the
// chroot root ("" for none), authenticated with creds, and returns once it
// is established or ctx ends. cmd/musubi wires zkstore.Open.
type Dialer func(ctx context.Context, servers []string, root string, creds []coord.Credential) (Session, error)

// Runner runs an external command with extra environment variables and
// returns its standard output; a failure's error carries its standard
// error.
type Runner interface {
	Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := bytes.TrimSpace(stderr.Bytes())
		if len(msg) > 400 {
			msg = msg[len(msg)-400:]
		}
		return out, fmt.Errorf("%s: %w: %s", name, err, msg)
	}
	return out, nil
}

// Config configures a site's bootstrap. Init and Join need Site and Addr;
// the other commands read everything from the state directory.
type Config struct {
	// Site is this site's name (a coord.ValidName).
	Site string
	// Federation is the federation's name (Init; Join takes it from the
	// token). Default DefaultFederation.
	Federation string
	// Addr is this site's IP address: its ZooKeeper server and tgtd bind
	// there, and it is the site's gateway address.
	Addr string
	// StateDir holds the site's state and its daemons' files (default
	// DefaultStateDir). Keep it short: Open vSwitch's unix sockets live
	// there and socket paths are limited to 107 bytes.
	StateDir string
	// ClientPort, QuorumPort and ElectionPort are the ZooKeeper server's
	// ports (defaults 2181, 2888, 3888).
	ClientPort, QuorumPort, ElectionPort int
	// ISCSIPort is tgtd's portal port (default 3260); TgtControlPort is its
	// management socket's suffix (tgtd -C, default 0).
	ISCSIPort, TgtControlPort int
	// Datapath is Open vSwitch's datapath: DatapathAuto (default),
	// DatapathSystem or DatapathNetdev.
	Datapath string
	// TickTime is ZooKeeper's tick (default 2s).
	TickTime time.Duration
	// NoForceSync turns off ZooKeeper's fsync before acknowledging (for
	// tests that run several sites on one disk).
	NoForceSync bool
	// JVMFlags replace zkserver.DefaultJVMFlags.
	JVMFlags []string
	// InstallPackages lets the packages step run apt-get.
	InstallPackages bool
	// SkipDaemons lists daemons not to start or check: "ovs", "tgt".
	SkipDaemons []string
	// Systemd also writes a systemd unit for the ZooKeeper server under
	// <state>/systemd.
	Systemd bool
	// WaitTimeout bounds each wait for a server to serve or a session to
	// open (default DefaultWaitTimeout).
	WaitTimeout time.Duration

	// Dial opens ZooKeeper sessions (required).
	Dial Dialer
	// Runner runs external commands (default ExecRunner).
	Runner Runner
	// Out receives progress lines (default io.Discard).
	Out io.Writer
	// Logger receives details (default: discarded).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Federation == "" {
		c.Federation = DefaultFederation
	}
	if c.ClientPort == 0 {
		c.ClientPort = DefaultClientPort
	}
	if c.QuorumPort == 0 {
		c.QuorumPort = DefaultQuorumPort
	}
	if c.ElectionPort == 0 {
		c.ElectionPort = DefaultElectionPort
	}
	if c.ISCSIPort == 0 {
		c.ISCSIPort = DefaultISCSIPort
	}
	if c.Datapath == "" {
		c.Datapath = DatapathAuto
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	if c.Runner == nil {
		c.Runner = ExecRunner{}
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// validateSite checks what Init and Join need.
func (c *Config) validateSite() error {
	var errs []error
	if err := coord.ValidName(c.Site); err != nil {
		errs = append(errs, fmt.Errorf("%w: --site: %w", ErrConfig, err))
	}
	if err := coord.ValidName(c.Federation); err != nil {
		errs = append(errs, fmt.Errorf("%w: --federation: %w", ErrConfig, err))
	}
	if a, err := netip.ParseAddr(c.Addr); err != nil || a.IsUnspecified() {
		errs = append(errs, fmt.Errorf("%w: --addr %q: want this site's IP address", ErrConfig, c.Addr))
	}
	ports := map[int]string{}
	for _, p := range []struct {
		name string
		v    int
	}{{"--zk-port", c.ClientPort}, {"--zk-quorum-port", c.QuorumPort}, {"--zk-election-port", c.ElectionPort}, {"--iscsi-port", c.ISCSIPort}} {
		if p.v < 1 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%w: %s %d: want 1-65535", ErrConfig, p.name, p.v))
		} else if other, dup := ports[p.v]; dup {
			errs = append(errs, fmt.Errorf("%w: %s and %s are both %d", ErrConfig, other, p.name, p.v))
		}
		ports[p.v] = p.name
	}
	switch c.Datapath {
	case DatapathAuto, DatapathSystem, DatapathNetdev:
	default:
		errs = append(errs, fmt.Errorf("%w: --ovs-datapath %q: want auto, system or netdev", ErrConfig, c.Datapath))
	}
	return errors.Join(errs...)
}

func (c *Config) validateCommon() error {
	if c.Dial == nil {
		return fmt.Errorf("%w: no Dialer", ErrConfig)
	}
	if !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("%w: --state-dir %q is not an absolute path", ErrConfig, c.StateDir)
	}
	// OVS puts <bridge>.mgmt and its control sockets in <state>/ovs.
	if n := len(filepath.Join(c.StateDir, "ovs", "ovs-vswitchd.ctl")) + 8; n > 107 {
		return fmt.Errorf("%w: --state-dir %q is too long for unix socket paths (107 bytes)", ErrConfig, c.StateDir)
	}
	return nil
}

func (c *Config) skip(daemon string) bool {
	for _, d := range c.SkipDaemons {
		if d == daemon {
			return true
		}
	}
	return false
}

// Paths of the state directory.
func (c *Config) statePath() string { return filepath.Join(c.StateDir, "site.json") }

// TokenPath is the federation token's copy in the state directory.
func (c *Config) TokenPath() string { return filepath.Join(c.StateDir, "federation.token") }

// PeerConfigPath is the peer's configuration file.
func (c *Config) PeerConfigPath() string { return filepath.Join(c.StateDir, "musubi.json") }

func (c *Config) zkDir() string  { return filepath.Join(c.StateDir, "zk") }
func (c *Config) ovsDir() string { return filepath.Join(c.StateDir, "ovs") }
func (c *Config) tgtDir() string { return filepath.Join(c.StateDir, "tgt") }

// State is what the state directory remembers about the site
// (<state>/site.json).
type State struct {
	Site         string     `json:"site"`
	Federation   string     `json:"federation"`
	Addr         string     `json:"addr"`
	ServerID     int        `json:"server_id"`
	Role         coord.Role `json:"role"`
	ClientPort   int        `json:"client_port"`
	QuorumPort   int        `json:"quorum_port"`
	ElectionPort int        `json:"election_port"`
	ISCSIPort    int        `json:"iscsi_port"`
	TgtControl   int        `json:"tgt_control_port"`
	Datapath     string     `json:"ovs_datapath"`
	TickMS       int64      `json:"zk_tick_ms"`
	NoForceSync  bool       `json:"zk_no_force_sync,omitempty"`
	// Seeds are the servers the site joined through (none for Init).
	Seeds []string `json:"seeds,omitempty"`
	// Created is when the site was bootstrapped.
	Created time.Time `json:"created"`
}

// Member is the site's ZooKeeper server as an ensemble member.
func (s State) Member() coord.Member {
	return coord.Member{ID: s.ServerID, Host: s.Addr, QuorumPort: s.QuorumPort, ElectionPort: s.ElectionPort,
		Role: s.Role, ClientHost: s.Addr, ClientPort: s.ClientPort}
}

// ClientAddr is the site's ZooKeeper client address.
func (s State) ClientAddr() string {
	a, _ := netip.ParseAddr(s.Addr)
	return netip.AddrPortFrom(a, uint16(s.ClientPort)).String()
}

// ReadState reads <stateDir>/site.json (ErrNotBootstrapped when absent).
func ReadState(stateDir string) (State, error) {
	var s State
	b, err := os.ReadFile(filepath.Join(stateDir, "site.json"))
	if errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("%w: %s", ErrNotBootstrapped, stateDir)
	}
	if err != nil {
		return s, fmt.Errorf("sitebootstrap: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("sitebootstrap: %s: %w", filepath.Join(stateDir, "site.json"), err)
	}
	return s, nil
}

func writeJSON(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("sitebootstrap: %w", err)
	}
	return writeFileAtomic(path, append(b, '\n'), mode)
}

// CredentialPath is the federation credential as the peer reads it
// (zookeeper.credential_file: "user:password", mode 0600).
func (c *Config) CredentialPath() string { return filepath.Join(c.StateDir, "zk.credential") }

// ReadPeerConfig reads the peer's configuration file as site bootstrap
// merges into it: the defaults of node/config, then the file's fields,
// leniently (fields the peer does not know are ignored, so a file written
// by an older site bootstrap is read and then rewritten in the peer's
// format). strict reports whether the peer itself would accept the file's
// fields (it decodes strictly).
func ReadPeerConfig(path string) (c config.Config, strict bool, err error) {
	c = config.Default()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, false, fmt.Errorf("sitebootstrap: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return config.Default(), false, fmt.Errorf("sitebootstrap: %s is not a JSON configuration (fix it or move it away, then re-run): %w", path, err)
	}
	probe := config.Default()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return c, dec.Decode(&probe) == nil, nil
}

func portal(addr string, port int) string {
	a, _ := netip.ParseAddr(addr)
	if !a.IsValid() {
		return addr + ":" + strconv.Itoa(port)
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}
