package coord

import (
	"strings"
	"testing"
)

func TestParseEnsembleConfig(t *testing.T) {
	data := "server.2=10.0.0.2:2888:3888:observer;0.0.0.0:2181\n" +
		"server.1=10.0.0.1:2888:3888:participant;10.0.0.1:2181\n" +
		"server.3=[fd00::3]:2888:3888;2182\n" +
		"version=10000000a\n"
	c, err := ParseEnsembleConfig([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 0x10000000a {
		t.Errorf("version %x", c.Version)
	}
	if len(c.Members) != 3 || c.Members[0].ID != 1 || c.Members[1].ID != 2 || c.Members[2].ID != 3 {
		t.Fatalf("members %+v", c.Members)
	}
	want := []Member{
		{ID: 1, Host: "10.0.0.1", QuorumPort: 2888, ElectionPort: 3888, Role: Participant, ClientHost: "10.0.0.1", ClientPort: 2181},
		{ID: 2, Host: "10.0.0.2", QuorumPort: 2888, ElectionPort: 3888, Role: Observer, ClientHost: "0.0.0.0", ClientPort: 2181},
		{ID: 3, Host: "fd00::3", QuorumPort: 2888, ElectionPort: 3888, Role: Participant, ClientHost: "0.0.0.0", ClientPort: 2182},
	}
	for i, m := range c.Members {
		if m != want[i] {
			t.Errorf("member %d = %+v, want %+v", i, m, want[i])
		}
	}
	if got := c.Members[1].ClientAddr(); got != "10.0.0.2:2181" {
		t.Errorf("ClientAddr %q", got)
	}
	if got := c.Members[2].ClientAddr(); got != "[fd00::3]:2182" {
		t.Errorf("ClientAddr %q", got)
	}
	if got := c.Members[0].String(); got != "server.1=10.0.0.1:2888:3888:participant;10.0.0.1:2181" {
		t.Errorf("String %q", got)
	}
	if Voters(c.Members) != 2 {
		t.Errorf("voters %d", Voters(c.Members))
	}
	// Round trip.
	for _, m := range c.Members {
		back, err := ParseMember(m.String())
		if err != nil || back != m {
			t.Errorf("round trip %q: %+v, %v", m.String(), back, err)
		}
	}
}

func TestParseEnsembleConfigErrors(t *testing.T) {
	for _, bad := range []string{
		"server.x=1.2.3.4:1:2;3",
		"server.1=1.2.3.4:1:2",
		"server.1=1.2.3.4:1:2:boss;1.2.3.4:3",
		"server.1=1.2.3.4:1:2;1.2.3.4:3\nserver.1=1.2.3.5:1:2;1.2.3.5:3",
		"version=zz",
		"server.1=1.2.3.4:1:1;1.2.3.4:3",
	} {
		if _, err := ParseEnsembleConfig([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParseMember(f *testing.F) {
	f.Add("server.1=10.0.0.1:2888:3888:participant;10.0.0.1:2181")
	f.Add("server.3=[fd00::3]:2888:3888;2182")
	f.Fuzz(func(t *testing.T, line string) {
		m, err := ParseMember(line)
		if err != nil {
			return
		}
		if strings.ContainsAny(line, "\n") {
			return
		}
		back, err := ParseMember(m.String())
		if err != nil || back != m {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", line, m, m.String(), back, err)
		}
	})
}
