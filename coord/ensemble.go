package coord

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Ensemble is the membership of the coordination ensemble itself (not of
// the federation's data): which servers vote, which observe. Sites join and
// leave the ensemble through it (DESIGN.md §4: a voter per site up to
// MaxVoters, observers beyond). Changing the membership needs the
// ensemble's administrative identity; coord/zkstore implements it with
// ZooKeeper's incremental dynamic reconfiguration.
type Ensemble interface {
	// Members returns the current servers, sorted by ID, as the ensemble's
	// leader committed them (the read is synced first).
	Members(ctx context.Context) ([]Member, error)
	// AddMember adds a server. Its process must already run with a
	// configuration naming the current members plus itself, so that it can
	// sync with the leader (a voter that cannot is refused). Adding a
	// member that is already present with the same spec succeeds; an ID
	// taken by a different server fails with ErrExists (wrapped).
	AddMember(ctx context.Context, m Member) error
	// RemoveMember removes server id. Removing an absent server fails with
	// ErrNotFound (wrapped); the last voter cannot be removed
	// (ErrReconfig).
	RemoveMember(ctx context.Context, id int) error
}

// MaxVoters is how many voting members the federation's ensemble grows to;
// further sites join as observers (DESIGN.md §4).
const MaxVoters = 7

// ErrReconfig: the ensemble refused a membership change (for example no
// quorum of the new configuration is connected, the change would leave no
// voter, or reconfiguration is disabled).
var ErrReconfig = errors.New("coord: ensemble reconfiguration refused")

// Role is a member's part in the ensemble.
type Role string

// The roles of ZooKeeper's dynamic configuration.
const (
	// Participant members vote (and may lead).
	Participant Role = "participant"
	// Observer members serve clients and follow the leader without voting.
	Observer Role = "observer"
)

// Member is one server of the ensemble, as a line of ZooKeeper's dynamic
// configuration: server.<ID>=<Host>:<QuorumPort>:<ElectionPort>:<Role>;<ClientHost>:<ClientPort>.
type Member struct {
	ID           int
	Host         string // quorum and election address
	QuorumPort   int
	ElectionPort int
	Role         Role
	ClientHost   string // client address ("0.0.0.0" listens everywhere)
	ClientPort   int
}

// ClientAddr is the address clients connect to (Host when ClientHost is a
// wildcard or empty).
func (m Member) ClientAddr() string {
	h := m.ClientHost
	if h == "" || h == "0.0.0.0" || h == "::" || h == "0:0:0:0:0:0:0:0" {
		h = m.Host
	}
	return joinHostPort(h, strconv.Itoa(m.ClientPort))
}

// Spec is the value of the member's configuration line (without
// "server.<ID>=").
func (m Member) Spec() string {
	role := m.Role
	if role == "" {
		role = Participant
	}
	return fmt.Sprintf("%s:%d:%d:%s;%s", bracket(m.Host), m.QuorumPort, m.ElectionPort, role,
		joinHostPort(m.clientHost(), strconv.Itoa(m.ClientPort)))
}

func (m Member) clientHost() string {
	if m.ClientHost == "" {
		return m.Host
	}
	return m.ClientHost
}

// String is the member's whole configuration line, server.<ID>=<Spec>.
func (m Member) String() string { return fmt.Sprintf("server.%d=%s", m.ID, m.Spec()) }

// Validate reports whether the member can be written to a configuration.
func (m Member) Validate() error {
	switch {
	case m.ID < 1 || m.ID > 255*255:
		return fmt.Errorf("coord: member id %d out of range", m.ID)
	case m.Host == "" || strings.ContainsAny(m.Host, ";,= \n"):
		return fmt.Errorf("coord: member %d: bad host %q", m.ID, m.Host)
	case strings.ContainsAny(m.ClientHost, ";,= \n"):
		return fmt.Errorf("coord: member %d: bad client host %q", m.ID, m.ClientHost)
	case !validPort(m.QuorumPort) || !validPort(m.ElectionPort) || !validPort(m.ClientPort):
		return fmt.Errorf("coord: member %d: ports %d/%d/%d must be 1-65535", m.ID, m.QuorumPort, m.ElectionPort, m.ClientPort)
	case m.QuorumPort == m.ElectionPort:
		return fmt.Errorf("coord: member %d: quorum and election ports are both %d", m.ID, m.QuorumPort)
	case m.Role != "" && m.Role != Participant && m.Role != Observer:
		return fmt.Errorf("coord: member %d: unknown role %q", m.ID, m.Role)
	}
	return nil
}

func validPort(p int) bool { return p > 0 && p < 65536 }

func bracket(h string) string {
	if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
		return "[" + h + "]"
	}
	return h
}

