package config

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
)

// maxSecretBytes bounds a secret file.
const maxSecretBytes = 1 << 20

// ReadSecretFile reads a file holding a secret. It must be a regular file
// that neither its group nor others may read or write (mode 0600 or
// stricter); the error says how to fix it otherwise. The content is never
// logged by this package.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSecret, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSecret, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrSecret, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, so other users may read it: run 'chmod 600 %s'", ErrSecret, path, perm, path)
	}
	if st.Size() > maxSecretBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrSecret, path, maxSecretBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSecret, path, err)
	}
	return data, nil
}

// ReadCredential reads a ZooKeeper digest credential, "user:password" on
// one line, from a secret file.
func ReadCredential(path string) (coord.Credential, error) {
	data, err := ReadSecretFile(path)
	if err != nil {
		return coord.Credential{}, err
	}
	line := strings.TrimRight(string(data), "\r\n")
	user, pass, ok := strings.Cut(line, ":")
	cred := coord.Credential{User: user, Password: pass}
	if !ok || strings.ContainsAny(line, "\r\n") || cred.Validate() != nil {
		return coord.Credential{}, fmt.Errorf("%w: %s: want one line user:password with a non-empty user and password", ErrSecret, path)
	}
	return cred, nil
}
