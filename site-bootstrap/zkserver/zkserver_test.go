package zkserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

func testConfig(t *testing.T) Config {
	dir := t.TempDir()
	return Config{
		Dir: filepath.Join(dir, "zk"),
		ID:  2,
		Members: []coord.Member{
			{ID: 2, Host: "10.0.0.2", QuorumPort: 2888, ElectionPort: 3888, Role: coord.Participant, ClientHost: "10.0.0.2", ClientPort: 2181},
			{ID: 1, Host: "10.0.0.1", QuorumPort: 2888, ElectionPort: 3888, Role: coord.Participant, ClientHost: "10.0.0.1", ClientPort: 2181},
		},
		TickTime:    time.Second,
		SuperDigest: "musubi-super:abc=",
	}
}

func TestWriteIsIdempotent(t *testing.T) {
	c := testConfig(t)
	if d := c.FileState(); !strings.Contains(d, "no zoo.cfg") || !strings.Contains(d, "myid") {
		t.Fatalf("FileState of nothing = %q", d)
	}
	if err := c.Write(); err != nil {
		t.Fatal(err)
	}
	if d := c.FileState(); d != "" {
		t.Fatalf("FileState after Write = %q", d)
	}
	static, _ := os.ReadFile(c.StaticPath())
	for _, want := range []string{"reconfigEnabled=true\n", "standaloneEnabled=false\n", "tickTime=1000\n",
		"DigestAuthenticationProvider.superDigest=musubi-super:abc=\n", "dynamicConfigFile=" + c.DynamicPath() + "\n", "dataDir=" + c.DataDir() + "\n"} {
		if !strings.Contains(string(static), want) {
			t.Errorf("zoo.cfg lacks %q:\n%s", want, static)
		}
	}
	if strings.Contains(string(static), "forceSync") {
		t.Errorf("zoo.cfg turns off forceSync by default:\n%s", static)
	}
	dyn, _ := os.ReadFile(c.DynamicPath())
	want := "server.1=10.0.0.1:2888:3888:participant;10.0.0.1:2181\nserver.2=10.0.0.2:2888:3888:participant;10.0.0.2:2181\n"
	if string(dyn) != want {
		t.Errorf("dynamic config:\n%s\nwant\n%s", dyn, want)
	}
	if st, _ := os.Stat(c.StaticPath()); st.Mode().Perm() != 0o600 {
		t.Errorf("zoo.cfg mode %v", st.Mode().Perm())
	}
	st1, _ := os.Stat(c.StaticPath())
	if err := c.Write(); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(c.StaticPath())
	if !st1.ModTime().Equal(st2.ModTime()) {
		t.Error("a second Write rewrote zoo.cfg")
	}
	// A changed setting is noticed and repaired.
	c.TickTime = 2 * time.Second
	if d := c.FileState(); d != "zoo.cfg tickTime" {
		t.Errorf("FileState after a change = %q", d)
	}
	if err := c.Write(); err != nil {
		t.Fatal(err)
	}
	if d := c.FileState(); d != "" {
		t.Errorf("FileState after repair = %q", d)
	}
}

func TestStartedServerKeepsItsMembership(t *testing.T) {
	c := testConfig(t)
	if err := c.Write(); err != nil {
		t.Fatal(err)
	}
	// Simulate a server that ran and was reconfigured: a snapshot exists
	// and zoo.cfg names a versioned dynamic file.
	if err := os.MkdirAll(filepath.Join(c.DataDir(), "version-2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.DataDir(), "version-2", "snapshot.0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	versioned := c.DynamicPath() + ".100000003"
	if err := os.WriteFile(versioned, []byte("server.1=10.0.0.1:2888:3888:participant;10.0.0.1:2181\nversion=100000003\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	static, _ := os.ReadFile(c.StaticPath())
	static = []byte(strings.Replace(string(static), "dynamicConfigFile="+c.DynamicPath(), "dynamicConfigFile="+versioned, 1))
	if err := os.WriteFile(c.StaticPath(), static, 0o644); err != nil {
		t.Fatal(err)
	}
	if d := c.FileState(); d != "" {
		t.Fatalf("FileState of a started server = %q", d)
	}
	c.TickTime = 3 * time.Second
	if err := c.Write(); err != nil {
		t.Fatal(err)
	}
	static, _ = os.ReadFile(c.StaticPath())
	if !strings.Contains(string(static), "dynamicConfigFile="+versioned+"\n") || !strings.Contains(string(static), "tickTime=3000") {
		t.Errorf("Write of a started server:\n%s", static)
	}
}

func TestCommandAndUnit(t *testing.T) {
	c := testConfig(t)
	argv := c.Command("/usr/bin/java", "/a.jar:/b.jar")
	line := strings.Join(argv, " ")
	for _, want := range []string{"-Dlog4j.configuration=file:" + c.Log4jPath(), "-cp /a.jar:/b.jar", MainClass + " " + c.StaticPath(), "-Xmx256m"} {
		if !strings.Contains(line, want) {
			t.Errorf("command lacks %q: %s", want, line)
		}
	}
	if strings.Contains(line, "superDigest") {
		t.Errorf("the super digest is on the command line: %s", line)
	}
	if !strings.Contains(line, c.Marker()) {
		t.Error("marker not in the command line")
	}
	unit := c.SystemdUnit("/usr/bin/java", "/a.jar", "musubi ZooKeeper")
	for _, want := range []string{"[Service]", "ExecStart=/usr/bin/java ", "Restart=on-failure", "WantedBy=multi-user.target"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
}

func TestValidate(t *testing.T) {
	c := testConfig(t)
	c.ID = 3
	if err := c.Validate(); err == nil {
		t.Error("a server outside its members validated")
	}
	c = testConfig(t)
	c.Dir = "relative"
	if err := c.Validate(); err == nil {
		t.Error("a relative directory validated")
	}
}

func TestParseMode(t *testing.T) {
	if m := ParseMode("Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n"); m != "follower" {
		t.Errorf("mode %q", m)
	}
	if m := ParseMode("This ZooKeeper instance is not currently serving requests\n"); m != "" || Serving(m) {
		t.Errorf("mode %q", m)
	}
}