// ParseMember parses one "server.<id>=<spec>" line of a dynamic
// configuration. The client part (";host:port" or ";port") is required.
func ParseMember(line string) (Member, error) {
	key, spec, ok := strings.Cut(strings.TrimSpace(line), "=")
	if !ok || !strings.HasPrefix(key, "server.") {
		return Member{}, fmt.Errorf("coord: %q is not a server line", line)
	}
	id, err := strconv.Atoi(strings.TrimPrefix(key, "server."))
	if err != nil {
		return Member{}, fmt.Errorf("coord: %q: bad server id", line)
	}
	m, err := parseSpec(spec)
	if err != nil {
		return Member{}, fmt.Errorf("coord: %q: %w", line, err)
	}
	m.ID = id
	if err := m.Validate(); err != nil {
		return Member{}, err
	}
	return m, nil
}

// parseSpec parses host:quorum:election[:role][;[clienthost:]clientport].
func parseSpec(spec string) (Member, error) {
	var m Member
	server, client, ok := strings.Cut(spec, ";")
	if !ok {
		return m, errors.New("no client address (want ...;host:port)")
	}
	host, rest, err := splitHost(server)
	if err != nil {
		return m, err
	}
	parts := strings.Split(rest, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return m, fmt.Errorf("want host:quorum:election[:role], got %q", server)
	}
	m.Host = host
	if m.QuorumPort, err = strconv.Atoi(parts[0]); err != nil {
		return m, fmt.Errorf("quorum port %q", parts[0])
	}
	if m.ElectionPort, err = strconv.Atoi(parts[1]); err != nil {
		return m, fmt.Errorf("election port %q", parts[1])
	}
	m.Role = Participant
	if len(parts) == 3 {
		m.Role = Role(parts[2])
	}
	if m.Role != Participant && m.Role != Observer {
		return m, fmt.Errorf("unknown role %q", m.Role)
	}
	client = strings.TrimSpace(client)
	if p, err := strconv.Atoi(client); err == nil {
		m.ClientHost, m.ClientPort = "0.0.0.0", p
		return m, nil
	}
	i := strings.LastIndex(client, ":")
	if i <= 0 {
		return m, fmt.Errorf("client address %q: want host:port", client)
	}
	ch, cp := strings.TrimSuffix(strings.TrimPrefix(client[:i], "["), "]"), client[i+1:]
	if m.ClientPort, err = strconv.Atoi(cp); err != nil {
		return m, fmt.Errorf("client port %q", cp)
	}
	m.ClientHost = ch
	return m, nil
}

// joinHostPort is net.JoinHostPort (coord does no I/O, so it does not
// import net).
func joinHostPort(host, port string) string { return bracket(host) + ":" + port }

// splitHost splits "host:rest" or "[v6]:rest".
func splitHost(s string) (host, rest string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]:")
		if end < 0 {
			return "", "", fmt.Errorf("bad address %q", s)
		}
		return s[1:end], s[end+2:], nil
	}
	host, rest, ok := strings.Cut(s, ":")
	if !ok || host == "" {
		return "", "", fmt.Errorf("bad address %q", s)
	}
	return host, rest, nil
}

// EnsembleConfig is a parsed dynamic configuration: its members and its
// version (ZooKeeper's config id, written in hexadecimal).
type EnsembleConfig struct {
	Members []Member
	Version int64
}

// ParseEnsembleConfig parses a dynamic configuration as ZooKeeper stores it
// in /zookeeper/config and its dynamic config files: server lines and a
// "version=<hex>" line; blank lines and '#' comments are ignored, and so are
// other keys. Members are sorted by ID.
func ParseEnsembleConfig(data []byte) (EnsembleConfig, error) {
	var c EnsembleConfig
	seen := map[int]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "version="):
			v, err := strconv.ParseInt(strings.TrimPrefix(line, "version="), 16, 64)
			if err != nil {
				return c, fmt.Errorf("coord: bad config version line %q", line)
			}
			c.Version = v
		case strings.HasPrefix(line, "server."):
			m, err := ParseMember(line)
			if err != nil {
				return c, err
			}
			if seen[m.ID] {
				return c, fmt.Errorf("coord: server %d listed twice", m.ID)
			}
			seen[m.ID] = true
			c.Members = append(c.Members, m)
		}
	}
	sort.Slice(c.Members, func(i, j int) bool { return c.Members[i].ID < c.Members[j].ID })
	return c, nil
}

// Voters counts the participants among members.
func Voters(members []Member) int {
	n := 0
	for _, m := range members {
		if m.Role == Participant || m.Role == "" {
			n++
		}
	}
	return n
}

// FindMember returns the member with id.
func FindMember(members []Member, id int) (Member, bool) {
	for _, m := range members {
		if m.ID == id {
			return m, true
		}
	}
	return Member{}, false
}
