package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/config"
)

// Role is what a principal may do (see the package documentation).
type Role string

// The roles.
const (
	// RoleAdmin may do everything.
	RoleAdmin Role = "admin"
	// RoleProvider may reserve VCs, cancel and release its own, and read
	// the federation, every reservation and the accounts.
	RoleProvider Role = "provider"
	// RoleUser may read the federation and its own VCs and their jobs.
	RoleUser Role = "user"
)

// Principal is who made a request.
type Principal struct {
	Name string
	Role Role
	// VCs are the VCs a user may read besides those it owns (from its
	// token entry).
	VCs []string
	// Via says how it was identified: "token" or "socket" (root on the
	// unix socket).
	Via string
}

type principalKey struct{}

// PrincipalFrom returns the principal of an authenticated request's
// context.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// TokenEntry is one entry of the tokens file: the SHA-256 hash (hex) of a
// bearer token, and the name and role it authenticates as. The token
// itself is never stored.
type TokenEntry struct {
	Name   string   `json:"name"`
	Role   Role     `json:"role"`
	SHA256 string   `json:"sha256"`
	VCs    []string `json:"vcs,omitempty"`
}

// TokensFile is the JSON content of the tokens file:
//
//	{"tokens": [{"name": "alice", "role": "provider", "sha256": "<64 hex digits>"}]}
type TokensFile struct {
	Tokens []TokenEntry `json:"tokens"`
}

// Authenticator checks bearer tokens against the hashes of a tokens file.
// It is immutable and safe for concurrent use.
type Authenticator struct {
	entries []authEntry
}

type authEntry struct {
	hash []byte // 32 bytes
	p    Principal
}

// ParseTokens parses and checks a tokens file's content. Errors never
// quote the file's content.
func ParseTokens(data []byte) (*Authenticator, error) {
	var tf TokensFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tf); err != nil {
		return nil, fmt.Errorf("%w: tokens file: not a JSON object {\"tokens\": [...]}: %v", ErrTokens, syntaxOnly(err))
	}
	a := &Authenticator{}
	seen := map[string]bool{}
	for i, e := range tf.Tokens {
		if coord.ValidName(e.Name) != nil {
			return nil, fmt.Errorf("%w: tokens[%d]: name %q: use 1-63 letters, digits, '.', '_' or '-'", ErrTokens, i, e.Name)
		}
		switch e.Role {
		case RoleAdmin, RoleProvider, RoleUser:
		default:
			return nil, fmt.Errorf("%w: tokens[%d] (%s): role %q: want admin, provider or user", ErrTokens, i, e.Name, e.Role)
		}
		h, err := hex.DecodeString(e.SHA256)
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("%w: tokens[%d] (%s): sha256 is not 64 hex digits (make one with 'musubi peer token')", ErrTokens, i, e.Name)
		}
		if seen[string(h)] {
			return nil, fmt.Errorf("%w: tokens[%d] (%s): the same token hash is listed twice", ErrTokens, i, e.Name)
		}
		seen[string(h)] = true
		for _, vc := range e.VCs {
			if coord.ValidName(vc) != nil {
				return nil, fmt.Errorf("%w: tokens[%d] (%s): VC %q: bad name", ErrTokens, i, e.Name, vc)
			}
		}
		a.entries = append(a.entries, authEntry{hash: h, p: Principal{Name: e.Name, Role: e.Role, VCs: slices.Clone(e.VCs), Via: "token"}})
	}
	return a, nil
}

// syntaxOnly keeps a JSON error's kind without any quoted content.
func syntaxOnly(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	msg := err.Error()
	if i := strings.Index(msg, "unknown field"); i >= 0 {
		return msg[i:]
	}
	return "malformed"
}

// LoadTokens reads a tokens file (mode 0600 or stricter).
func LoadTokens(path string) (*Authenticator, error) {
	data, err := config.ReadSecretFile(path)
	if err != nil {
		return nil, err
	}
	a, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// Len is the number of tokens.
func (a *Authenticator) Len() int {
	if a == nil {
		return 0
	}
	return len(a.entries)
}

// Check returns the principal of a bearer token. It hashes the token and
// compares the hash with every entry in constant time, whichever matches.
func (a *Authenticator) Check(token string) (Principal, bool) {
	if a == nil || token == "" {
		return Principal{}, false
	}
	sum := sha256.Sum256([]byte(token))
	var found Principal
	ok := 0
	for _, e := range a.entries {
		m := subtle.ConstantTimeCompare(sum[:], e.hash)
		if m == 1 {
			found = e.p
		}
		ok |= m
	}
	return found, ok == 1
}

// HashToken is the tokens file's hash of a token: hex SHA-256.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns a fresh random bearer token (256 bits).
func NewToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "musubi_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// bearer extracts the token of an Authorization: Bearer header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(tok), true
}

// Authorization: what each role may do. owner is the VC's owner ("" when
// the action is not about one VC).

func (p Principal) isAdmin() bool { return p.Role == RoleAdmin }

// ownsVC reports whether p owns the VC or was granted it.
func (p Principal) ownsVC(vc, owner string) bool {
	return owner != "" && owner == p.Name || slices.Contains(p.VCs, vc)
}

// canSeeVC: admins and providers see every reservation; users their own.
func (p Principal) canSeeVC(vc, owner string) bool {
	return p.Role == RoleAdmin || p.Role == RoleProvider || p.ownsVC(vc, owner)
}

// canSeeVCDetail: nodes and jobs: admins, and the VC's owner.
func (p Principal) canSeeVCDetail(vc, owner string) bool {
	return p.isAdmin() || p.ownsVC(vc, owner)
}

// canReserve: admins and providers.
func (p Principal) canReserve() bool { return p.Role == RoleAdmin || p.Role == RoleProvider }

// canModifyVC: admins, and the provider that owns it.
func (p Principal) canModifyVC(vc, owner string) bool {
	return p.isAdmin() || p.Role == RoleProvider && owner == p.Name
}

// canSeeAccount: admins and providers see all; users their own.
func (p Principal) canSeeAccount(user string) bool {
	return p.Role == RoleAdmin || p.Role == RoleProvider || p.Name == user
}

// canWriteAccounts: admins.
func (p Principal) canWriteAccounts() bool { return p.isAdmin() }
