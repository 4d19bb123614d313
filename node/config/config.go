// Package config is the configuration of the site peer (musubi peer):
// its fields and defaults, the JSON config file, the command-line flags and
// MUSUBI_* environment variables that override them, validation, and the
// secret files (ZooKeeper credential, API tokens) it reads.
//
// Precedence, lowest first (DESIGN.md §3): built-in defaults, then the
// config file (--config or MUSUBI_CONFIG), then command-line flags, then
// MUSUBI_* environment variables. Load applies them in that order and
// validates the result before anything starts; every problem is reported
// with the field's name in the file, its flag and its variable, and what
// to do about it.
//
// The file is JSON, decoded strictly (an unknown field is an error, so a
// typo is never silently ignored). Durations are strings such as "10s";
// see Example for a complete file. Secrets never appear in the
// configuration itself: it names files (mode 0600 or stricter) that hold
// them, read with ReadSecretFile.
package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// Config is the peer's configuration. The JSON names are those of the
// config file.
type Config struct {
	// Site is this site's name (required; a coord.ValidName).
	Site string `json:"site"`
	// Federation names the federation: its data lives under the ZooKeeper
	// chroot /musubi/<federation>. Root, when set, is the chroot instead.
	Federation string `json:"federation"`
	Root       string `json:"root,omitempty"`
	// Gateway is the site's public (WAN) address: where the other sites'
	// tunnels end. Optional unless the overlay is enabled.
	Gateway string `json:"gateway,omitempty"`
	// ZooKeeper is the coordination ensemble.
	ZooKeeper ZooKeeper `json:"zookeeper"`
	// API is the REST API server.
	API API `json:"api"`
	// Metrics tunes the federation gauges.
	Metrics Metrics `json:"metrics"`
	// Overlay is the overlay controller (optional: off by default, so a
	// peer runs without Open vSwitch).
	Overlay Overlay `json:"overlay"`
	// Provision runs the provisioner: this site's share of every virtual
	// cluster built at its window's start and torn down at its end.
	Provision Provision `json:"provision"`
	// Hosts are this site's compute hosts, registered in the federation's
	// resource timetable at start.
	Hosts []Host `json:"hosts,omitempty"`
	// Storage are this site's storage hosts, registered likewise.
	Storage []StorageHost `json:"storage,omitempty"`
	// Log configures the peer's logs.
	Log Log `json:"log"`
	// ShutdownTimeout bounds a clean shutdown (API connections drained,
	// subsystems stopped) after SIGTERM.
	ShutdownTimeout Duration `json:"shutdown_timeout"`
}

// ZooKeeper configures the peer's session with the ensemble.
type ZooKeeper struct {
	// Servers are the ensemble's client addresses (host:port), nearby
	// ones first.
	Servers []string `json:"servers"`
	// Local is this site's own server, tried first on every (re)connect.
	Local string `json:"local,omitempty"`
	// SessionTimeout is the requested session timeout.
	SessionTimeout Duration `json:"session_timeout"`
	// CredentialFile holds the federation's digest credential as
	// "user:password" (mode 0600). Empty: no credential (world ACLs).
	CredentialFile string `json:"credential_file,omitempty"`
}

// API configures the REST API server.
type API struct {
	// Listen is the TCP address of the API ("" disables it; the unix
	// socket remains). Anything but a loopback address needs TLS (TLSCert
	// and TLSKey) unless InsecureHTTP is set.
	Listen string `json:"listen,omitempty"`
	// Socket is the unix socket of the CLI on this host ("" disables it).
	// A caller connected as root (SO_PEERCRED) is admin without a token.
	Socket string `json:"socket,omitempty"`
	// TLSCert and TLSKey are the PEM files of the server's certificate
	// and key; with both set the TCP listener speaks HTTPS only.
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// TokensFile holds the API's bearer tokens as SHA-256 hashes with
	// their names and roles (mode 0600; see node/api). Empty: no token is
	// accepted, so only root on the unix socket may use the API.
	TokensFile string `json:"tokens_file,omitempty"`
	// InsecureHTTP allows plain HTTP on a non-loopback Listen address.
	InsecureHTTP bool `json:"insecure_http,omitempty"`
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes int64 `json:"max_body_bytes"`
}

