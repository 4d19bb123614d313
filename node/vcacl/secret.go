package vcacl

import (
	"fmt"
	"os"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
)

// AgentSecret is what a VC's agent authenticates with: its VC's
// credential, the agents credential, and the federation's digest identity
// (not a secret, but needed for AgentDefaultACL). Its file form, written
// by Marshal and read by ParseAgentSecret, is three lines:
//
//	vc=<user>:<password>
//	agents=<user>:<password>
//	federation=<user>:<base64 sha1>
type AgentSecret struct {
	VC         coord.Credential
	Agents     coord.Credential
	Federation string
}

// String never prints a password.
func (s AgentSecret) String() string {
	return fmt.Sprintf("vc=%s agents=%s federation=%s", s.VC, s.Agents, s.Federation)
}

// Credentials are the session's credentials: the VC's first (nodes
// created with a nil ACL and no DefaultACL would belong to it), then the
// agents credential.
func (s AgentSecret) Credentials() []coord.Credential { return []coord.Credential{s.VC, s.Agents} }

// DefaultACL is the ACL for the nodes the agent creates.
func (s AgentSecret) DefaultACL() []coord.ACL { return AgentDefaultACL(s.Federation, s.VC) }

// Validate checks every field.
func (s AgentSecret) Validate() error {
	if err := s.VC.Validate(); err != nil {
		return fmt.Errorf("%w: vc: %w", ErrSecret, err)
	}
	if err := s.Agents.Validate(); err != nil {
		return fmt.Errorf("%w: agents: %w", ErrSecret, err)
	}
	if err := validID(s.Federation); err != nil {
		return fmt.Errorf("%w: federation: %w", ErrSecret, err)
	}
	return nil
}

// Marshal returns the file form.
func (s AgentSecret) Marshal() []byte {
	return []byte("vc=" + s.VC.User + ":" + s.VC.Password + "\nagents=" + s.Agents.User + ":" + s.Agents.Password +
		"\nfederation=" + s.Federation + "\n")
}

// ParseAgentSecret parses the file form. Errors never quote a password.
func ParseAgentSecret(data []byte) (AgentSecret, error) {
	var s AgentSecret
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		line = strings.TrimSuffix(line, "\r")
		key, val, ok := strings.Cut(line, "=")
		if !ok || seen[key] {
			return AgentSecret{}, fmt.Errorf("%w: line %d: want vc=, agents= and federation= once each", ErrSecret, i+1)
		}
		seen[key] = true
		user, pass, _ := strings.Cut(val, ":")
		switch key {
		case "vc":
			s.VC = coord.Credential{User: user, Password: pass}
		case "agents":
			s.Agents = coord.Credential{User: user, Password: pass}
		case "federation":
			s.Federation = val
		default:
			return AgentSecret{}, fmt.Errorf("%w: line %d: unknown key %.20q", ErrSecret, i+1, key)
		}
	}
	if err := s.Validate(); err != nil {
		return AgentSecret{}, err
	}
	return s, nil
}

// ReadAgentSecret reads an agent secret file, refusing one that its group
// or others may read (chmod 600).
func ReadAgentSecret(path string) (AgentSecret, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return AgentSecret{}, fmt.Errorf("%w: %w", ErrSecret, err)
	}
	if !fi.Mode().IsRegular() {
		return AgentSecret{}, fmt.Errorf("%w: %s is not a regular file", ErrSecret, path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return AgentSecret{}, fmt.Errorf("%w: %s is readable by others (mode %v): chmod 600 %s", ErrSecret, path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return AgentSecret{}, fmt.Errorf("%w: %w", ErrSecret, err)
	}
	s, err := ParseAgentSecret(data)
	if err != nil {
		return AgentSecret{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
