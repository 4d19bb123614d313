package nodesync

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
)

// Sentinel errors.
var (
	// ErrBadRecord: a record in ZooKeeper is malformed or unsafe; it is
	// skipped (and logged), never applied.
	ErrBadRecord = errors.New("nodesync: bad record")
	// ErrConfig: the Config is invalid.
	ErrConfig = errors.New("nodesync: invalid configuration")
	// ErrMalformedFile: a passwd, group or shadow file has a line that
	// would be unsafe to rewrite; nothing is written.
	ErrMalformedFile = errors.New("nodesync: malformed account file")
	// ErrLocked: the account files' lock could not be taken in time.
	ErrLocked = errors.New("nodesync: account files locked")
)

// HostRecord is the JSON record at hosts/<name> (coord.HostPath) and
// vc/<vc>/hosts/<name>: one address with its names. Name defaults to the
// record's node name.
type HostRecord struct {
	Name    string     `json:"name,omitempty"`
	IP      netip.Addr `json:"ip"`
	Aliases []string   `json:"aliases,omitempty"`
}

// HostEntry is one line of the managed block of /etc/hosts.
type HostEntry struct {
	IP    netip.Addr
	Names []string // the name first, then aliases
	// Source is the directory the entry came from.
	Source string
}

// hostLabel is a host name in /etc/hosts: letters, digits, '-', '_' and
// '.', 1-253 characters, no empty label.
var hostLabel = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})$`)

// ValidHostName checks a name for /etc/hosts.
func ValidHostName(n string) error {
	if len(n) == 0 || len(n) > 253 {
		return fmt.Errorf("%w: host name %q: want 1-253 characters", ErrBadRecord, n)
	}
	for _, l := range strings.Split(n, ".") {
		if !hostLabel.MatchString(l) {
			return fmt.Errorf("%w: host name %q: want dot-separated labels of letters, digits, '-' and '_'", ErrBadRecord, n)
		}
	}
	return nil
}

// DecodeHostRecord decodes and checks the record stored at <dir>/<name>.
func DecodeHostRecord(name string, data []byte) (HostRecord, error) {
	var r HostRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%w: host %s: %v", ErrBadRecord, name, err)
	}
	if r.Name == "" {
		r.Name = name
	}
	if !r.IP.IsValid() {
		return r, fmt.Errorf("%w: host %s: no ip", ErrBadRecord, name)
	}
	r.IP = r.IP.Unmap()
	for _, n := range append([]string{r.Name}, r.Aliases...) {
		if err := ValidHostName(n); err != nil {
			return r, err
		}
	}
	return r, nil
}

// PutHost writes the host record r at dir/<r.Name> (dir: coord.HostsDir
// or coord.VCHostsDir), creating or replacing it. The directory must
// exist.
func PutHost(ctx context.Context, st coord.Store, dir string, r HostRecord) error {
	if err := coord.ValidName(r.Name); err != nil {
		return fmt.Errorf("nodesync: put host: %w", err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := DecodeHostRecord(r.Name, data); err != nil {
		return err
	}
	p := coord.Join(dir, r.Name)
	for range 3 {
		_, err := st.Set(ctx, p, data, coord.AnyVersion)
		if !errors.Is(err, coord.ErrNotFound) {
			return err
		}
		_, err = st.Create(ctx, p, data, coord.Persistent, nil)
		if !errors.Is(err, coord.ErrExists) {
			return err
		}
	}
	return fmt.Errorf("nodesync: put host %s: created and deleted concurrently", p)
}

// User is an account as a node applies it.
type User struct {
	Name  string
	UID   int
	GID   int
	Home  string
	Shell string
	// Groups are supplementary group names.
	Groups []string
	// PasswordHash is a crypt(3) hash, "!" (locked) or "" (no password:
	// SSH keys only, written as "*").
	PasswordHash string
	// SSHKeys are authorized_keys lines.
	SSHKeys []string
}

// String never prints the password hash.
func (u User) String() string {
	return fmt.Sprintf("%s(uid %d, gid %d, %s, %d keys)", u.Name, u.UID, u.GID, u.Home, len(u.SSHKeys))
}

// accountRecord is the record node/api writes at accounts/<user> (its
// Account type; the test TestAccountRecordMatchesAPI keeps them in step).
// It is decoded here rather than imported so that the agent does not link
// the peer's API server.
type accountRecord struct {
	User         string   `json:"user"`
	UID          int      `json:"uid"`
	GID          int      `json:"gid"`
	Shell        string   `json:"shell"`
	Home         string   `json:"home"`
	Groups       []string `json:"groups"`
	SSHKeys      []string `json:"ssh_keys"`
	PasswordHash string   `json:"password_hash"`
}

// Limits of accounts a node accepts; they repeat node/api's, so that a
// record that did not come through the API (anyone holding the federation
// credential can write one) cannot create a system account.
const (
	MinUID = 1000
	MaxUID = 1<<31 - 2
)

var (
	userPattern = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	hashPattern = regexp.MustCompile(`^\$(y|gy|5|6|2[aby]|7|argon2id|argon2i)\$[./A-Za-z0-9$=,+-]{8,}$`)
	reserved    = []string{"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
		"www-data", "backup", "list", "irc", "gnats", "nobody", "systemd-network", "systemd-resolve", "messagebus",
		"sshd", "_apt", "musubi"}
	sshKeyTypes = []string{"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
		"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"}
)

// DecodeAccount decodes and checks the record at <dir>/<name>.
func DecodeAccount(name string, data []byte) (User, error) {
	var r accountRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return User{}, fmt.Errorf("%w: account %s: %v", ErrBadRecord, name, err)
	}
	if r.User != "" && r.User != name {
		return User{}, fmt.Errorf("%w: account %s names user %q", ErrBadRecord, name, r.User)
	}
	u := User{Name: name, UID: r.UID, GID: r.GID, Home: r.Home, Shell: r.Shell, Groups: r.Groups,
		PasswordHash: r.PasswordHash, SSHKeys: r.SSHKeys}
	if u.GID == 0 {
		u.GID = u.UID
	}
	if u.Home == "" {
		u.Home = "/home/" + name
	}
	if u.Shell == "" {
		u.Shell = "/bin/bash"
	}
	return u, ValidateUser(u)
}

// ValidateUser checks that u is safe to write into passwd, group, shadow
// and authorized_keys: a portable, non-system name, uid and gid in
// MinUID-MaxUID, absolute clean paths, a crypt(3) hash, one-line SSH keys
// of known types. Errors never quote the hash.
func ValidateUser(u User) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: account %s: %s", ErrBadRecord, u.Name, fmt.Sprintf(format, a...))
	}
	if !userPattern.MatchString(u.Name) || slices.Contains(reserved, u.Name) {
		return bad("not a valid non-system user name")
	}
	for _, id := range []int{u.UID, u.GID} {
		if id < MinUID || id > MaxUID || id == 65534 {
			return bad("uid/gid %d outside %d-%d", id, MinUID, MaxUID)
		}
	}
	for _, p := range []string{u.Home, u.Shell} {
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" || strings.ContainsAny(p, ": \t\r\n,\x00") {
			return bad("path %q is not an absolute clean path", p)
		}
	}
	for _, g := range u.Groups {
		if !userPattern.MatchString(g) {
			return bad("group %q is not a valid group name", g)
		}
	}
	if h := u.PasswordHash; h != "" && h != "!" && h != "*" && !hashPattern.MatchString(h) {
		return bad("password_hash is not a crypt(3) hash")
	}
	for i, k := range u.SSHKeys {
		if err := validSSHKey(k); err != nil {
			return bad("ssh_keys[%d]: %v", i, err)
		}
	}
	return nil
}

// validSSHKey accepts "TYPE BASE64 [COMMENT]" on one line, with a key
// blob naming the same type (no options before the key).
func validSSHKey(line string) error {
	if len(line) > 16<<10 || strings.ContainsAny(line, "\r\n\x00") {
		return errors.New("want one line")
	}
	f := strings.Fields(line)
	if len(f) < 2 || !slices.Contains(sshKeyTypes, f[0]) {
		return errors.New("want TYPE BASE64 [COMMENT] with a known key type")
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(blob) < 4 {
		return errors.New("key data is not base64")
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || string(blob[4:4+n]) != f[0] {
		return errors.New("key data does not match its type")
	}
	return nil
}