// Metrics tunes the metrics subsystem.
type Metrics struct {
	// Interval is how often the federation gauges (live sites,
	// reservations by state) are refreshed from ZooKeeper.
	Interval Duration `json:"interval"`
}

// Overlay configures the overlay controller.
type Overlay struct {
	// Enabled runs the overlay controller (needs Open vSwitch).
	Enabled bool `json:"enabled,omitempty"`
	// OVSDB is the OVSDB endpoint.
	OVSDB string `json:"ovsdb,omitempty"`
	// ControllerListen is where the embedded OpenFlow controller listens
	// for the switch (host:port).
	ControllerListen string `json:"controller_listen,omitempty"`
	// Bridge is the integration bridge; DatapathType its datapath
	// ("netdev": userspace, "system": kernel).
	Bridge       string `json:"bridge,omitempty"`
	DatapathType string `json:"datapath_type,omitempty"`
	// Probe measures link RTTs with ICMP echo (needs CAP_NET_RAW) for the
	// links/ costs; without it every link has the same cost.
	Probe bool `json:"probe,omitempty"`
}

// Provision configures the provisioner (node/lifecycle through
// node/peer.LifecyclePlugin). It needs the overlay's OVSDB and bridge for
// the nodes' ports, and the site's hosts and storage hosts.
type Provision struct {
	// Enabled runs the provisioner.
	Enabled bool `json:"enabled,omitempty"`
	// StateDir holds secrets, volume clones, node state and the ZooKeeper
	// relay's sockets (default /var/lib/musubi/provision; keep it short:
	// unix sockets live under it).
	StateDir string `json:"state_dir,omitempty"`
	// Backend is the virtual node backend: "netns" (default) or "qemu".
	Backend string `json:"backend,omitempty"`
	// Accel is QEMU's accelerator: "auto" (default: KVM when usable),
	// "kvm" or "tcg".
	Accel string `json:"accel,omitempty"`
	// ImagesDir is the site's node image store (default
	// /var/lib/musubi/images).
	ImagesDir string `json:"images_dir,omitempty"`
	// Subnet addresses the nodes on their VC's network (default
	// 10.64.0.0/16).
	Subnet string `json:"subnet,omitempty"`
	// Tgt is the site's tgtd: management socket and iSCSI portal.
	Tgt TgtEndpoint `json:"tgt"`
	// VolumeBackend is how node volumes are cloned: "file" (sparse
	// clone), "qcow2" or "lvm"; empty chooses.
	VolumeBackend string `json:"volume_backend,omitempty"`
	// VolumeGroup is the LVM volume group of the "lvm" backend.
	VolumeGroup string `json:"volume_group,omitempty"`
	// Agent is the command a netns node runs (default: this binary's
	// "agent").
	Agent []string `json:"agent,omitempty"`
	// ReadyOnConsole counts a node ready on its console marker instead of
	// its agent's registration in ZooKeeper.
	ReadyOnConsole bool `json:"ready_on_console,omitempty"`
	// Parallel bounds the nodes built at once (default 4).
	Parallel int `json:"parallel,omitempty"`
	// NodePrefix starts the names of the netns nodes' namespaces (default
	// "musubi-"). Peers sharing a host (a one-machine federation) need
	// different ones: each removes namespaces with its prefix that it did
	// not make.
	NodePrefix string `json:"node_prefix,omitempty"`
}

// TgtEndpoint is a tgtd's management socket and iSCSI portal.
type TgtEndpoint struct {
	Socket string `json:"socket,omitempty"`
	Portal string `json:"portal,omitempty"`
}

