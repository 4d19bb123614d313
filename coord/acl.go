package coord

import (
	"crypto/sha1" //nolint:gosec // ZooKeeper's digest scheme is defined over SHA-1.
	"encoding/base64"
	"fmt"
	"strings"
)

// Permission bits of an ACL entry, as in ZooKeeper.
const (
	PermRead   int32 = 1 << 0
	PermWrite  int32 = 1 << 1
	PermCreate int32 = 1 << 2
	PermDelete int32 = 1 << 3
	PermAdmin  int32 = 1 << 4
	PermAll          = PermRead | PermWrite | PermCreate | PermDelete | PermAdmin
)

// ACL is one access control entry: Perms granted to the identity ID under
// Scheme ("world" with ID "anyone", or "digest" with ID "user:hash").
type ACL struct {
	Perms  int32
	Scheme string
	ID     string
}

// Credential is a digest-scheme identity a session authenticates with.
type Credential struct {
	User     string
	Password string
}

// Validate reports whether the credential is usable: a non-empty user
// without ':' and a non-empty password.
func (c Credential) Validate() error {
	if c.User == "" || strings.ContainsRune(c.User, ':') {
		return fmt.Errorf("coord: credential user %q must be non-empty and contain no ':'", c.User)
	}
	if c.Password == "" {
		return fmt.Errorf("coord: credential for %q has an empty password", c.User)
	}
	return nil
}

// String never prints the password.
func (c Credential) String() string { return c.User + ":<redacted>" }

// DigestID is the digest-scheme identity of the credential, as ZooKeeper
// computes it: user:base64(sha1(user:password)).
func (c Credential) DigestID() string {
	sum := sha1.Sum([]byte(c.User + ":" + c.Password)) //nolint:gosec // protocol-defined
	return c.User + ":" + base64.StdEncoding.EncodeToString(sum[:])
}

// WorldACL grants perms to everyone.
func WorldACL(perms int32) []ACL {
	return []ACL{{Perms: perms, Scheme: "world", ID: "anyone"}}
}

// DigestACL grants perms to the holder of cred.
func DigestACL(perms int32, cred Credential) ACL {
	return ACL{Perms: perms, Scheme: "digest", ID: cred.DigestID()}
}

// DefaultACL is the ACL a Store gives nodes created with a nil ACL when it
// is configured with no explicit default: all permissions to the first
// credential the session authenticates with, or to everyone when it has
// none. Every Store implementation follows this rule.
func DefaultACL(creds []Credential) []ACL {
	if len(creds) == 0 {
		return WorldACL(PermAll)
	}
	return []ACL{DigestACL(PermAll, creds[0])}
}
