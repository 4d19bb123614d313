package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrInvalid: a setting is malformed or inconsistent; the error is a
	// join of *FieldError, one per problem.
	ErrInvalid = errors.New("config: invalid configuration")
	// ErrFile: the config file cannot be read or decoded.
	ErrFile = errors.New("config: bad config file")
	// ErrSecret: a secret file is missing, unreadable, too open, or
	// malformed.
	ErrSecret = errors.New("config: bad secret file")
)

// FieldError is one invalid setting: the field's name in the config file,
// its flag and environment variable, and the problem with what to do.
type FieldError struct {
	Field   string // JSON path in the file, e.g. "zookeeper.servers"
	Flag    string // e.g. "--zk" ("" if the field has no flag)
	Env     string // e.g. "MUSUBI_ZK"
	Problem string
}

func (e *FieldError) Error() string {
	where := e.Field
	var alt []string
	if e.Flag != "" {
		alt = append(alt, e.Flag)
	}
	if e.Env != "" {
		alt = append(alt, e.Env)
	}
	if len(alt) > 0 {
		where += " (" + strings.Join(alt, ", ") + ")"
	}
	return "config: " + where + ": " + e.Problem
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// EnvConfig is the variable that names the config file (like --config).
const EnvConfig = "MUSUBI_CONFIG"

// setting is one configurable field reachable by flag and variable.
type setting struct {
	field, flag, env, usage string
	boolean                 bool
	set                     func(c *Config, v string) error
}

func str(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = strings.TrimSpace(v); return nil }
}

func dur(p func(*Config) *Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("want a duration such as 10s: %w", err)
		}
		*p(c) = Duration(d)
		return nil
	}
}

func boolean(p func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*p(c) = b
		return nil
	}
}

