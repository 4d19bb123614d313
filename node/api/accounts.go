package api

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// Account is the JSON record at accounts/<user> (coord.AccountPath): a
// user of the federation, whom every agent creates on its node. A
// password is only ever stored as a crypt(3) hash, and the API never
// returns it.
type Account struct {
	User  string `json:"user"`
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	Shell string `json:"shell"`
	Home  string `json:"home"`
	// Groups are supplementary group names.
	Groups []string `json:"groups,omitempty"`
	// SSHKeys are OpenSSH authorized_keys lines ("type base64 [comment]").
	SSHKeys []string `json:"ssh_keys"`
	// PasswordHash is a crypt(3) hash ($y$, $6$, $5$, $2b$, $gy$ or
	// $argon2id$ ...) or "!" (locked); empty: no password (SSH keys only).
	PasswordHash string    `json:"password_hash,omitempty"`
	Created      time.Time `json:"created"`
}

// AccountView is an account as the API returns it: never the hash.
type AccountView struct {
	User        string    `json:"user"`
	UID         int       `json:"uid"`
	GID         int       `json:"gid"`
	Shell       string    `json:"shell"`
	Home        string    `json:"home"`
	Groups      []string  `json:"groups,omitempty"`
	SSHKeys     []string  `json:"ssh_keys"`
	HasPassword bool      `json:"has_password"`
	Created     time.Time `json:"created"`
}

// View hides the password hash.
func (a Account) View() AccountView {
	return AccountView{User: a.User, UID: a.UID, GID: a.GID, Shell: a.Shell, Home: a.Home, Groups: a.Groups,
		SSHKeys: a.SSHKeys, HasPassword: a.PasswordHash != "" && a.PasswordHash != "!", Created: a.Created}
}

// Limits and defaults of accounts.
const (
	MinUID       = 1000
	MaxUID       = 1<<31 - 2
	FirstAutoUID = 10000 // where automatic uids start
	MaxSSHKeys   = 32
	maxKeyBytes  = 16 << 10
	DefaultShell = "/bin/bash"
)

var (
	userPattern  = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	groupPattern = userPattern
	hashPattern  = regexp.MustCompile(`^\$(y|gy|5|6|2[aby]|7|argon2id|argon2i)\$[./A-Za-z0-9$=,+-]{8,}$`)
	reserved     = []string{"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
		"www-data", "backup", "list", "irc", "gnats", "nobody", "systemd-network", "systemd-resolve", "messagebus",
		"sshd", "_apt", "musubi"}
)

// sshKeyTypes are the public key algorithms accepted in ssh_keys.
var sshKeyTypes = []string{
	"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
	"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
}

// ValidUser checks an account name: a POSIX-portable user name (lower
// case, 1-32 characters) that is not a system account.
func ValidUser(u string) error {
	if !userPattern.MatchString(u) {
		return fmt.Errorf("%w: user name %q: use 1-32 lower-case letters, digits, '_' or '-', starting with a letter or '_'", ErrAccount, u)
	}
	if slices.Contains(reserved, u) {
		return fmt.Errorf("%w: user name %q is a system account: choose another name", ErrAccount, u)
	}
	return nil
}

// ValidSSHKey checks one authorized_keys line: a known key type, its
// base64 blob (which must name the same type), and an optional comment.
// Options before the key type are not accepted.
func ValidSSHKey(line string) error {
	if len(line) > maxKeyBytes || strings.ContainsAny(line, "\r\n\x00") {
		return fmt.Errorf("%w: SSH key: want one line of at most %d bytes", ErrAccount, maxKeyBytes)
	}
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return fmt.Errorf("%w: SSH key: want \"TYPE BASE64 [COMMENT]\" as in id_ed25519.pub", ErrAccount)
	}
	typ := fields[0]
	if !slices.Contains(sshKeyTypes, typ) {
		return fmt.Errorf("%w: SSH key type %.40q: want one of %s (options before the key are not accepted)", ErrAccount, typ, strings.Join(sshKeyTypes, ", "))
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return fmt.Errorf("%w: SSH key (%s): the key data is not base64", ErrAccount, typ)
	}
	if len(blob) < 4 {
		return fmt.Errorf("%w: SSH key (%s): the key data is truncated", ErrAccount, typ)
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || string(blob[4:4+n]) != typ {
		return fmt.Errorf("%w: SSH key (%s): the key data is not a %s key", ErrAccount, typ, typ)
	}
	if len(blob) < int(4+n)+16 {
		return fmt.Errorf("%w: SSH key (%s): the key data is truncated", ErrAccount, typ)
	}
	return nil
}

