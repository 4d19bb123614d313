package config_test

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/node/config"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func parse(t *testing.T, args ...string) *config.Flags {
	t.Helper()
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return f
}

const fileCfg = `{
  "site": "from-file",
  "zookeeper": {"servers": ["file1:2181", "file2:2181"], "session_timeout": "20s"},
  "api": {"listen": "127.0.0.1:7443"},
  "metrics": {"interval": "30s"},
  "log": {"level": "debug", "format": "text"}
}`

// Each layer overrides the one before: defaults < file < flags < env.
func TestPrecedence(t *testing.T) {
	path := writeFile(t, "peer.json", fileCfg, 0o644)

	// Defaults only (plus the required fields from env).
	c, err := config.Load(nil, env(map[string]string{"MUSUBI_SITE": "s", "MUSUBI_ZK": "z:2181"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Federation != "default" || c.ZooKeeper.SessionTimeout.D() != 10*time.Second || c.API.Socket != config.DefaultSocket || c.Log.Format != "json" {
		t.Errorf("defaults not applied: %+v", c)
	}

	// File over defaults.
	c, err = config.Load(parse(t, "--config", path), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Site != "from-file" || c.ZooKeeper.SessionTimeout.D() != 20*time.Second || c.Log.Level != "debug" ||
		strings.Join(c.ZooKeeper.Servers, ",") != "file1:2181,file2:2181" || c.Federation != "default" {
		t.Errorf("file layer: %+v", c)
	}

	// Flags over file.
	c, err = config.Load(parse(t, "--config", path, "--site", "from-flag", "--zk", "flag1:2181", "--zk", "flag2:2181", "--zk-session-timeout", "30s"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Site != "from-flag" || strings.Join(c.ZooKeeper.Servers, ",") != "flag1:2181,flag2:2181" || c.ZooKeeper.SessionTimeout.D() != 30*time.Second {
		t.Errorf("flag layer: %+v", c)
	}
	if c.Metrics.Interval.D() != 30*time.Second {
		t.Errorf("a field the flags do not touch keeps the file's value: %v", c.Metrics.Interval)
	}

	// Env over flags, and MUSUBI_CONFIG over --config.
	other := writeFile(t, "other.json", `{"site": "other-file", "zookeeper": {"servers": ["o:2181"]}, "federation": "fed2"}`, 0o644)
	c, err = config.Load(parse(t, "--config", path, "--site", "from-flag", "--log-level", "warn"),
		env(map[string]string{"MUSUBI_CONFIG": other, "MUSUBI_SITE": "from-env", "MUSUBI_ZK": "e1:2181, e2:2181"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Site != "from-env" || strings.Join(c.ZooKeeper.Servers, ",") != "e1:2181,e2:2181" || c.Federation != "fed2" || c.Log.Level != "warn" {
		t.Errorf("env layer: %+v", c)
	}
	if c.Chroot() != "/musubi/fed2" {
		t.Errorf("chroot %q", c.Chroot())
	}
}

func TestHostsAndStorageFromFlags(t *testing.T) {
	c, err := config.Load(parse(t, "--site", "s", "--zk", "z:2181", "--host", "h1:64G:32,h2:512M:2", "--storage", "st1:2T"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Hosts) != 2 || c.Hosts[0] != (config.Host{Name: "h1", MemoryMiB: 65536, VCPUs: 32}) || c.Hosts[1].MemoryMiB != 512 {
		t.Errorf("hosts %+v", c.Hosts)
	}
	if len(c.Storage) != 1 || c.Storage[0].Bytes != 2<<40 {
		t.Errorf("storage %+v", c.Storage)
	}
}

func TestBadFlagValueRejectedAtParse(t *testing.T) {
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config.RegisterFlags(fs)
	err := fs.Parse([]string{"--zk-session-timeout", "soon"})
	if err == nil || !strings.Contains(err.Error(), "zk-session-timeout") || !strings.Contains(err.Error(), "duration") {
		t.Fatalf("got %v", err)
	}
}

func TestBadEnvValueNamesVariable(t *testing.T) {
	_, err := config.Load(nil, env(map[string]string{"MUSUBI_SITE": "s", "MUSUBI_ZK": "z:2181", "MUSUBI_OVERLAY": "perhaps"}))
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Env != "MUSUBI_OVERLAY" || fe.Field != "overlay.enabled" || !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("got %v", err)
	}
}

func TestValidationNamesEveryProblem(t *testing.T) {
	path := writeFile(t, "bad.json", `{
  "site": "bad site",
  "zookeeper": {"servers": ["nohost"], "session_timeout": "1ms"},
  "api": {"listen": "0.0.0.0:7443", "tls_cert": "/c.pem"},
  "overlay": {"enabled": true, "datapath_type": "kernel"},
  "provision": {"enabled": true, "backend": "xen", "subnet": "10.0.0.0/30", "tgt": {"socket": "sock", "portal": "x"}},
  "hosts": [{"name": "h1", "memory_mib": 0, "vcpus": 1}, {"name": "h1", "memory_mib": 1, "vcpus": 1}],
  "storage": [{"name": "s1", "bytes": 1}],
  "log": {"level": "loud"}
}`, 0o644)
	_, err := config.Load(parse(t, "--config", path), nil)
	if !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`site (--site, MUSUBI_SITE): "bad site"`,
		`zookeeper.servers (--zk, MUSUBI_ZK): "nohost"`,
		`zookeeper.session_timeout`,
		`api.tls_key (--tls-key, MUSUBI_TLS_KEY): missing`,
		`overlay.datapath_type`,
		`gateway (--gateway, MUSUBI_GATEWAY): required with the overlay`,
		`hosts[0]: host "h1": memory_mib 0`,
		`hosts[1]: host "h1" is listed twice`,
		`provision.backend (--node-backend, MUSUBI_NODE_BACKEND): "xen"`,
		`provision.subnet: "10.0.0.0/30"`,
		`provision.tgt.socket: "sock"`,
		`provision.tgt.portal: "x"`,
		`log.level`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestPlainHTTPOnlyOnLoopback(t *testing.T) {
	base := map[string]string{"MUSUBI_SITE": "s", "MUSUBI_ZK": "z:2181"}
	for _, tc := range []struct {
		listen, insecure string
		ok               bool
	}{
		{"127.0.0.1:0", "", true},
		{"[::1]:7443", "", true},
		{"localhost:7443", "", true},
		{":7443", "", false},
		{"0.0.0.0:7443", "", false},
		{"0.0.0.0:7443", "true", true},
	} {
		e := map[string]string{"MUSUBI_API_LISTEN": tc.listen}
		if tc.insecure != "" {
			e["MUSUBI_API_INSECURE_HTTP"] = tc.insecure
		}
		for k, v := range base {
			e[k] = v
		}
		_, err := config.Load(nil, env(e))
		if (err == nil) != tc.ok {
			t.Errorf("listen %s insecure %q: err %v", tc.listen, tc.insecure, err)
		}
		if err != nil && !strings.Contains(err.Error(), "tls_cert") {
			t.Errorf("error does not say what to do: %v", err)
		}
	}
}

func TestMissingRequired(t *testing.T) {
	_, err := config.Load(nil, nil)
	if err == nil || !strings.Contains(err.Error(), "site (--site, MUSUBI_SITE): required") ||
		!strings.Contains(err.Error(), "zookeeper.servers (--zk, MUSUBI_ZK): required") {
		t.Fatalf("got %v", err)
	}
}

func TestFileErrorsHaveLineAndColumn(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"unknown field": {"{\n  \"site\": \"a\",\n  \"zookeper\": {}\n}", "unknown field \"zookeper\""},
		"syntax":        {"{\n  \"site\": \"a\",,\n}", ":2:"},
		"type":          {"{\n  \"site\": 7\n}", ":2:"},
		"duration":      {"{\"zookeeper\": {\"session_timeout\": 10}}", "duration string"},
		"trailing":      {"{} {}", "text after"},
	} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, "c.json", tc.body, 0o644)
			_, err := config.Load(parse(t, "--config", path), nil)
			if !errors.Is(err, config.ErrFile) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	_, err := config.Load(parse(t, "--config", filepath.Join(t.TempDir(), "missing.json")), nil)
	if !errors.Is(err, config.ErrFile) || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestExampleIsValidAndRoundTrips(t *testing.T) {
	path := writeFile(t, "example.json", config.Example, 0o644)
	c, err := config.Load(parse(t, "--config", path), nil)
	if err != nil {
		t.Fatalf("the documented example does not load: %v", err)
	}
	out := filepath.Join(t.TempDir(), "written.json")
	if err := config.Write(out, c); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("written file: %v %v", st.Mode(), err)
	}
	c2, err := config.Load(parse(t, "--config", out), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Site != c.Site || c2.ZooKeeper.SessionTimeout != c.ZooKeeper.SessionTimeout || len(c2.Hosts) != 1 || c2.Storage[0] != c.Storage[0] || c2.Overlay != c.Overlay {
		t.Errorf("round trip changed the config:\n%+v\n%+v", c, c2)
	}
}

func TestSecretFiles(t *testing.T) {
	good := writeFile(t, "cred", "peer:s3cret\n", 0o600)
	cred, err := config.ReadCredential(good)
	if err != nil || cred.User != "peer" || cred.Password != "s3cret" {
		t.Fatalf("%v %v", cred, err)
	}
	if strings.Contains(cred.String(), "s3cret") {
		t.Error("the credential prints its password")
	}

	open := writeFile(t, "cred-open", "peer:s3cret\n", 0o644)
	_, err = config.ReadCredential(open)
	if !errors.Is(err, config.ErrSecret) || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("open mode: %v", err)
	}
	for _, body := range []string{"nopassword\n", "user:\n", ":pw\n", "a:b\nc:d\n"} {
		p := writeFile(t, "bad", body, 0o600)
		if _, err := config.ReadCredential(p); !errors.Is(err, config.ErrSecret) {
			t.Errorf("%q: %v", body, err)
		}
	}
	if _, err := config.ReadSecretFile(t.TempDir()); !errors.Is(err, config.ErrSecret) {
		t.Errorf("directory accepted: %v", err)
	}
	if _, err := config.ReadSecretFile(filepath.Join(t.TempDir(), "none")); !errors.Is(err, config.ErrSecret) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "4K": 4 << 10, "512M": 512 << 20, "4G": 4 << 30, "4GiB": 4 << 30, "2T": 2 << 40, "1p": 1 << 50} {
		if got, err := config.ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-1", "G", "1.5G", "9999999P", "12X"} {
		if _, err := config.ParseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