func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// settings is the table of every field reachable from the command line
// and the environment. Lists are comma-separated; a flag or variable
// replaces the file's list as a whole.
var settings = []setting{
	{field: "site", flag: "site", env: "MUSUBI_SITE", usage: "this site's name (required)", set: str(func(c *Config) *string { return &c.Site })},
	{field: "federation", flag: "federation", env: "MUSUBI_FEDERATION", usage: "federation name: its data lives under /musubi/<name> in ZooKeeper", set: str(func(c *Config) *string { return &c.Federation })},
	{field: "root", flag: "root", env: "MUSUBI_ROOT", usage: "ZooKeeper chroot to use instead of /musubi/<federation>", set: str(func(c *Config) *string { return &c.Root })},
	{field: "gateway", flag: "gateway", env: "MUSUBI_GATEWAY", usage: "this site's public (WAN) IP address", set: str(func(c *Config) *string { return &c.Gateway })},
	{field: "zookeeper.servers", flag: "zk", env: "MUSUBI_ZK", usage: "ZooKeeper servers, comma-separated host:port (nearby first)", set: func(c *Config, v string) error {
		c.ZooKeeper.Servers = list(v)
		return nil
	}},
	{field: "zookeeper.local", flag: "zk-local", env: "MUSUBI_ZK_LOCAL", usage: "this site's own ZooKeeper server (host:port), tried first", set: str(func(c *Config) *string { return &c.ZooKeeper.Local })},
	{field: "zookeeper.session_timeout", flag: "zk-session-timeout", env: "MUSUBI_ZK_SESSION_TIMEOUT", usage: "ZooKeeper session timeout", set: dur(func(c *Config) *Duration { return &c.ZooKeeper.SessionTimeout })},
	{field: "zookeeper.credential_file", flag: "zk-credential-file", env: "MUSUBI_ZK_CREDENTIAL_FILE", usage: "file (mode 0600) holding the federation's ZooKeeper credential user:password", set: str(func(c *Config) *string { return &c.ZooKeeper.CredentialFile })},
	{field: "api.listen", flag: "api-listen", env: "MUSUBI_API_LISTEN", usage: "TCP address of the REST API (empty: unix socket only)", set: str(func(c *Config) *string { return &c.API.Listen })},
	{field: "api.socket", flag: "api-socket", env: "MUSUBI_API_SOCKET", usage: "unix socket of the REST API for the CLI on this host (empty: none)", set: str(func(c *Config) *string { return &c.API.Socket })},
	{field: "api.tls_cert", flag: "tls-cert", env: "MUSUBI_TLS_CERT", usage: "PEM certificate of the API's HTTPS listener", set: str(func(c *Config) *string { return &c.API.TLSCert })},
	{field: "api.tls_key", flag: "tls-key", env: "MUSUBI_TLS_KEY", usage: "PEM key of the API's HTTPS listener", set: str(func(c *Config) *string { return &c.API.TLSKey })},
	{field: "api.tokens_file", flag: "tokens-file", env: "MUSUBI_TOKENS_FILE", usage: "file (mode 0600) of API token hashes, names and roles", set: str(func(c *Config) *string { return &c.API.TokensFile })},
	{field: "api.insecure_http", flag: "api-insecure-http", env: "MUSUBI_API_INSECURE_HTTP", boolean: true, usage: "allow plain HTTP on a non-loopback API address", set: boolean(func(c *Config) *bool { return &c.API.InsecureHTTP })},
	{field: "api.max_body_bytes", flag: "api-max-body", env: "MUSUBI_API_MAX_BODY", usage: "largest request body accepted (e.g. 1M)", set: func(c *Config, v string) error {
		n, err := ParseSize(v)
		if err != nil {
			return err
		}
		c.API.MaxBodyBytes = n
		return nil
	}},
	{field: "metrics.interval", flag: "metrics-interval", env: "MUSUBI_METRICS_INTERVAL", usage: "refresh interval of the federation gauges", set: dur(func(c *Config) *Duration { return &c.Metrics.Interval })},
	{field: "overlay.enabled", flag: "overlay", env: "MUSUBI_OVERLAY", boolean: true, usage: "run the overlay controller (needs Open vSwitch)", set: boolean(func(c *Config) *bool { return &c.Overlay.Enabled })},
	{field: "overlay.ovsdb", flag: "ovsdb", env: "MUSUBI_OVSDB", usage: "OVSDB endpoint (unix:PATH or tcp:HOST:PORT)", set: str(func(c *Config) *string { return &c.Overlay.OVSDB })},
	{field: "overlay.controller_listen", flag: "of-listen", env: "MUSUBI_OF_LISTEN", usage: "address of the embedded OpenFlow controller", set: str(func(c *Config) *string { return &c.Overlay.ControllerListen })},
	{field: "overlay.bridge", flag: "bridge", env: "MUSUBI_BRIDGE", usage: "the integration bridge", set: str(func(c *Config) *string { return &c.Overlay.Bridge })},
	{field: "overlay.datapath_type", flag: "datapath-type", env: "MUSUBI_DATAPATH_TYPE", usage: "bridge datapath: netdev (userspace) or system (kernel)", set: str(func(c *Config) *string { return &c.Overlay.DatapathType })},
	{field: "overlay.probe", flag: "probe", env: "MUSUBI_PROBE", boolean: true, usage: "measure link RTTs with ICMP echo for link costs", set: boolean(func(c *Config) *bool { return &c.Overlay.Probe })},
	{field: "provision.enabled", flag: "provision", env: "MUSUBI_PROVISION", boolean: true, usage: "run the provisioner: build this site's virtual nodes in their windows (needs the overlay, hosts and tgtd)", set: boolean(func(c *Config) *bool { return &c.Provision.Enabled })},
	{field: "provision.backend", flag: "node-backend", env: "MUSUBI_NODE_BACKEND", usage: "virtual node backend: netns or qemu", set: str(func(c *Config) *string { return &c.Provision.Backend })},
	{field: "provision.state_dir", flag: "provision-dir", env: "MUSUBI_PROVISION_DIR", usage: "the provisioner's state directory", set: str(func(c *Config) *string { return &c.Provision.StateDir })},
	{field: "hosts", flag: "host", env: "MUSUBI_HOSTS", usage: "compute hosts of this site, NAME:MEMORY:VCPUS (memory like 64G), comma-separated", set: func(c *Config, v string) error {
		var hs []Host
		for _, item := range list(v) {
			parts := strings.Split(item, ":")
			if len(parts) != 3 {
				return fmt.Errorf("host %q: want NAME:MEMORY:VCPUS, e.g. h1:64G:32", item)
			}
			mem, err := ParseSize(parts[1])
			if err != nil {
				return fmt.Errorf("host %q: memory: %w", item, err)
			}
			cpus, err := strconv.ParseInt(parts[2], 10, 64)
			if err != nil {
				return fmt.Errorf("host %q: vCPUs: want a whole number", item)
			}
			hs = append(hs, Host{Name: parts[0], MemoryMiB: mem >> 20, VCPUs: cpus})
		}
		c.Hosts = hs
		return nil
	}},
	{field: "storage", flag: "storage", env: "MUSUBI_STORAGE", usage: "storage hosts of this site, NAME:SIZE (e.g. s1:2T), comma-separated", set: func(c *Config, v string) error {
		var ss []StorageHost
		for _, item := range list(v) {
			name, size, ok := strings.Cut(item, ":")
			if !ok {
				return fmt.Errorf("storage host %q: want NAME:SIZE, e.g. s1:2T", item)
			}
			n, err := ParseSize(size)
			if err != nil {
				return fmt.Errorf("storage host %q: %w", item, err)
			}
			ss = append(ss, StorageHost{Name: name, Bytes: n})
		}
		c.Storage = ss
		return nil
	}},
	{field: "log.level", flag: "log-level", env: "MUSUBI_LOG_LEVEL", usage: "log level: debug, info, warn or error", set: str(func(c *Config) *string { return &c.Log.Level })},
	{field: "log.format", flag: "log-format", env: "MUSUBI_LOG_FORMAT", usage: "log format: json or text", set: str(func(c *Config) *string { return &c.Log.Format })},
	{field: "shutdown_timeout", flag: "shutdown-timeout", env: "MUSUBI_SHUTDOWN_TIMEOUT", usage: "bound on a clean shutdown after SIGTERM", set: dur(func(c *Config) *Duration { return &c.ShutdownTimeout })},
}