// ValidPasswordHash accepts crypt(3) hashes of the modern schemes, or "!"
// (locked). Plain passwords never pass.
func ValidPasswordHash(h string) error {
	if h == "" || h == "!" || h == "*" || hashPattern.MatchString(h) {
		return nil
	}
	return fmt.Errorf("%w: password_hash is not a crypt(3) hash: send a hash such as the output of 'mkpasswd -m yescrypt' (plain passwords are never accepted)", ErrAccount)
}

// Normalize fills in defaults (gid = uid, shell, home) and validates the
// account. A zero UID is left for the store to allocate.
func (a *Account) Normalize() error {
	if err := ValidUser(a.User); err != nil {
		return err
	}
	if a.UID != 0 && (a.UID < MinUID || a.UID > MaxUID || a.UID == 65534) {
		return fmt.Errorf("%w: uid %d: want %d-%d (or 0 to allocate one)", ErrAccount, a.UID, MinUID, MaxUID)
	}
	if a.GID != 0 && (a.GID < MinUID || a.GID > MaxUID || a.GID == 65534) {
		return fmt.Errorf("%w: gid %d: want %d-%d (or 0 for the uid)", ErrAccount, a.GID, MinUID, MaxUID)
	}
	if a.Shell == "" {
		a.Shell = DefaultShell
	}
	if !strings.HasPrefix(a.Shell, "/") || path.Clean(a.Shell) != a.Shell || strings.ContainsAny(a.Shell, " \t:\n") {
		return fmt.Errorf("%w: shell %q: want an absolute path such as /bin/bash", ErrAccount, a.Shell)
	}
	if a.Home == "" {
		a.Home = "/home/" + a.User
	}
	if !strings.HasPrefix(a.Home, "/") || path.Clean(a.Home) != a.Home || a.Home == "/" || strings.ContainsAny(a.Home, " \t:\n") {
		return fmt.Errorf("%w: home %q: want an absolute path such as /home/%s", ErrAccount, a.Home, a.User)
	}
	for _, g := range a.Groups {
		if !groupPattern.MatchString(g) {
			return fmt.Errorf("%w: group %q: use 1-32 lower-case letters, digits, '_' or '-'", ErrAccount, g)
		}
	}
	if len(a.SSHKeys) > MaxSSHKeys {
		return fmt.Errorf("%w: %d SSH keys: at most %d", ErrAccount, len(a.SSHKeys), MaxSSHKeys)
	}
	for i, k := range a.SSHKeys {
		a.SSHKeys[i] = strings.TrimSpace(k)
		if err := ValidSSHKey(a.SSHKeys[i]); err != nil {
			return fmt.Errorf("ssh_keys[%d]: %w", i, err)
		}
	}
	if a.SSHKeys == nil {
		a.SSHKeys = []string{}
	}
	return ValidPasswordHash(a.PasswordHash)
}

// accountsMeta is the data of the accounts/ node itself: the next uid to
// allocate. Every account creation sets it with a version check, so
// concurrent creations through different peers are serialised and uids
// stay unique.
type accountsMeta struct {
	NextUID int `json:"next_uid"`
}

