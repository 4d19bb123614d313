package iscsi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// SecretLen is the length of the CHAP secrets the driver generates: 24
// letters and digits, about 143 bits.
const SecretLen = 24

const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewSecret returns a random CHAP secret of SecretLen letters and digits
// read from r (crypto/rand.Reader when nil), without modulo bias.
func NewSecret(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	out := make([]byte, 0, SecretLen)
	buf := make([]byte, 2*SecretLen)
	for len(out) < SecretLen {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("iscsi: random secret: %w", err)
		}
		for _, c := range buf {
			// 62*4 = 248: reject 248-255 so every letter is equally likely.
			if c < 248 && len(out) < SecretLen {
				out = append(out, secretAlphabet[c%62])
			}
		}
	}
	return string(out), nil
}

// meta is what the driver keeps about a volume beside its clone, in
// <dir>/<vc>/<node>.json (mode 0600): never the secret, only its SHA-256,
// so a repeated Ensure can tell whether the target already has the
// caller's secret (tgtd never shows secrets).
type meta struct {
	Image        string `json:"image"`
	SecretSHA256 string `json:"secret_sha256"`
}

func digest(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func (m meta) secretIs(secret string) bool {
	return secret != "" && subtle.ConstantTimeCompare([]byte(m.SecretSHA256), []byte(digest(secret))) == 1
}

func metaPath(dir, vc, node string) string { return filepath.Join(dir, vc, node+".json") }

func readMeta(dir, vc, node string) (meta, error) {
	var m meta
	b, err := os.ReadFile(metaPath(dir, vc, node))
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	} else if err != nil {
		return m, fmt.Errorf("%w: %v", ErrBackend, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return meta{}, nil // unreadable: as if absent (the secret gets reset)
	}
	return m, nil
}

func writeMeta(dir, vc, node string, m meta) error {
	p := metaPath(dir, vc, node)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("%w: %v", ErrBackend, err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBackend, err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("%w: %v", ErrBackend, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("%w: %v", ErrBackend, err)
	}
	return nil
}

func removeMeta(dir, vc, node string) error {
	var errs []error
	for _, p := range []string{metaPath(dir, vc, node), metaPath(dir, vc, node) + ".tmp"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	// The VC's directory goes with its last volume.
	if err := os.Remove(filepath.Join(dir, vc)); err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotEmpty(err) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrBackend, err)
	}
	return nil
}

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}

// shortHash is 16 hex digits of SHA-256, for names that must be short.
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}