func settingOf(field string) *setting {
	for i := range settings {
		if settings[i].field == field {
			return &settings[i]
		}
	}
	return nil
}

// Flags holds the values given on the command line, in order, for Load.
// Create it with RegisterFlags before parsing.
type Flags struct {
	configPath string
	given      map[string][]string // by field
	order      []string            // fields in first-seen order
}

// RegisterFlags defines --config and one flag per setting on fs. Flag
// defaults are not shown as values: a flag only counts when it is given.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{given: map[string][]string{}}
	fs.Func("config", "config file (JSON; env "+EnvConfig+")", func(v string) error {
		f.configPath = v
		return nil
	})
	for i := range settings {
		s := &settings[i]
		usage := s.usage + " (file: " + s.field + "; env " + s.env + ")"
		record := func(v string) error {
			probe := Default()
			if err := s.set(&probe, v); err != nil {
				return err
			}
			if _, ok := f.given[s.field]; !ok {
				f.order = append(f.order, s.field)
			}
			f.given[s.field] = append(f.given[s.field], v)
			return nil
		}
		if s.boolean {
			fs.BoolFunc(s.flag, usage, record)
		} else {
			fs.Func(s.flag, usage, record)
		}
	}
	return f
}

// EnvNames lists every environment variable Load reads, for help texts.
func EnvNames() []string {
	out := []string{EnvConfig}
	for _, s := range settings {
		out = append(out, s.env)
	}
	return out
}

// Load builds the configuration: defaults, then the config file (the
// path from MUSUBI_CONFIG, else --config; none: no file), then the flags
// in f (nil: none), then the MUSUBI_* variables from lookupEnv (nil: none),
// and validates it. Errors name the field and what to do.
func Load(f *Flags, lookupEnv func(string) (string, bool)) (Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	if f == nil {
		f = &Flags{given: map[string][]string{}}
	}
	c := Default()
	path := f.configPath
	if v, ok := lookupEnv(EnvConfig); ok && v != "" {
		path = v
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("%w: %w (fix the path given by --config or %s)", ErrFile, err, EnvConfig)
		}
		if err := decodeFile(path, data, &c); err != nil {
			return c, err
		}
	}
	var errs []error
	for _, field := range f.order {
		s := settingOf(field)
		if err := s.set(&c, strings.Join(f.given[field], ",")); err != nil {
			errs = append(errs, &FieldError{Field: s.field, Flag: "--" + s.flag, Problem: err.Error()})
		}
	}
	for _, s := range settings {
		v, ok := lookupEnv(s.env)
		if !ok {
			continue
		}
		if err := s.set(&c, v); err != nil {
			errs = append(errs, &FieldError{Field: s.field, Env: s.env, Problem: err.Error()})
		}
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, c.Validate()
}

// decodeFile decodes a config file strictly, reporting line and column.
func decodeFile(path string, data []byte, c *Config) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(c)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return fmt.Errorf("%w: %s: text after the JSON object", ErrFile, path)
		}
		return nil
	}
	off := dec.InputOffset()
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	line, col := lineCol(data, off)
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field") {
		msg = strings.TrimPrefix(msg, "json: ") + " (check its spelling against 'musubi peer --example-config')"
	}
	return fmt.Errorf("%w: %s:%d:%d: %s", ErrFile, path, line, col, msg)
}

func lineCol(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line, col = 1, 1
	for _, b := range data[:off] {
		if b == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// Write saves c as a config file at path (atomically: a temporary file
// renamed into place), mode 0644: the configuration holds no secret.
func Write(path string, c Config) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), ".musubi-config-*")
	if err != nil {
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	return nil
}

// ParseSize parses a size in bytes with an optional binary suffix: K, M,
// G, T, P (powers of 1024; an optional trailing "i" or "B" is accepted,
// e.g. "4G", "4GiB", "512M", "1048576").
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(s), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		case 'P':
			mult = 1 << 50
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a non-negative number with an optional K, M, G, T or P suffix", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}