// Host is a compute host of this site and its capacity.
type Host struct {
	Name      string `json:"name"`
	MemoryMiB int64  `json:"memory_mib"`
	VCPUs     int64  `json:"vcpus"`
}

// StorageHost is a storage host of this site and its capacity.
type StorageHost struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `json:"level"`
	// Format is json or text.
	Format string `json:"format"`
}

// Defaults.
const (
	DefaultFederation      = "default"
	DefaultSessionTimeout  = 10 * time.Second
	DefaultSocket          = "/run/musubi/peer.sock"
	DefaultMaxBodyBytes    = 1 << 20
	DefaultMetricsInterval = 15 * time.Second
	DefaultOVSDB           = "unix:/var/run/openvswitch/db.sock"
	DefaultOFListen        = "127.0.0.1:6653"
	DefaultBridge          = "br-int"
	DefaultDatapathType    = "netdev"
	DefaultShutdownTimeout = 10 * time.Second
)

// Default returns the built-in defaults: the lowest layer of the
// configuration.
func Default() Config {
	return Config{
		Federation: DefaultFederation,
		ZooKeeper:  ZooKeeper{SessionTimeout: Duration(DefaultSessionTimeout)},
		API:        API{Socket: DefaultSocket, MaxBodyBytes: DefaultMaxBodyBytes},
		Metrics:    Metrics{Interval: Duration(DefaultMetricsInterval)},
		Overlay: Overlay{
			OVSDB: DefaultOVSDB, ControllerListen: DefaultOFListen,
			Bridge: DefaultBridge, DatapathType: DefaultDatapathType, Probe: true,
		},
		Log:             Log{Level: "info", Format: "json"},
		ShutdownTimeout: Duration(DefaultShutdownTimeout),
	}
}

// Chroot is the ZooKeeper chroot of the federation's data: Root, or
// /musubi/<Federation>.
func (c Config) Chroot() string {
	if c.Root != "" {
		return c.Root
	}
	return "/musubi/" + c.Federation
}

// Duration is a time.Duration written as a string ("10s", "1m30s") in
// the config file.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a string such as "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"10s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// Example is a complete config file with every field, for documentation
// and for site bootstrap to start from.
const Example = `{
  "site": "site1",
  "federation": "default",
  "gateway": "192.0.2.10",
  "zookeeper": {
    "servers": ["192.0.2.10:2181", "198.51.100.20:2181", "203.0.113.30:2181"],
    "local": "192.0.2.10:2181",
    "session_timeout": "10s",
    "credential_file": "/etc/musubi/zk-credential"
  },
  "api": {
    "listen": "0.0.0.0:7443",
    "socket": "/run/musubi/peer.sock",
    "tls_cert": "/etc/musubi/tls/peer.crt",
    "tls_key": "/etc/musubi/tls/peer.key",
    "tokens_file": "/etc/musubi/tokens.json",
    "max_body_bytes": 1048576
  },
  "metrics": {"interval": "15s"},
  "overlay": {
    "enabled": true,
    "ovsdb": "unix:/var/run/openvswitch/db.sock",
    "controller_listen": "127.0.0.1:6653",
    "bridge": "br-int",
    "datapath_type": "netdev",
    "probe": true
  },
  "provision": {
    "enabled": true,
    "state_dir": "/var/lib/musubi/provision",
    "backend": "qemu",
    "accel": "auto",
    "images_dir": "/var/lib/musubi/images",
    "subnet": "10.64.0.0/16",
    "tgt": {"socket": "/var/run/tgtd/socket.0", "portal": "192.0.2.10:3260"},
    "volume_backend": "lvm",
    "volume_group": "musubi",
    "parallel": 4
  },
  "hosts": [{"name": "site1-h1", "memory_mib": 65536, "vcpus": 32}],
  "storage": [{"name": "site1-s1", "bytes": 1099511627776}],
  "log": {"level": "info", "format": "json"},
  "shutdown_timeout": "10s"
}
`