// ListAccounts reads every account, sorted by user.
func ListAccounts(ctx context.Context, st coord.Store) ([]Account, error) {
	users, _, err := st.Children(ctx, coord.AccountsDir)
	if errors.Is(err, coord.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("api: list accounts: %w", err)
	}
	out := make([]Account, 0, len(users))
	for _, u := range users {
		a, err := GetAccount(ctx, st, u)
		if errors.Is(err, ErrNoAccount) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// GetAccount reads accounts/<user>.
func GetAccount(ctx context.Context, st coord.Store, user string) (Account, error) {
	if coord.ValidName(user) != nil {
		return Account{}, fmt.Errorf("%w: %q", ErrNoAccount, user)
	}
	data, _, err := st.Get(ctx, coord.AccountPath(user))
	if errors.Is(err, coord.ErrNotFound) {
		return Account{}, fmt.Errorf("%w: %s", ErrNoAccount, user)
	}
	if err != nil {
		return Account{}, fmt.Errorf("api: read account %s: %w", user, err)
	}
	var a Account
	if err := json.Unmarshal(data, &a); err != nil {
		return Account{}, fmt.Errorf("api: account %s: malformed record: %w", user, err)
	}
	a.User = user
	return a, nil
}

// CreateAccount normalises a and creates accounts/<user>, allocating a
// uid when a.UID is 0. It refuses a user or uid that exists
// (ErrAccountExists).
func CreateAccount(ctx context.Context, st coord.Store, a Account, now time.Time) (Account, error) {
	if err := a.Normalize(); err != nil {
		return Account{}, err
	}
	if err := coord.EnsurePath(ctx, st, coord.AccountsDir); err != nil {
		return Account{}, fmt.Errorf("api: %w", err)
	}
	for attempt := 0; ; attempt++ {
		data, stat, err := st.Get(ctx, coord.AccountsDir)
		if err != nil {
			return Account{}, fmt.Errorf("api: read accounts: %w", err)
		}
		var meta accountsMeta
		_ = json.Unmarshal(data, &meta) // empty or foreign data: start afresh
		existing, err := ListAccounts(ctx, st)
		if err != nil {
			return Account{}, err
		}
		next := max(meta.NextUID, FirstAutoUID)
		rec := a
		for _, e := range existing {
			if e.User == rec.User {
				return Account{}, fmt.Errorf("%w: %s", ErrAccountExists, rec.User)
			}
			if rec.UID != 0 && e.UID == rec.UID {
				return Account{}, fmt.Errorf("%w: uid %d belongs to %s", ErrAccountExists, rec.UID, e.User)
			}
			if e.UID >= next {
				next = e.UID + 1
			}
		}
		if rec.UID == 0 {
			rec.UID = next
			next++
		} else if rec.UID >= next {
			next = rec.UID + 1
		}
		if rec.GID == 0 {
			rec.GID = rec.UID
		}
		rec.Created = now.UTC()
		body, err := json.Marshal(rec)
		if err != nil {
			return Account{}, err
		}
		mdata, _ := json.Marshal(accountsMeta{NextUID: next})
		_, err = st.Multi(ctx,
			&coord.SetOp{Path: coord.AccountsDir, Data: mdata, Version: stat.Version},
			&coord.CreateOp{Path: coord.AccountPath(rec.User), Data: body, Mode: coord.Persistent})
		var me *coord.MultiError
		switch {
		case err == nil:
			return rec, nil
		case errors.As(err, &me) && errors.Is(me.Err, coord.ErrExists):
			return Account{}, fmt.Errorf("%w: %s", ErrAccountExists, rec.User)
		case errors.As(err, &me) && errors.Is(me.Err, coord.ErrBadVersion) && attempt < 20:
			continue // another account was created meanwhile: re-check
		case errors.Is(err, coord.ErrConnectionLost):
			got, gerr := GetAccount(ctx, st, rec.User)
			if gerr == nil && got.Created.Equal(rec.Created) && got.UID == rec.UID {
				return got, nil
			}
			return Account{}, fmt.Errorf("api: create account %s: %w", rec.User, err)
		default:
			return Account{}, fmt.Errorf("api: create account %s: %w", rec.User, err)
		}
	}
}

// DeleteAccount removes accounts/<user>.
func DeleteAccount(ctx context.Context, st coord.Store, user string) error {
	if coord.ValidName(user) != nil {
		return fmt.Errorf("%w: %q", ErrNoAccount, user)
	}
	err := st.Delete(ctx, coord.AccountPath(user), coord.AnyVersion)
	if errors.Is(err, coord.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrNoAccount, user)
	}
	if err != nil {
		return fmt.Errorf("api: delete account %s: %w", user, err)
	}
	return nil
}
