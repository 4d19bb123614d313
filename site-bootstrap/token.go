package sitebootstrap

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
)

// tokenPrefix starts every token; the number is the format's version.
const tokenPrefix = "musubi-token-1"

// FederationUser is the digest user of the federation credential.
const FederationUser = "musubi"

// SuperUser is the digest user of the ensemble's super identity.
const SuperUser = "musubi-super"

// superLabel is the HMAC message that derives the super password.
const superLabel = "musubi zookeeper super identity v1"

// Token is the federation's bootstrap secret: its name and the federation
// credential. See the package doc.
type Token struct {
	Federation string
	Credential coord.Credential
}

// NewToken makes a token with a fresh random credential.
func NewToken(federation string) (Token, error) {
	if err := coord.ValidName(federation); err != nil {
		return Token{}, fmt.Errorf("%w: federation: %w", ErrConfig, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Token{}, fmt.Errorf("sitebootstrap: token: %w", err)
	}
	return Token{Federation: federation, Credential: coord.Credential{User: FederationUser, Password: base64.RawURLEncoding.EncodeToString(b)}}, nil
}

// String is the token's text form. It contains the secret: never log it.
func (t Token) String() string {
	return strings.Join([]string{tokenPrefix, t.Federation, t.Credential.User, t.Credential.Password}, ":")
}

// ParseToken parses a token's text form.
func ParseToken(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 4 || parts[0] != tokenPrefix {
		return Token{}, fmt.Errorf("%w: not a %s token", ErrToken, tokenPrefix)
	}
	t := Token{Federation: parts[1], Credential: coord.Credential{User: parts[2], Password: parts[3]}}
	if err := coord.ValidName(t.Federation); err != nil {
		return Token{}, fmt.Errorf("%w: federation: %w", ErrToken, err)
	}
	if err := t.Credential.Validate(); err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrToken, err)
	}
	if len(t.Credential.Password) < 16 {
		return Token{}, fmt.Errorf("%w: secret too short", ErrToken)
	}
	return t, nil
}

// Super is the ensemble's super identity, derived from the secret.
func (t Token) Super() coord.Credential {
	mac := hmac.New(sha256.New, []byte(t.Credential.Password))
	mac.Write([]byte(superLabel))
	return coord.Credential{User: SuperUser, Password: base64.RawURLEncoding.EncodeToString(mac.Sum(nil))}
}

// ReadTokenFile reads a token file. It refuses a file that users other than
// its owner may read (as ssh refuses such keys).
func ReadTokenFile(path string) (Token, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrToken, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Token{}, fmt.Errorf("%w: %s is readable by others (mode %v): chmod 600 it", ErrToken, path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %w", ErrToken, err)
	}
	t, err := ParseToken(string(b))
	if err != nil {
		return Token{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// WriteTokenFile writes a token file with mode 0600, atomically.
func WriteTokenFile(path string, t Token) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sitebootstrap: %w", err)
	}
	return writeFileAtomic(path, []byte(t.String()+"\n"), 0o600)
}

// writeFileAtomic writes through a temporary file and a rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("sitebootstrap: %w", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return errors.Join(fmt.Errorf("sitebootstrap: %w", err), os.Remove(tmp))
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(fmt.Errorf("sitebootstrap: %w", err), os.Remove(tmp))
	}
	return nil
}
